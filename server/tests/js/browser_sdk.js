// Entry point of the browser bundle: esbuild turns it into one script that defines window.Sentry,
// as the CDN bundle does.
export * from "@sentry/browser";
