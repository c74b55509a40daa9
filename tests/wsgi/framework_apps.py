"""The same three routes in each WSGI framework: /ok, a failing route with a typed parameter that sets
the user and a tag first, and /ok again for the session count."""

from __future__ import annotations

import time
import warnings
from typing import Any

import tripwire

#: The route template each framework should report for the failing route.
ROUTES = {
    "flask": "/orders/<int:oid>",
    "falcon": "/orders/{oid:int}",
    "bottle": "/orders/<oid:int>",
    "pyramid": "/orders/{oid}",
    "django": "/orders/<int:oid>",
}
FRAMEWORKS = tuple(ROUTES)


def fail(oid: int) -> None:
    """What every framework's failing view does: set the user and a tag, then raise."""
    who = f"user-{oid}"
    tripwire.set_user({"id": who})
    tripwire.set_tag("order", str(oid))
    time.sleep(0.005)  # let concurrent requests interleave
    raise KeyError(f"order {oid}")


def flask_app() -> Any:
    from flask import Flask

    app = Flask("tripwire_flask_test")

    @app.route("/ok")
    def ok() -> str:
        return "ok"

    @app.route("/orders/<int:oid>")
    def order(oid: int) -> str:
        fail(oid)
        return "unreachable"

    return app


def falcon_app() -> Any:
    import falcon

    class Ok:
        def on_get(self, req: Any, resp: Any) -> None:
            resp.text = "ok"

    class Order:
        def on_get(self, req: Any, resp: Any, oid: int) -> None:
            fail(oid)

    app = falcon.App()
    app.add_route("/ok", Ok())
    app.add_route("/orders/{oid:int}", Order())
    return app


def bottle_app() -> Any:
    import bottle

    app = bottle.Bottle()

    @app.route("/ok")
    def ok() -> str:
        return "ok"

    @app.route("/orders/<oid:int>")
    def order(oid: int) -> str:
        fail(oid)
        return "unreachable"

    return app


def pyramid_app() -> Any:
    with warnings.catch_warnings():  # Pyramid and WebOb import cgi and pkg_resources: not ours
        warnings.simplefilter("ignore")
        from pyramid.config import Configurator
        from pyramid.response import Response

    def ok(request: Any) -> Any:
        return Response("ok")

    def order(request: Any) -> Any:
        fail(int(request.matchdict["oid"]))

    with Configurator() as config:
        config.add_route("ok", "/ok")
        config.add_view(ok, route_name="ok")
        config.add_route("order", "/orders/{oid}")
        config.add_view(order, route_name="order")
        return config.make_wsgi_app()


def _django_order(request: Any, oid: int) -> Any:
    fail(oid)


def django_app() -> Any:
    # Django's settings are process-wide: configure them as the ASGI tests do (tests/asgi/
    # django_project.py) and add this route to that project's URLs, so both suites run in one process.
    from django.urls import clear_url_caches, path

    from ..asgi import django_project

    django_project.application()
    if not any(getattr(p, "name", None) == "wsgi-order" for p in django_project.urlpatterns):
        django_project.urlpatterns.append(path("orders/<int:oid>", _django_order, name="wsgi-order"))
        clear_url_caches()
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def make(framework: str) -> tuple[Any, Any]:
    """(the app as the framework made it, the WSGI callable to wrap)."""
    from tripwire.wsgi import TripwireMiddleware

    if framework == "flask":
        app = flask_app()
        app.wsgi_app = TripwireMiddleware(app.wsgi_app)  # the documented form
        return app, app
    made = {"falcon": falcon_app, "bottle": bottle_app, "pyramid": pyramid_app, "django": django_app}[
        framework
    ]()
    return made, TripwireMiddleware(made)
