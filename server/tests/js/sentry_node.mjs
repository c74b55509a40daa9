// Reports to a collector with the official @sentry/node: an error, a message (with the
// synthetic exception current SDKs attach), feedback about the error and logs.
// Usage: node sentry_node.mjs DSN. Prints one JSON line with the ids.
import * as Sentry from "@sentry/node";

const dsn = process.argv[2];
Sentry.init({
  dsn,
  release: "web@5.0.0",
  environment: "production",
  attachStacktrace: true,
  enableLogs: true,
  defaultIntegrations: false,
  integrations: [],
});

function chargeCard(orderId) {
  throw new TypeError(`card of order ${orderId} expired`);
}

const ids = {};
try {
  chargeCard(7);
} catch (err) {
  ids.error = Sentry.captureException(err);
}
ids.message = Sentry.captureMessage("inventory sync took 9000 ms", "warning");
ids.feedback = Sentry.captureFeedback({
  message: "The card form said expired, but it is not",
  email: "lin@example.com",
  name: "Lin",
  associatedEventId: ids.error,
});
for (let n = 0; n < 5; n++) {
  Sentry.logger.info(Sentry.logger.fmt`order ${n} shipped`, { warehouse: "north" });
}
await Sentry.flush(10000);
console.log(JSON.stringify(ids));
