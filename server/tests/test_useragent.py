"""Browser, OS and device contexts (and tags) from a browser event's User-Agent, as Relay does."""

from __future__ import annotations

from typing import Any

from tripwire_server.normalize import derived_tags, normalize_event

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/120.0.6099.109 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    " Version/17.1 Mobile/15E148 Safari/604.1"
)


def _event(user_agent: str, **extra: object) -> dict[str, Any]:
    data = {
        "platform": "javascript",
        "message": "x",
        "request": {"headers": {"User-Agent": user_agent}},
        **extra,
    }
    return normalize_event(data, event_id=None, received_at=1.0, remote_addr=None, max_size=1 << 20)


def test_chrome_on_windows_gets_browser_and_os_contexts_and_tags() -> None:
    """A Chrome 120 User-Agent gives browser Chrome 120.0.6099, OS Windows 10 and the tags
    ``browser: Chrome 120`` (what search uses) and ``os: Windows 10``."""
    ev = _event(CHROME_WINDOWS)
    assert ev["contexts"]["browser"] == {"type": "browser", "name": "Chrome", "version": "120.0.6099"}
    assert ev["contexts"]["os"]["name"] == "Windows"
    tags = dict(derived_tags(ev))
    assert tags["browser"] == "Chrome 120" and tags["browser.name"] == "Chrome"
    assert tags["os"] == "Windows 10"


def test_a_phone_gets_a_device_context() -> None:
    """Mobile Safari on an iPhone: browser, iOS and the device (Apple iPhone)."""
    ev = _event(SAFARI_IPHONE)
    assert ev["contexts"]["browser"]["name"] == "Mobile Safari"
    assert ev["contexts"]["os"]["name"] == "iOS"
    assert ev["contexts"]["device"]["family"] == "iPhone"
    assert dict(derived_tags(ev))["device"] == "iPhone"


def test_contexts_the_sdk_sent_are_kept() -> None:
    """A browser context sent by the SDK is never overwritten by the parsed one."""
    ev = _event(CHROME_WINDOWS, contexts={"browser": {"name": "Brave", "version": "1.60"}})
    assert ev["contexts"]["browser"] == {"name": "Brave", "version": "1.60"}
    assert ev["contexts"]["os"]["name"] == "Windows"


def test_no_or_oversized_user_agent_adds_nothing() -> None:
    """Without a User-Agent, or with one over 512 characters (not a browser's), nothing is added."""
    assert "contexts" not in _event("")
    assert "contexts" not in _event("Mozilla/5.0 " + "x" * 600)
