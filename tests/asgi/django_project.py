"""A one-file Django project served through Django's own ASGI handler."""

from __future__ import annotations

from typing import Any

from . import apps


def _ok(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse("ok")


def _boom(request: Any, n: int) -> Any:
    raise ValueError(f"boom {n}")


async def _isolate(request: Any) -> Any:
    await apps.isolate(request.GET["who"])


def _handled(request: Any) -> Any:
    from django.http import HttpResponse

    apps.handled()
    return HttpResponse("handled")


def _notfound(request: Any) -> Any:
    from django.http import Http404

    raise Http404("no such thing")


def _unavailable(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse("down", status=503)


def _echo(request: Any) -> Any:
    from django.http import HttpResponse

    body = request.body
    if request.headers.get("x-fail"):
        raise ValueError("echo failed")
    return HttpResponse(body)


def _csrf_exempt(view: Any) -> Any:
    from django.views.decorators.csrf import csrf_exempt

    return csrf_exempt(view)


from django.urls import path  # noqa: E402 - after the views, which Django imports lazily

urlpatterns = [
    path("ok", _ok),
    path("boom/<int:n>", _boom),
    path("isolate", _isolate),
    path("handled", _handled),
    path("notfound", _notfound),
    path("unavailable", _unavailable),
    path("echo", _csrf_exempt(_echo)),
]


def application() -> Any:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            ALLOWED_HOSTS=["*"],
            ROOT_URLCONF=__name__,
            SECRET_KEY="tripwire-tests-only",
            MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
            INSTALLED_APPS=[],
            USE_TZ=True,
            LOGGING_CONFIG=None,
        )
        django.setup()
    from django.core.asgi import get_asgi_application

    return get_asgi_application()
