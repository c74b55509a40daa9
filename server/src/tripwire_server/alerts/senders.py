"""Message formats and the two drivers that send them (HTTP webhooks and SMTP).

Formatting is pure: :func:`render_webhook` and :func:`render_email` turn a claimed
:class:`~..store.alert_records.Delivery` into bytes and headers or an e-mail. Every text that
came from an event (an issue title, a culprit) is escaped for its target: Slack's ``<>&``, Markdown
mentions for Discord and Mattermost, HTML in the e-mail's HTML part.

The webhook body (format ``json``) is documented in docs/alerts.md; it is signed with
``X-Tripwire-Signature: sha256=<hex HMAC-SHA256 of the body with the rule's secret>`` and carries
the notification ``id``, also sent as ``Idempotency-Key``: a receiver that sees an id twice (a
retry after a lost answer) can drop the second.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import http.client
import json
import smtplib
import socket
import ssl
import time
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from .._version import __version__
from ..store.alert_records import Delivery
from .rules import MAX_ITEMS_PER_MESSAGE
from .settings import AlertSettings, SmtpSettings
from .ssrf import UnsafeURL, check_url, split_url

USER_AGENT = f"tripwire-alerts/{__version__}"
DISCORD_MAX = 2000


class DeliveryError(Exception):
    """A send failed; ``permanent`` means retrying cannot help (a 4xx answer, a refused URL)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


# -- what a message says ----------------------------------------------------------------------


def _one_line(text: Any, limit: int = 300) -> str:
    value = " ".join(str(text or "").split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


def transaction_url(base: str, project_id: int, item: dict[str, Any]) -> str:
    """The transaction summary page over the alert's window, with the rule's filters."""
    query = {"transaction": str(item["transaction"]), "since": f"{item.get('window_minutes') or 60}m"}
    for key in ("environment", "release"):
        if item.get(key):
            query[key] = str(item[key])
    return f"{base}/projects/{project_id}/performance/summary?{urlencode(query, quote_via=quote)}"


def items_of(delivery: Delivery, public_url: str) -> list[dict[str, Any]]:
    """The message's items (issues, releases, monitors, transactions) with a dashboard link each."""
    base = public_url.rstrip("/")
    out = []
    for message in delivery.messages:
        item = {k: v for k, v in message.items() if k != "trigger"}
        item["title"] = _one_line(item.get("title"))
        if item.get("transaction") is not None:
            item["url"] = transaction_url(base, delivery.rule.project_id, item)
        elif item.get("issue_id"):
            item["url"] = f"{base}/issues/{item['issue_id']}"
        elif item.get("release"):
            item["url"] = f"{base}/projects/{delivery.rule.project_id}/releases"
        else:
            item["url"] = f"{base}/projects/{delivery.rule.project_id}/alerts/{delivery.rule.id}"
        out.append(item)
    return out


def trigger_of(delivery: Delivery) -> str:
    return str(delivery.messages[0].get("trigger") or delivery.rule.trigger) if delivery.messages else "test"


def summary(delivery: Delivery, items: list[dict[str, Any]]) -> str:
    """One line that says what happened (the e-mail subject, the chat message's first line)."""
    trigger = trigger_of(delivery)
    project = delivery.project_name
    n = len(items)
    first = items[0]["title"] if items else ""
    if trigger == "test":
        return f"Test notification of alert rule {delivery.rule.name!r} ({project})"
    if trigger == "new-issue":
        return f"New issue in {project}: {first}" if n == 1 else f"{n} new issues in {project}"
    if trigger == "regression":
        return f"Regression in {project}: {first}" if n == 1 else f"{n} regressions in {project}"
    if trigger == "frequency":
        if n == 1:
            it = items[0]
            return f"{first}: {it.get('count')} events in {it.get('window_minutes')} min ({project})"
        return f"{n} issues over their event threshold in {project}"
    if trigger == "users":
        if n == 1:
            it = items[0]
            return f"{first}: {it.get('users')} users in {it.get('window_minutes')} min ({project})"
        return f"{n} issues over their user threshold in {project}"
    if trigger == "p95":
        return _latency_summary(items, project)
    if n == 1:
        return f"{first} ({project})"
    return f"{n} alerts of rule {delivery.rule.name!r} in {project}"


def _latency_summary(items: list[dict[str, Any]], project: str) -> str:
    resolved = sum(1 for it in items if it.get("status") == "resolved")
    firing = len(items) - resolved
    if len(items) == 1:
        return f"{'Resolved: ' if resolved else ''}{items[0]['title']} ({project})"
    p = items[0].get("percentile") or "p95"
    if not firing:
        return f"{resolved} transactions back at or under their {p} limit in {project}"
    back = f", {resolved} back at or under it" if resolved else ""
    return f"{firing} transactions over their {p} limit{back} in {project}"


def webhook_json(delivery: Delivery, public_url: str) -> dict[str, Any]:
    """The documented JSON body of a ``json`` webhook."""
    items = items_of(delivery, public_url)
    shown = items[:MAX_ITEMS_PER_MESSAGE]
    return {
        "id": delivery.uid,
        "type": trigger_of(delivery),
        "text": summary(delivery, items),
        "rule": {"id": delivery.rule.id, "name": delivery.rule.name},
        "project": {"id": delivery.rule.project_id, "name": delivery.project_name},
        "items": shown,
        "more": len(items) - len(shown),
        "url": f"{public_url.rstrip('/')}/projects/{delivery.rule.project_id}/alerts/{delivery.rule.id}",
    }


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _markdown_escape(text: str) -> str:
    # No mentions (@everyone, @channel), no links or formatting smuggled in by an event.
    for ch in "\\*_~`|[]()<>#":
        text = text.replace(ch, "\\" + ch)
    return text.replace("@", "@\u200b")


def sign(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: the HMAC-SHA256 of ``body`` keyed with the rule's secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def render_webhook(delivery: Delivery, public_url: str) -> tuple[bytes, dict[str, str]]:
    """Body and headers of the rule's webhook in its format (json, slack, discord, mattermost, ntfy)."""
    fmt = delivery.rule.format
    data = webhook_json(delivery, public_url)
    items = data["items"]
    more = f"\n… and {data['more']} more" if data["more"] else ""
    content_type = "application/json"
    extra: dict[str, str] = {}
    if fmt == "slack":
        lines = [f"*{_slack_escape(data['text'])}*"]
        lines += [f"• <{it['url']}|{_slack_escape(it['title'])}>" for it in items]
        body = json.dumps({"text": "\n".join(lines) + more}).encode()
    elif fmt == "mattermost":
        lines = [f"**{_markdown_escape(data['text'])}**"]
        lines += [f"- [{_markdown_escape(it['title'])}]({it['url']})" for it in items]
        body = json.dumps({"text": "\n".join(lines) + more, "username": "tripwire"}).encode()
    elif fmt == "discord":
        lines = [f"**{_markdown_escape(data['text'])}**"]
        lines += [f"- [{_markdown_escape(it['title'])}](<{it['url']}>)" for it in items]
        content = ("\n".join(lines) + more)[:DISCORD_MAX]
        body = json.dumps({"content": content, "allowed_mentions": {"parse": []}}).encode()
    elif fmt == "ntfy":
        lines = [f"- {it['title']}: {it['url']}" for it in items]
        body = ("\n".join(lines) + more).encode()
        content_type = "text/plain; charset=utf-8"
        # Header values must be one line of Latin-1: the title is the one-line summary, encoded.
        extra = {
            "Title": _one_line(data["text"], 200).encode("utf-8").decode("latin-1"),
            "Click": data["url"],
        }
    else:
        body = json.dumps(data, ensure_ascii=False).encode()
    headers = {
        "Content-Type": content_type,
        "User-Agent": USER_AGENT,
        "Idempotency-Key": delivery.uid,
        "X-Tripwire-Signature": sign(delivery.rule.secret, body),
        "X-Tripwire-Event": data["type"],
        **extra,
    }
    return body, headers


def render_email(delivery: Delivery, public_url: str, sender: str) -> EmailMessage:
    """The e-mail of a message: a plain-text part and an escaped HTML part."""
    data = webhook_json(delivery, public_url)
    items = data["items"]
    msg = EmailMessage()
    msg["Subject"] = "[tripwire] " + _one_line(data["text"], 200)
    msg["From"] = sender
    msg["To"] = delivery.rule.email or ""
    msg["Message-ID"] = f"<{delivery.uid}@tripwire>"
    msg["X-Tripwire-Notification"] = delivery.uid
    text = [data["text"], ""]
    for it in items:
        text.append(f"- {it['title']}")
        text.append(f"  {it['url']}")
    if data["more"]:
        text.append(f"… and {data['more']} more")
    text += ["", f"Alert rule: {delivery.rule.name} — {data['url']}"]
    msg.set_content("\n".join(text))
    e = html.escape
    rows = "".join(f'<li><a href="{e(it["url"])}">{e(it["title"])}</a></li>' for it in items)
    more_html = f"<p>… and {data['more']} more</p>" if data["more"] else ""
    msg.add_alternative(
        f"<html><body><p><strong>{e(data['text'])}</strong></p><ul>{rows}</ul>{more_html}"
        f'<p>Alert rule: <a href="{e(data["url"])}">{e(delivery.rule.name)}</a></p></body></html>',
        subtype="html",
    )
    return msg


# -- drivers ------------------------------------------------------------------------------------


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to an address checked by :func:`check_url`, whatever DNS says now."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def post_webhook(url: str, body: bytes, headers: dict[str, str], settings: AlertSettings) -> int:
    """POST ``body`` to ``url``; the HTTP status on 2xx, DeliveryError otherwise.

    No redirects are followed (a redirect could point anywhere), the answer is read up to
    ``max_response_bytes`` and every step has ``timeout``.
    """
    try:
        addresses = check_url(url, settings.allow_webhook_hosts)
    except UnsafeURL as exc:
        raise DeliveryError(str(exc), permanent=True) from None
    scheme, host, port = split_url(url)
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    cls = _PinnedHTTPS if scheme == "https" else _PinnedHTTP
    conn = cls(host, port, addresses[0], settings.timeout)
    deadline = time.monotonic() + settings.timeout * 3
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        answer = b""
        while len(answer) < settings.max_response_bytes and time.monotonic() < deadline:
            chunk = response.read(min(8192, settings.max_response_bytes - len(answer)))
            if not chunk:
                break
            answer += chunk
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
    finally:
        conn.close()
    if 200 <= status < 300:
        return status
    snippet = _one_line(answer.decode("utf-8", "replace"), 200)
    retry = status in (408, 425, 429) or status >= 500
    raise DeliveryError(f"HTTP {status}: {snippet}", permanent=not retry)


def send_email(msg: EmailMessage, smtp: SmtpSettings | None, timeout: float) -> None:
    """Send ``msg`` through the configured SMTP server; DeliveryError otherwise."""
    if smtp is None:
        raise DeliveryError("e-mail is not configured: start the server with --smtp-url", permanent=True)
    try:
        client: smtplib.SMTP
        if smtp.tls:
            client = smtplib.SMTP_SSL(
                smtp.host, smtp.port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=timeout)
        with client:
            if smtp.starttls:
                client.starttls(context=ssl.create_default_context())
            if smtp.username:
                client.login(smtp.username, smtp.password or "")
            client.send_message(msg, from_addr=smtp.sender)
    except smtplib.SMTPResponseException as exc:
        # 5xx: the server refuses this message for good; 4xx: try again later.
        raise DeliveryError(
            f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", permanent=exc.smtp_code >= 500
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryError(f"SMTP refused the recipient: {list(exc.recipients)}", permanent=True) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
