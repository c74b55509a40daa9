"""Which webhook URLs the collector may call: public addresses only, unless the admin allows more.

A webhook URL comes from whoever may create rules; without this check it could make the collector
reach its own network (``http://10.0.0.5/admin``), the cloud metadata service
(``169.254.169.254``) or loopback services. The host is resolved and *every* address must be
public, or allowed by ``--allow-webhook-host`` (a host name, an address or a network); the sender
then connects to the checked address, so a DNS answer that changes between check and connect
(rebinding) cannot smuggle a private address in.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

Resolver = Callable[..., list[Any]]


class UnsafeURL(ValueError):
    """The URL is not an http(s) URL the collector may call."""


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    addr = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _allowed(host: str, addr: ipaddress.IPv4Address | ipaddress.IPv6Address, allow: Iterable[str]) -> bool:
    for entry in allow:
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == host.lower():
            return True
        try:
            if addr in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def is_public(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally routable unicast: not private, loopback, link-local, reserved or multicast."""
    return addr.is_global and not addr.is_multicast


def split_url(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an http(s) URL; UnsafeURL for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeURL("a webhook URL must start with http:// or https://")
    if not parts.hostname:
        raise UnsafeURL("a webhook URL needs a host")
    if len(url) > 2000:
        raise UnsafeURL("a webhook URL may have at most 2000 characters")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def check_url(url: str, allow: Iterable[str] = (), resolve: Resolver = socket.getaddrinfo) -> list[str]:
    """The addresses ``url`` may be called at (each checked); UnsafeURL saying why not."""
    _scheme, host, port = split_url(url)
    allow = list(allow)
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeURL(f"cannot resolve {host}: {exc}") from None
    addresses: list[str] = []
    for info in infos:
        ip = str(info[4][0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise UnsafeURL(f"{host} has no address")
    for ip in addresses:
        addr = _address(ip)
        if not is_public(addr) and not _allowed(host, addr, allow):
            raise UnsafeURL(
                f"{host} resolves to {addr}, which is not a public address (private, loopback,"
                " link-local or metadata); allow it with --allow-webhook-host"
            )
    return addresses


def check_syntax(url: str, allow: Iterable[str] = ()) -> None:
    """The checks that need no DNS (for rule creation): scheme, host, and a literal IP's range."""
    _scheme, host, _port = split_url(url)
    try:
        addr = _address(host)
    except ValueError:
        if host.lower() in ("localhost", "metadata.google.internal") and host.lower() not in (
            a.strip().lower() for a in allow
        ):
            raise UnsafeURL(f"{host} is not a public host; allow it with --allow-webhook-host") from None
        return
    if not is_public(addr) and not _allowed(host, addr, allow):
        raise UnsafeURL(f"{addr} is not a public address; allow it with --allow-webhook-host")
