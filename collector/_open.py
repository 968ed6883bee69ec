"""Opening the DuckDB file: recovery only for corruption DuckDB itself reports, one clear line for the rest.

What is set aside is decided by the class of DuckDB's error, never by words in its
message (an I/O error naming the WAL, or a path containing "Corrupt", is no corruption):

- Corruption (``is_corruption``): DuckDB 2.x raises its ``DataCorruptionException`` (a
  block or WAL entry whose checksum does not match) as the base ``duckdb.Error``: the
  Python package has no subclass for it, while every other error seen at open (I/O,
  lock, configuration, out of memory) has its own. Every block and WAL entry is
  checksummed, so damage shows up as this before anything is deserialised; a
  ``SerializationException`` at open is rather a file written by a newer DuckDB, and is
  left alone like any other error. The WAL is moved aside first (changes since the last
  checkpoint, kept for inspection); if the file is still corrupt without it, the file
  goes too and the collector starts a new one, with a loud log each time, rather than
  crash-looping on every restart. (A torn WAL tail, as a full disk leaves it, DuckDB
  replays up to the tear by itself.)
- A file cut while DuckDB created it (kill -9 at the very first start: smaller than
  DuckDB's three headers) is replaced the same way; it never held data.
- Everything else (the lock of another process, permission denied, a disk I/O error, a
  WAL path that is a directory, a foreign file) is the user's to fix, or passes: the
  open is retried a few times over about a second and a half, then ``StoreError`` with
  one line, and the collector exits non-zero. Never an empty start over a file we
  could not read.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import duckdb

log = logging.getLogger("tokentail.collector.store")

_MAGIC = b"DUCK"  # bytes 8..12 of every DuckDB file
_HEADER_BYTES = 3 * 4096  # main header + two database headers

# Attempts at opening on an error that is not corruption, and the pause before the
# n-th retry (n * RETRY_DELAY): a predecessor still closing the file, a passing I/O error.
ATTEMPTS = 3
RETRY_DELAY = 0.5


class StoreError(RuntimeError):
    """A problem with the database file worth one clear line (and exit 1)."""


def is_corruption(exc: BaseException) -> bool:
    """True when DuckDB itself says the bytes on disk are damaged (see module docstring)."""
    return type(exc) is duckdb.Error


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    text = re.sub(r"^(IO|Invalid Input|Catalog|Serialization|Fatal|Internal|Permission) Error: ", "", text)
    text = text.split(" See also https://")[0]
    return text.splitlines()[0] if text else type(exc).__name__


def move_aside(path: Path, why: str) -> Path:
    """Rename ``path`` to ``path.<why>-<UTC time>`` and return the new name."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest = path.with_name(f"{path.name}.{why}-{stamp}")
    n = 1
    while dest.exists():
        dest = path.with_name(f"{path.name}.{why}-{stamp}.{n}")
        n += 1
    os.replace(path, dest)
    return dest


def _head(path: Path) -> tuple[int, bytes] | None:
    """Size and first bytes of ``path``; None when it is missing or cannot be read."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            return size, fh.read(_HEADER_BYTES)
    except OSError:
        return None


def _is_incomplete_creation(head: tuple[int, bytes] | None) -> bool:
    """True for a file cut while DuckDB was creating it (kill -9 at the first start)."""
    if head is None:
        return False
    size, data = head
    if size == 0:
        return True
    return size < _HEADER_BYTES and (data[8:12] == _MAGIC or not data.strip(b"\x00"))


def _is_foreign(head: tuple[int, bytes] | None) -> bool:
    """True for a file that does not carry DuckDB's magic bytes (and is not one cut at creation)."""
    return head is not None and not _is_incomplete_creation(head) and head[1][8:12] != _MAGIC


def _not_ours(path: Path, exc: duckdb.Error) -> StoreError:
    """The one line for an error that is not corruption (after the retries)."""
    msg = str(exc)
    if isinstance(exc, duckdb.IOException) and "lock" in msg.lower():
        pid = re.search(r"\(PID (\d+)\)", msg)
        holder = f" (PID {pid.group(1)})" if pid else ""
        return StoreError(
            f"database {path} is in use by another process{holder}: only one collector may write a "
            f"DuckDB file; stop it or use another --db (dashboards read through the collector's API)"
        )
    return StoreError(f"cannot open database {path}: {_first_line(exc)} (nothing was moved or deleted)")


def connect(path: Path, config: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) the database at ``path`` for writing, or raise ``StoreError``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the directory for the database {path}: {exc.strerror or exc}") from None
    if path.is_dir():
        raise StoreError(f"database path {path} is a directory; give a file name (e.g. {path / 'tokentail.duckdb'})")
    if _is_foreign(_head(path)):
        raise StoreError(f"{path} exists but is not a DuckDB database; refusing to touch it (choose another --db)")
    wal = path.with_name(path.name + ".wal")
    moved: set[str] = set()
    failures = 0
    while True:
        try:
            return duckdb.connect(str(path), config=config)
        except duckdb.Error as exc:
            if is_corruption(exc):
                _recover(path, wal, exc, moved)
                continue
            if "db" not in moved and _is_incomplete_creation(_head(path)):
                dest = move_aside(path, "incomplete")
                moved.add("db")
                if wal.exists():
                    move_aside(wal, "incomplete")
                log.error(
                    "DATABASE RECOVERY: %s was cut while being created; moved it to %s and starting a new database.",
                    path,
                    dest,
                )
                continue
            failures += 1
            if failures >= ATTEMPTS:
                raise _not_ours(path, exc) from None
            log.warning("cannot open database %s (%s); retrying", path, _first_line(exc))
            time.sleep(RETRY_DELAY * failures)


def _recover(path: Path, wal: Path, exc: duckdb.Error, moved: set[str]) -> None:
    """Set the WAL aside, or, once it is gone and the file is still corrupt, the file."""
    if "wal" not in moved and wal.exists():
        dest = move_aside(wal, "corrupt")
        moved.add("wal")
        log.error(
            "DATABASE RECOVERY: %s or its write-ahead log is corrupt (%s). Moved the log to %s; changes "
            "since the last checkpoint are in that file, not in the database. Trying the last checkpoint.",
            path,
            _first_line(exc),
            dest,
        )
        return
    if "db" not in moved:
        dest = move_aside(path, "corrupt")
        moved.add("db")
        if wal.exists():  # written by a failed open: it belongs to the file set aside
            move_aside(wal, "corrupt")
        log.error(
            "DATABASE RECOVERY: %s is corrupt (%s); moved it to %s and starting a new database.",
            path,
            _first_line(exc),
            dest,
        )
        return
    raise StoreError(f"cannot open database {path}: a new file is corrupt at once: {_first_line(exc)}") from None
