// Reports to a collector with the official @bugsnag/js in Node: a session, then an error in it.
// Usage: node bugsnag_node.mjs URL API_KEY. Prints one JSON line when both were delivered.
import Bugsnag from "@bugsnag/js";

const [url, apiKey] = process.argv.slice(2);
Bugsnag.start({
  apiKey,
  endpoints: { notify: url, sessions: `${url}/sessions` },
  appVersion: "api@9.1.0",
  releaseStage: "production",
  autoTrackSessions: false,
  sessionSummaryInterval: 100, // the default batches sessions for 10 s
  logger: null,
});

function loadProfile(userId) {
  throw new RangeError(`profile ${userId} not found`);
}

Bugsnag.startSession();
const delivered = await new Promise((resolve) => {
  try {
    loadProfile(42);
  } catch (err) {
    Bugsnag.notify(err, (event) => { event.setUser("u-42", "kim@example.com", "Kim"); }, (error) => resolve(!error));
  }
});
// Sessions are sent in batches: wait for the batch that holds ours.
await new Promise((resolve) => setTimeout(resolve, 1500));
console.log(JSON.stringify({ delivered }));
