"""Request bodies: incremental decompression in bounded steps (gzip, deflate, br, identity).

A decompression bomb is only as dangerous as the largest piece it can make the server produce at
once: :meth:`Decoder.inflate` yields at most ``step`` bytes at a time, so the caller checks, counts
and can pause between pieces, and never holds more than one of them.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

import brotli

#: Content-Encodings the ingest endpoints accept ("" and "identity": not compressed).
ENCODINGS = ("", "identity", "gzip", "x-gzip", "deflate", "br")


class DecodeError(ValueError):
    """The body is not valid for its Content-Encoding (a 400)."""


class UnsupportedEncoding(ValueError):
    """A Content-Encoding the collector does not decode (a 415)."""


def _zlib_wbits(first: bytes) -> int:
    # "deflate" is zlib-wrapped per RFC 9110, but some clients send raw deflate.
    wrapped = len(first) >= 2 and (first[0] & 0x0F) == 8 and ((first[0] << 8) | first[1]) % 31 == 0
    return zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS


class Decoder:
    """Decompresses one body fed in pieces, never producing more than ``step`` bytes at a time."""

    def __init__(self, encoding: str) -> None:
        if encoding not in ENCODINGS:
            raise UnsupportedEncoding(f"unsupported Content-Encoding {encoding!r}: use gzip, deflate or br")
        self.encoding = encoding
        self.compressed = encoding not in ("", "identity")
        self._zlib: Any = None
        self._brotli: Any = None
        self._head = b""
        #: Largest piece of output :meth:`inflate` produces at once.
        self.step = 64 * 1024
        #: Compressed bytes decoded so far (for the inflate-ratio limit).
        self.consumed = 0
        if encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "br":
            self._brotli = brotli.Decompressor()

    def inflate(self, data: bytes, step: int | None = None) -> Iterator[bytes]:
        """The decompressed output of ``data``, in pieces of at most ``step`` bytes (default:
        :attr:`step`, which the caller may change between pieces)."""
        if step is not None:
            self.step = step
        if not self.compressed:
            pos = 0
            while pos < len(data):
                piece = data[pos : pos + self.step] if pos or len(data) > self.step else data
                pos += len(piece)
                self.consumed += len(piece)
                yield piece
            return
        try:
            if self.encoding == "deflate" and self._zlib is None:
                # Whether it is zlib-wrapped shows in the first two bytes: wait for both.
                data = self._head + data
                if len(data) < 2:
                    self._head = data
                    return
                self._head = b""
                self._zlib = zlib.decompressobj(_zlib_wbits(data))
            if self._zlib is not None:
                out = self._zlib_step(data)
                # A full piece may leave output pending inside zlib even when all input was taken.
                while out:
                    full = len(out) >= self.step
                    yield out
                    if not full and not self._zlib.unconsumed_tail:
                        return
                    out = self._zlib_step(self._zlib.unconsumed_tail)
                return
            # brotli takes all the input at once, rounds the limit up to its own block size and
            # may keep output pending while it says it can take more: drain until nothing comes.
            self.consumed += len(data)
            out = self._brotli.process(data, output_buffer_limit=self.step)
            while out:
                for start in range(0, len(out), self.step):
                    yield bytes(out[start : start + self.step])
                if self._brotli.is_finished():
                    return
                out = self._brotli.process(b"", output_buffer_limit=self.step)
        except (zlib.error, brotli.error) as exc:
            raise DecodeError(f"could not decompress the {self.encoding} body: {exc}") from None

    def _zlib_step(self, data: bytes) -> bytes:
        out: bytes = self._zlib.decompress(data, self.step)
        self.consumed += len(data) - len(self._zlib.unconsumed_tail)
        return out

    def finish(self) -> None:
        """The body has ended: raise :class:`DecodeError` if the compressed stream was cut short."""
        if self._head:
            raise DecodeError("truncated deflate body")
        if self._zlib is not None and not self._zlib.eof and self.encoding != "deflate":
            raise DecodeError(f"truncated {self.encoding} body")
        if self._brotli is not None and not self._brotli.is_finished():
            raise DecodeError("truncated br body")


def decode_stored(body: bytes, encoding: str) -> bytes:
    """Decompress a queued body that was already checked against the limits at ingest."""
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body)
    if encoding == "deflate":
        return zlib.decompressobj(_zlib_wbits(body)).decompress(body)
    if encoding == "br":
        return bytes(brotli.decompress(body))
    return body
