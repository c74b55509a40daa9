"""An on-disk spool of payloads a backend could not take yet, re-sent when it is back.

One file per payload, named so that sorting by name is oldest first:
``<ns timestamp>-<pid>-<seq>.twp``, holding one JSON line of metadata and then the zlib-compressed
body. Files are written to a temporary name and renamed into place, so a crash never leaves half a
payload behind. A process sending a file first renames it to ``<name>.claim-<pid>``, so two processes
sharing the directory never send the same file twice; a claim left by a dead process is taken back.

The spool is bounded in bytes: when a new file would not fit, the oldest files are deleted (and
reported to ``on_evict`` so the loss is counted).
"""

from __future__ import annotations

import json
import os
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

from .._forksafe import renew_lock_after_fork
from .._log import logger

SUFFIX = ".twp"
CLAIM = ".claim-"


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":
        return True  # os.kill(pid, 0) would terminate the process on Windows: never take claims back
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


class Spool:
    """A bounded directory of payloads; all methods are thread-safe and never raise ``OSError``."""

    def __init__(
        self,
        directory: str,
        max_bytes: int,
        on_evict: Callable[[dict[str, Any]], None] | None = None,
        on_corrupt: Callable[[], None] | None = None,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._on_evict = on_evict
        #: Called for every unreadable file dropped (so that its loss is counted).
        self._on_corrupt = on_corrupt
        self._lock = threading.Lock()
        renew_lock_after_fork(self)
        self._seq = 0
        self._entries: dict[str, int] = {}  # file name -> size, for files not claimed
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            logger.warning("tripwire: spool directory %s is unusable: %s", directory, exc)
        self.scan()

    # -- bookkeeping ---------------------------------------------------------------------------
    def scan(self) -> int:
        """Re-read the directory (other processes may share it); returns the number of files."""
        entries: dict[str, int] = {}
        try:
            names = os.listdir(self.directory)
        except OSError:
            names = []
        for name in names:
            if CLAIM in name:
                base, _, pid = name.rpartition(CLAIM)
                if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                    try:
                        os.replace(self._path(name), self._path(base))
                        name = base
                    except OSError:
                        continue
                else:
                    continue
            if not name.endswith(SUFFIX):
                continue
            try:
                entries[name] = os.stat(self._path(name)).st_size
            except OSError:
                continue
        with self._lock:
            self._entries = entries
            return len(entries)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def size(self) -> int:
        with self._lock:
            return sum(self._entries.values())

    def _path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    # -- writing -------------------------------------------------------------------------------
    def write(self, meta: dict[str, Any], body: bytes) -> bool:
        """Store a payload; False (and nothing written) if it cannot be stored at all."""
        data = json.dumps(meta, separators=(",", ":")).encode() + b"\n" + zlib.compress(body, 6)
        if len(data) > self.max_bytes:
            return False
        with self._lock:
            self._seq += 1
            name = f"{time.time_ns():020d}-{os.getpid()}-{self._seq:06d}{SUFFIX}"
            evicted = self._make_room(len(data))
        for old_meta in evicted:
            if self._on_evict is not None:
                self._on_evict(old_meta)
        tmp = self._path(f".{name}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, self._path(name))
        except OSError as exc:
            logger.warning("tripwire: could not write to the spool %s: %s", self.directory, exc)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return False
        with self._lock:
            self._entries[name] = len(data)
        return True

    def _make_room(self, needed: int) -> list[dict[str, Any]]:
        """Delete the oldest files until ``needed`` more bytes fit (lock held); their metadata."""
        evicted: list[dict[str, Any]] = []
        total = sum(self._entries.values())
        for name in sorted(self._entries):
            if total + needed <= self.max_bytes:
                break
            total -= self._entries.pop(name)
            path = self._path(name)
            meta = self._read_meta(path)
            try:
                os.unlink(path)
            except OSError:
                continue  # another process took it first
            evicted.append(meta or {})
        return evicted

    @staticmethod
    def _read_meta(path: str) -> dict[str, Any] | None:
        try:
            with open(path, "rb") as fh:
                line = fh.readline()
            meta = json.loads(line)
        except (OSError, ValueError, RecursionError):
            return None
        return meta if isinstance(meta, dict) else None

    # -- reading -------------------------------------------------------------------------------
    def claim_oldest(self) -> tuple[str, dict[str, Any], bytes] | None:
        """Take the oldest file: ``(claim path, metadata, body)``; None when the spool is empty.

        Give it back with :meth:`release` (delivered: deleted; not delivered: returned to the spool).
        """
        while True:
            with self._lock:
                if not self._entries:
                    return None
                name = min(self._entries)
                self._entries.pop(name)
            claimed = self._path(f"{name}{CLAIM}{os.getpid()}")
            try:
                os.replace(self._path(name), claimed)
                with open(claimed, "rb") as fh:
                    raw = fh.read()
            except OSError:
                continue  # another process claimed it
            header, _, packed = raw.partition(b"\n")
            try:
                meta = json.loads(header)
                body = zlib.decompress(packed)
                if not isinstance(meta, dict):
                    raise ValueError("metadata is not an object")
            except (ValueError, zlib.error, RecursionError):
                logger.warning("tripwire: dropping a corrupt spool file %s", claimed)
                self._unlink(claimed)
                if self._on_corrupt is not None:
                    self._on_corrupt()
                continue
            return claimed, meta, body

    def release(self, claimed: str, delivered: bool) -> None:
        """Delete a claimed file (``delivered``) or put it back in the spool."""
        if delivered:
            self._unlink(claimed)
            return
        name = os.path.basename(claimed).rpartition(CLAIM)[0]
        try:
            os.replace(claimed, self._path(name))
            size = os.stat(self._path(name)).st_size
        except OSError:
            return
        with self._lock:
            self._entries[name] = size

    @staticmethod
    def _unlink(path: str) -> None:
        try:
            os.unlink(path)
        except OSError:
            pass
