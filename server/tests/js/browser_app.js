// The app of the browser test page: an unhandled error from a click handler, a message (with a
// synthetic stack trace) and feedback. window.DSN is set by the page.
function applyCoupon(code) {
  throw new TypeError("coupon " + code + " is not valid");
}

function onCheckoutClick() {
  applyCoupon("SPRING" + Math.floor(Math.random() * 100));
}

window.startApp = function startApp() {
  Sentry.init({ dsn: window.DSN, release: "shop-web@1.0.0", attachStacktrace: true });
  document.getElementById("checkout").addEventListener("click", onCheckoutClick);
};

window.sendMessageAndFeedback = function sendMessageAndFeedback() {
  const messageId = Sentry.captureMessage("cart total 1234 does not match the server", "warning");
  Sentry.captureFeedback({ message: "Checkout is <broken>", email: "ana@example.com", name: "Ana" });
  return Sentry.flush(5000).then(() => messageId);
};
