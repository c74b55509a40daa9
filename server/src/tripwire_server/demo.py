"""``tripwire demo``: the collector, an instrumented ASGI service and traffic that breaks it.

One process runs three things until Ctrl-C (or ``--exit-after``):

1. the collector (``tripwire serve``) on a fresh SQLite data dir, with an admin login;
2. a small Starlette shop wrapped in :class:`tripwire.asgi.TripwireMiddleware`, reporting to (1)
   through the tripwire SDK (``release="demo@1.0.0"``, ``environment="demo"``);
3. a traffic thread calling (2): mostly healthy requests, plus a ZeroDivisionError, KeyErrors with
   order ids in the message, a chained exception, an ExceptionGroup, logged errors and a handled
   path that answers HTTP 500 — with users, tags and breadcrumbs.

The shop is traced with the official sentry-sdk when it is installed (:mod:`.demo_tracing`), so
the Performance page, transaction summaries, traces and an N+1 query issue fill up too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("demo.shop")

DEMO_RELEASE = "demo@1.0.0"
DEMO_ENVIRONMENT = "demo"
DEFAULT_PORT = 8000

# -- the demo service -----------------------------------------------------------------------------

_USERS = [
    {"id": "1001", "username": "ada", "email": "ada@example.com"},
    {"id": "1002", "username": "grace", "email": "grace@example.com"},
    {"id": "1003", "username": "linus", "email": "linus@example.com"},
]
_ORDERS = {"ord-1001": {"total": 42.0, "items": 3}, "ord-1002": {"total": 9.5, "items": 1}}
_PRICES = {"tw-mug": 12.0, "tw-shirt": 25.0}
_PRODUCTS = [{"sku": sku, "price": price} for sku, price in _PRICES.items()]


class CheckoutError(Exception):
    """The demo shop could not complete a checkout."""


class PaymentGatewayError(ConnectionError):
    """The (pretend) payment gateway did not answer."""


def _who(request: Any) -> None:
    """What a real app's auth middleware would do: name the user and tag the request."""
    import tripwire

    user_id = request.headers.get("x-demo-user", "")
    user = next((u for u in _USERS if u["id"] == user_id), None)
    if user is not None:
        tripwire.set_user(user)
        tripwire.set_tag("plan", "pro" if user["id"] == "1001" else "free")
    tripwire.set_tag("region", request.headers.get("x-demo-region", "eu-west"))


def _order_total(order_id: str) -> float:
    order = _ORDERS[order_id]  # KeyError for unknown ids: the id is in the message, one issue anyway
    return float(order["total"])


def _charge(order_id: str, amount: float) -> None:
    raise PaymentGatewayError(f"payment gateway timed out after 3.0s charging {amount:.2f}")


async def _export_job(name: str) -> None:
    await asyncio.sleep(0)
    if name == "export":
        raise ValueError("export: column 'price' is not a number in row 17")
    raise TimeoutError(f"{name}: mail server did not answer in 5s")


def build_demo_app() -> Any:
    """The demo shop: a Starlette app with a handful of ways to fail, wrapped in the middleware."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    import tripwire
    from tripwire.asgi import TripwireMiddleware

    from .demo_tracing import TracingMiddleware, span

    # The logged errors are meant for the dashboard, not for the terminal running the demo.
    log.addHandler(logging.NullHandler())
    log.propagate = False

    async def index(request: Request) -> PlainTextResponse:
        return PlainTextResponse(
            "tripwire demo shop\n\n"
            "GET  /products              fine\n"
            "GET  /cart/average?items=0  ZeroDivisionError\n"
            "GET  /orders/{id}           KeyError for unknown ids\n"
            "POST /checkout/{id}         CheckoutError caused by PaymentGatewayError\n"
            "GET  /reports/nightly       ExceptionGroup from a TaskGroup\n"
            "GET  /inventory/sync        logged errors (logging integration)\n"
            "GET  /profile/{id}          handled error answered with HTTP 500\n"
        )

    async def products(request: Request) -> JSONResponse:
        _who(request)
        tripwire.add_breadcrumb(category="db.query", message="SELECT sku, price FROM products")
        with span("db.sql.query", "SELECT sku, price FROM products"):
            await asyncio.sleep(0.004)
        # One stock query per product, one after the other: the N+1 query the demo shows.
        for index in range(6):
            with span("db.sql.query", f"SELECT stock FROM inventory WHERE product_id = {1000 + index}"):
                await asyncio.sleep(0.002)
        with span("cache.get", "products:rendered"):
            await asyncio.sleep(0.001)
        return JSONResponse(_PRODUCTS)

    async def cart_average(request: Request) -> JSONResponse:
        _who(request)
        items = int(request.query_params.get("items", "0"))
        total = sum(_PRICES.values()) * items
        tripwire.add_breadcrumb(category="cart", message=f"averaging {items} items", data={"total": total})
        average = total / items  # an empty cart divides by zero
        return JSONResponse({"average": average})

    async def order(request: Request) -> JSONResponse:
        _who(request)
        order_id = request.path_params["order_id"]
        tripwire.add_breadcrumb(
            category="db.query", message="SELECT * FROM orders WHERE id = ?", data={"id": order_id}
        )
        with span("db.sql.query", "SELECT * FROM orders WHERE id = %s"):
            await asyncio.sleep(0.01 + random.random() * 0.03)
        return JSONResponse({"id": order_id, "total": _order_total(order_id)})

    async def checkout(request: Request) -> JSONResponse:
        _who(request)
        order_id = request.path_params["order_id"]
        amount = _ORDERS.get(order_id, {"total": 19.99})["total"]
        tripwire.add_breadcrumb(category="payment", message="charging card", data={"order": order_id})
        with span("http.client", "POST https://payments.example/charge"):
            await asyncio.sleep(0.12 + random.random() * 0.1)
        try:
            _charge(order_id, float(amount))
        except PaymentGatewayError as exc:
            raise CheckoutError(f"could not complete checkout of {order_id}") from exc
        return JSONResponse({"ok": True})

    async def nightly_report(request: Request) -> JSONResponse:
        _who(request)
        tripwire.add_breadcrumb(category="jobs", message="starting export and email jobs")
        if sys.version_info >= (3, 11):
            async with asyncio.TaskGroup() as group:
                group.create_task(_export_job("export"))
                group.create_task(_export_job("email"))
        else:  # pragma: no cover - ExceptionGroup is 3.11+
            await _export_job("export")
        return JSONResponse({"ok": True})

    async def inventory_sync(request: Request) -> JSONResponse:
        _who(request)
        warehouse = random.choice(["berlin-2", "lyon-1", "austin-3"])
        tripwire.add_breadcrumb(category="inventory", message=f"syncing warehouse {warehouse}")
        try:
            int("n/a")
        except ValueError:
            log.exception("inventory sync failed for warehouse %s", warehouse)
        log.error("stock level of %s is negative in %s: %d", "tw-mug", warehouse, -3)
        return JSONResponse({"status": "partial"})

    async def profile(request: Request) -> JSONResponse:
        _who(request)
        user_id = request.path_params["user_id"]
        try:
            Path(f"/nonexistent/avatars/{user_id}.png").read_bytes()
        except FileNotFoundError:
            # A handled failure: no exception escapes, but the 500 is reported (failed_status_codes).
            return JSONResponse({"error": "profile temporarily unavailable"}, status_code=500)
        return JSONResponse({"id": user_id})

    shop = Starlette(
        routes=[
            Route("/", index),
            Route("/products", products),
            Route("/cart/average", cart_average),
            Route("/orders/{order_id}", order),
            Route("/checkout/{order_id}", checkout, methods=["POST"]),
            Route("/reports/nightly", nightly_report),
            Route("/inventory/sync", inventory_sync),
            Route("/profile/{user_id}", profile),
        ]
    )
    # Tracing inside the error middleware: errors carry the trace id of their request.
    return TripwireMiddleware(TracingMiddleware(shop, shop.routes), failed_status_codes=range(500, 600))


# -- traffic ---------------------------------------------------------------------------------------

#: (method, path, weight) of what the traffic thread calls; ``{order}`` and ``{user}`` vary.
_ROUTES = [
    ("GET", "/products", 8),
    ("GET", "/cart/average?items=2", 3),
    ("GET", "/cart/average?items=0", 2),
    ("GET", "/orders/ord-1001", 2),
    ("GET", "/orders/{order}", 2),
    ("POST", "/checkout/{order}", 1),
    ("GET", "/reports/nightly", 1),
    ("GET", "/inventory/sync", 1),
    ("GET", "/profile/{user}", 1),
]


def _call(base: str, method: str, path: str, rng: random.Random) -> int:
    path = path.replace("{order}", f"ord-{rng.randint(2000, 9999)}")
    path = path.replace("{user}", str(rng.randint(1, 99)))
    user = rng.choice(_USERS)
    request = urllib.request.Request(
        base + path,
        method=method,
        data=b"" if method == "POST" else None,
        headers={"X-Demo-User": user["id"], "X-Demo-Region": rng.choice(["eu-west", "us-east"])},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return int(exc.code)
    except OSError:
        return 0


def _flush_sessions() -> None:
    import tripwire

    # The SDK sends release-health counts once a minute; the demo wants the Releases page filled now.
    sessions = getattr(tripwire.get_client(), "sessions", None)
    if sessions is not None:
        sessions.flush()


def _traffic(base: str, stop: threading.Event, interval: float) -> None:
    import tripwire

    rng = random.Random(1)
    # Our own outgoing requests would otherwise leave breadcrumbs in the process scope.
    with tripwire.isolation_scope():
        # First every route twice, so each issue is on the dashboard within seconds ...
        for method, path, _ in _ROUTES * 2:
            if stop.is_set():
                return
            _call(base, method, path, rng)
        _flush_sessions()
        # ... then a slow trickle, so the charts move.
        routes = [(m, p) for m, p, w in _ROUTES for _ in range(w)]
        last_flush = time.monotonic()
        while not stop.wait(interval):
            method, path = rng.choice(routes)
            _call(base, method, path, rng)
            if time.monotonic() - last_flush > 10:
                _flush_sessions()
                last_flush = time.monotonic()


# -- running servers in threads --------------------------------------------------------------------


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(512)
    return sock


class _ThreadedServer:
    """A uvicorn server on an already bound socket, in a daemon thread.

    Thread names must not start with "tripwire": the SDK ignores what happens on its own threads.
    """

    def __init__(self, app: Any, sock: socket.socket, name: str) -> None:
        import uvicorn

        self.sock = sock
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, log_level="critical", access_log=False, lifespan="on", timeout_graceful_shutdown=3
            )
        )
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, name=name, daemon=True
        )

    def start(self, timeout: float = 30.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.thread.name} did not start")
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM set ``stop`` instead of raising wherever the main thread happens to be."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# -- main -----------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tripwire demo",
        description="Run the collector with an instrumented demo service and traffic that raises errors.",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"collector/dashboard port (default {DEFAULT_PORT}, or a free one if taken)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="collector address (default 127.0.0.1)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep the SQLite database here (default: a fresh temporary dir, deleted on exit)",
    )
    parser.add_argument("--database-url", default=None, help="postgresql://... instead of SQLite")
    parser.add_argument(
        "--exit-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop by itself after this many seconds (default: run until Ctrl-C)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="pause between demo requests after the first round (default 1.0)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit status (0 after Ctrl-C, SIGTERM or ``--exit-after``)."""
    args = _parser().parse_args(argv)
    import tripwire

    from . import demo_tracing
    from .app import bootstrap, create_app
    from .config import CollectorConfig
    from .store import open_store

    own_dir = args.data_dir is None and not args.database_url
    data_dir = Path(tempfile.mkdtemp(prefix="tripwire-demo-")) if own_dir else (args.data_dir or Path("."))
    try:
        port = DEFAULT_PORT if args.port is None else args.port
        try:
            collector_sock = _bind(args.host, port)
        except OSError as exc:
            if args.port is not None:
                print(f"tripwire demo: cannot listen on {args.host}:{port}: {exc.strerror}", file=sys.stderr)
                return 1
            collector_sock = _bind(args.host, 0)  # the default port is taken: any free one will do
        port = collector_sock.getsockname()[1]
        config = CollectorConfig(
            host=args.host,
            port=port,
            data_dir=data_dir,
            database_url=args.database_url,
            sqlite_synchronous="NORMAL",
        )
        store = open_store(config.effective_database_url, sqlite_synchronous=config.sqlite_synchronous)
        info = bootstrap(store, config)
        url = config.effective_public_url
        dsn = info.project.dsn(url)
        collector = _ThreadedServer(create_app(config, store=store), collector_sock, "demo-collector")
        collector.start()

        # The demo users are made up, so show them in full (send_default_pii); a real app decides.
        tripwire.init(
            dsn=dsn,
            release=DEMO_RELEASE,
            environment=DEMO_ENVIRONMENT,
            in_app_include=["tripwire_server.demo"],
            server_name="demo-shop-1",
            send_default_pii=True,
        )
        traced = demo_tracing.init(dsn, DEMO_RELEASE, DEMO_ENVIRONMENT)
        tracing = "on (official sentry-sdk): see Performance" if traced else "off (pip install sentry-sdk)"
        demo_sock = _bind("127.0.0.1", 0)
        demo_url = f"http://127.0.0.1:{demo_sock.getsockname()[1]}"
        shop = _ThreadedServer(build_demo_app(), demo_sock, "demo-shop")
        shop.start()

        password = info.admin_password or os.environ.get("TRIPWIRE_ADMIN_PASSWORD")
        login = (
            f"{info.admin_username} / {password}"
            if password
            else (f"{info.admin_username} / (the password printed when this data dir was created)")
        )
        where = (
            "a temporary dir, deleted on exit (use --data-dir DIR to keep it)"
            if own_dir
            else (args.database_url and "PostgreSQL") or str(data_dir)
        )
        print(
            "tripwire demo is running\n"
            f"\n  Dashboard:  {url}/"
            f"\n  Login:      {login}"
            f"\n  DSN:        {dsn}"
            f"\n  Demo shop:  {demo_url}/  (Starlette + tripwire.asgi.TripwireMiddleware)"
            f"\n  Data:       {where}"
            f"\n  Tracing:    {tracing}\n"
            "\nThe shop is getting traffic that raises a ZeroDivisionError, KeyErrors with order ids,"
            "\na chained CheckoutError, an ExceptionGroup, logged errors and an HTTP 500, as users"
            "\nada, grace and linus, in release demo@1.0.0. Open the dashboard and log in."
            "\nPress Ctrl-C to stop.",
            flush=True,
        )

        stop = threading.Event()
        traffic = threading.Thread(
            target=_traffic,
            args=(demo_url, stop, max(0.05, args.interval)),
            name="demo-traffic",
            daemon=True,
        )
        with _stop_on_signals(stop):
            traffic.start()
            deadline = None if args.exit_after is None else time.monotonic() + args.exit_after
            while not stop.is_set():
                remaining = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
                if remaining <= 0:
                    break
                stop.wait(remaining)
            stop.set()
            print("\nStopping the demo ...", flush=True)
            traffic.join(15)
            shop.stop()
            # Deliver what the SDK still holds (events, sessions) before the collector goes away.
            tripwire.flush(5)
            tripwire.close()
            demo_tracing.close()
            collector.stop()
        print("Stopped.", flush=True)
        return 0
    finally:
        if own_dir:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
