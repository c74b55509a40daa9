"""Large bodies kept as files next to the SQLite database instead of in it.

SQLite has one writer at a time. Committing a 15 MiB row into it (an attachment envelope) takes
150-400 ms here, and every other write, the ingest writer's acknowledgements of small envelopes
included, waits behind it. Written to a file of its own, the same bytes are synced without the
database's write lock, and the row that commits only names the file: small commits never wait
behind megabytes.

A file is written whole and synced under a temporary name, then renamed (and the directory
synced), so a name that a committed row holds always reads back the whole body. Files are removed
only after the transaction that dropped their row has committed; a crash in between (or between
writing a file and committing its row) leaves a file no row names, which :meth:`BlobFiles.sweep`
removes once it is old enough that no writer can still be about to commit a row naming it.

PostgreSQL keeps bodies in its rows: collectors on several hosts share the database but not a
local directory, and its writers do not queue behind one another as SQLite's do.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("tripwire_server")

#: Bodies (queued envelopes, attachments) of this many bytes and more are kept as files.
FILE_FROM = 256 * 1024

#: A file no row names is removed once it is this old: far longer than any writer takes between
#: writing a file and committing the row that names it (a lock wait gives up after 60 s).
ORPHAN_AGE = 600.0

_SUFFIX = ".blob"


class BlobFiles:
    """A directory of write-once files, each named by a random name that a database row holds."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def write(self, data: bytes) -> str:
        """Write ``data`` durably to a new file and return its name."""
        self.directory.mkdir(parents=True, exist_ok=True)
        name = uuid.uuid4().hex + _SUFFIX
        tmp = self.directory / (name + ".tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, self.directory / name)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._sync_directory()
        return name

    def read(self, name: str) -> bytes:
        """The bytes of file ``name`` (:class:`FileNotFoundError` if it is gone)."""
        return (self.directory / _checked(name)).read_bytes()

    def remove(self, names: Iterable[str]) -> None:
        """Remove files whose rows are gone (already committed); a missing file is no error."""
        for name in names:
            try:
                (self.directory / _checked(name)).unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("could not remove %s (the next sweep will): %s", name, exc)

    def names(self, older_than: float) -> list[str]:
        """Files (and unfinished temporary files) last written before ``older_than`` (epoch s)."""
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return []
        out = []
        for entry in entries:
            if not entry.name.endswith((_SUFFIX, _SUFFIX + ".tmp")):
                continue
            try:
                if entry.stat().st_mtime < older_than:
                    out.append(entry.name)
            except FileNotFoundError:
                continue
        return out

    def sweep(self, candidates: list[str], referenced: set[str]) -> int:
        """Remove the ``candidates`` (from :meth:`names`) that no row names; how many."""
        orphans = [name for name in candidates if name not in referenced]
        for name in orphans:
            with contextlib.suppress(FileNotFoundError):
                (self.directory / name).unlink()
        return len(orphans)

    def _sync_directory(self) -> None:
        # The rename is durable only once the directory entry is synced.
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _checked(name: str) -> str:
    # Names come from our own rows; refuse anything that could leave the directory all the same.
    if "/" in name or "\\" in name or name.startswith(".") or not name.endswith(_SUFFIX):
        raise ValueError(f"not a blob file name: {name!r}")
    return name


def orphan_cutoff(now: float | None = None, age: float = ORPHAN_AGE) -> float:
    """Files last written before this may be swept."""
    return (time.time() if now is None else now) - age
