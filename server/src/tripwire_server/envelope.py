"""Parsing of Sentry envelopes (newline-delimited: a header line, then item header + payload pairs)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from . import _json


class EnvelopeError(ValueError):
    """The body is not a well-formed envelope; the message says what is wrong, for a 400 answer."""


@dataclasses.dataclass(frozen=True)
class Item:
    """One envelope item: its header (``type``, ``length``, ...) and raw payload bytes."""

    headers: dict[str, Any]
    payload: bytes

    @property
    def type(self) -> str:
        return str(self.headers.get("type", ""))

    def json(self) -> Any:
        """The payload parsed as JSON (EnvelopeError if it is not)."""
        try:
            return _json.loads(self.payload)
        except ValueError as exc:
            raise EnvelopeError(f"{self.type} item payload is not valid JSON: {exc}") from None


def _header(line: bytes, what: str, max_header: int) -> dict[str, Any]:
    if len(line) > max_header:
        raise EnvelopeError(f"{what} is longer than {max_header} bytes")
    try:
        value = _json.loads(line)
    except ValueError as exc:
        raise EnvelopeError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise EnvelopeError(f"{what} must be a JSON object")
    return value


def parse_envelope(
    body: bytes, *, max_header: int = 8192, max_items: int = 1000
) -> tuple[dict[str, Any], list[Item]]:
    """Split an envelope into its header and items; raise :class:`EnvelopeError` if malformed."""
    if not body.strip():
        raise EnvelopeError("empty envelope")
    end = len(body)
    nl = body.find(b"\n")
    header = _header(body[: nl if nl >= 0 else end], "envelope header", max_header)
    pos = nl + 1 if nl >= 0 else end
    items: list[Item] = []
    while pos < end:
        nl = body.find(b"\n", pos)
        line = body[pos : nl if nl >= 0 else end]
        pos = nl + 1 if nl >= 0 else end
        if not line.strip():
            continue  # trailing or blank lines between items are tolerated
        item_header = _header(line, f"item header #{len(items) + 1}", max_header)
        if not isinstance(item_header.get("type"), str) or not item_header["type"]:
            raise EnvelopeError(f"item header #{len(items) + 1} has no type")
        length = item_header.get("length")
        if length is not None:
            if not isinstance(length, int) or isinstance(length, bool) or length < 0:
                raise EnvelopeError(f"item #{len(items) + 1} has an invalid length {length!r}")
            payload = body[pos : pos + length]
            if len(payload) < length:
                raise EnvelopeError(
                    f"item #{len(items) + 1} is truncated: length says {length} bytes, {len(payload)} present"
                )
            pos += length
            if pos < end and body[pos : pos + 1] == b"\n":
                pos += 1
        else:
            nl = body.find(b"\n", pos)
            payload = body[pos : nl if nl >= 0 else end]
            pos = nl + 1 if nl >= 0 else end
        items.append(Item(item_header, payload))
        if len(items) > max_items:
            raise EnvelopeError(f"more than {max_items} items in one envelope")
    return header, items


class ItemTooLarge(EnvelopeError):
    """An item is over its size limit (answered 413 rather than 400)."""


#: Item types bounded by ``max_profile_size``.
PROFILE_TYPES = frozenset({"profile", "profile_chunk"})

_HEADER, _ITEM_HEADER, _PAYLOAD_LEN, _PAYLOAD_LINE, _AFTER_PAYLOAD = range(5)


class EnvelopeScanner:
    """Checks an envelope as its bytes arrive, holding at most one header line and one event.

    It accepts and refuses exactly what :func:`parse_envelope` followed by the ingest checks
    would (the fuzzing suite holds the two to that), but never holds the whole body: attachment
    and other payloads are only counted. Feed it the decompressed body in pieces of any size,
    then call :meth:`finish`. :attr:`header` is set as soon as the first line is complete, so a
    caller can authenticate from its ``dsn`` before reading further.
    """

    def __init__(
        self,
        *,
        max_header: int = 8192,
        max_items: int = 1000,
        max_event_size: int = 1024 * 1024,
        max_attachment_size: int = 20 * 1024 * 1024,
        max_profile_size: int = 10 * 1024 * 1024,
        quota_types: frozenset[str] = frozenset({"event", "transaction", "raw_security"}),
        check_event: Callable[[dict[str, Any]], str | None] | None = None,
    ) -> None:
        self.max_header = max_header
        self.max_items = max_items
        self.max_event_size = max_event_size
        self.max_attachment_size = max_attachment_size
        self.max_profile_size = max_profile_size
        self.quota_types = quota_types
        #: Says why an event payload is refused (None: accepted); called once per event item.
        self.check_event = check_event
        #: ``(type, item_count or 1)`` of each item so far: bounded by ``max_items``.
        self.kinds: list[tuple[str, int]] = []
        #: The envelope header, once its line is complete.
        self.header: dict[str, Any] | None = None
        #: Items that count against the event quota.
        self.quota_items = 0
        #: Attachment items (for the attachment budget, without a second look at the body).
        self.attachments = 0
        #: Their payload bytes (ingest counts what it accepted against the hourly budget).
        self.attachment_bytes = 0
        #: Attachment item headers seen (the item may not have arrived yet): ingest refuses early.
        self.attachment_headers = 0
        self.items = 0
        self._state = _HEADER
        self._line = bytearray()
        self._line_len = 0  # whitespace-only stretches of a line are not kept, only counted
        self._remaining = 0
        self._type = ""
        self._size = 0
        self._event: bytearray | None = None
        self._nonblank = False

    @property
    def buffered(self) -> int:
        """Bytes the scanner holds right now."""
        return len(self._line) + (len(self._event) if self._event is not None else 0)

    def feed(self, data: bytes) -> None:
        """Check the next piece of the body; raise EnvelopeError / ItemTooLarge at the first fault."""
        if not self._nonblank and data.strip():
            self._nonblank = True
        pos, end = 0, len(data)
        while pos < end:
            state = self._state
            if state in (_HEADER, _ITEM_HEADER):
                nl = data.find(b"\n", pos)
                stop = end if nl < 0 else nl
                self._add_to_line(data[pos:stop])
                if nl < 0:
                    return
                pos = nl + 1
                self._end_line()
            elif state == _PAYLOAD_LEN:
                take = min(self._remaining, end - pos)
                self._payload(data, pos, pos + take)
                self._remaining -= take
                pos += take
                if self._remaining == 0:
                    self._end_item()
                    self._state = _AFTER_PAYLOAD
            elif state == _AFTER_PAYLOAD:
                if data[pos] == 0x0A:  # the newline after a payload of declared length is optional
                    pos += 1
                self._state = _ITEM_HEADER
            else:  # _PAYLOAD_LINE
                nl = data.find(b"\n", pos)
                stop = end if nl < 0 else nl
                self._payload(data, pos, stop)
                if nl < 0:
                    return
                pos = nl + 1
                self._end_item()
                self._state = _ITEM_HEADER

    def finish(self) -> dict[str, Any]:
        """The body has ended: raise if it was incomplete, else return the envelope header."""
        if not self._nonblank:
            raise EnvelopeError("empty envelope")
        if self._state == _HEADER or (self._state == _ITEM_HEADER and self._line.strip()):
            self._end_line()  # a last line without its newline
        if self._state == _PAYLOAD_LEN and self._remaining:
            raise EnvelopeError(
                f"item #{self.items} is truncated: length says {self._size + self._remaining} bytes,"
                f" {self._size} present"
            )
        if self._state == _PAYLOAD_LINE or (self._state == _PAYLOAD_LEN and not self._remaining):
            self._end_item()
        self._state = _ITEM_HEADER
        assert self.header is not None
        return self.header

    def _add_to_line(self, piece: bytes) -> None:
        self._line_len += len(piece)
        self._line += piece
        if self._line_len > self.max_header:
            what = "envelope header" if self._state == _HEADER else f"item header #{self.items + 1}"
            if self._state == _HEADER or self._line.strip():
                raise EnvelopeError(f"{what} is longer than {self.max_header} bytes")
            self._line.clear()  # a blank line (skipped) may be long: count it, keep nothing

    def _end_line(self) -> None:
        line = bytes(self._line)
        self._line.clear()
        too_long = self._line_len > self.max_header
        self._line_len = 0
        if self._state == _HEADER:
            self.header = _header(line, "envelope header", self.max_header)
            self._state = _ITEM_HEADER
            return
        if not line.strip():
            return  # blank lines between items are tolerated
        number = self.items + 1
        if too_long:
            raise EnvelopeError(f"item header #{number} is longer than {self.max_header} bytes")
        item_header = _header(line, f"item header #{number}", self.max_header)
        kind = item_header.get("type")
        if not isinstance(kind, str) or not kind:
            raise EnvelopeError(f"item header #{number} has no type")
        self.items = number
        self._type = kind
        if kind == "attachment":
            self.attachment_headers += 1
        count = item_header.get("item_count")
        self.kinds.append((kind, count if type(count) is int and count > 0 else 1))
        self._size = 0
        self._event = bytearray() if kind == "event" else None
        length = item_header.get("length")
        if length is None:
            self._state = _PAYLOAD_LINE
            return
        if not isinstance(length, int) or isinstance(length, bool) or length < 0:
            raise EnvelopeError(f"item #{number} has an invalid length {length!r}")
        self._check_size(length)
        self._remaining = length
        self._state = _PAYLOAD_LEN
        if length == 0:
            self._end_item()
            self._state = _AFTER_PAYLOAD

    def _check_size(self, size: int) -> None:
        if self._type in self.quota_types and size > self.max_event_size:
            raise ItemTooLarge(
                f"{self._type} item of {size} bytes is over the {self.max_event_size} byte limit"
            )
        if self._type in PROFILE_TYPES and size > self.max_profile_size:
            raise ItemTooLarge(
                f"{self._type} item of {size} bytes is over the {self.max_profile_size} byte limit"
            )
        if self._type == "attachment" and size > self.max_attachment_size:
            raise ItemTooLarge(
                f"attachment of {size} bytes is over the {self.max_attachment_size} byte limit"
            )

    def _payload(self, data: bytes, start: int, stop: int) -> None:
        # Only an event's payload is kept; the others are only counted (no copy).
        self._size += stop - start
        self._check_size(self._size)
        if self._event is not None:
            self._event += data[start:stop]

    def _end_item(self) -> None:
        if self.items > self.max_items:
            raise EnvelopeError(f"more than {self.max_items} items in one envelope")
        if self._type in self.quota_types:
            self.quota_items += 1
        elif self._type == "attachment":
            self.attachments += 1
            self.attachment_bytes += self._size
        if self._event is not None:
            event, self._event = bytes(self._event), None
            try:
                payload = _json.loads(event)
            except ValueError as exc:
                raise EnvelopeError(f"event payload is not JSON: {exc}") from None
            if not isinstance(payload, dict):
                raise EnvelopeError("event payload must be a JSON object")
            if self.check_event is not None and (reason := self.check_event(payload)):
                raise EnvelopeError(reason)
            assert self.header is not None
            self.header.setdefault("event_id", payload.get("event_id"))
