"""Opening the DuckDB file: one clear line for what a user can fix, recovery for what they cannot.

A lock held by another process, an unwritable directory or a foreign file are the
user's to fix: ``StoreError`` with one line naming the problem. A write-ahead log
that cannot be replayed (corrupt, or cut by a full disk) or a file cut while being
created are ours: they are moved aside with a loud log, and the collector starts,
rather than crash-looping on every restart.
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


class StoreError(RuntimeError):
    """A problem with the database file worth one clear line (and exit 1)."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    text = re.sub(r"^(IO|Invalid Input|Catalog|Serialization|Fatal|Internal) Error: ", "", text)
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


def _is_incomplete_creation(path: Path) -> bool:
    """True for a file cut while DuckDB was creating it (kill -9 at the first start)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(_HEADER_BYTES)
    except OSError:
        return False
    if size == 0:
        return True
    return size < _HEADER_BYTES and (head[8:12] == _MAGIC or not head.strip(b"\x00"))


def connect(path: Path, config: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) the database at ``path`` for writing, or raise ``StoreError``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the directory for the database {path}: {exc.strerror or exc}") from None
    if path.is_dir():
        raise StoreError(f"database path {path} is a directory; give a file name (e.g. {path / 'tokentail.duckdb'})")
    wal = path.with_name(path.name + ".wal")
    moved: set[str] = set()
    while True:
        try:
            return duckdb.connect(str(path), config=config)
        except duckdb.Error as exc:
            msg = str(exc)
            if "Could not set lock" in msg or "Conflicting lock" in msg:
                pid = re.search(r"\(PID (\d+)\)", msg)
                holder = f" (PID {pid.group(1)})" if pid else ""
                raise StoreError(
                    f"database {path} is in use by another process{holder}: only one collector may write a "
                    f"DuckDB file; stop it or use another --db (dashboards read through the collector's API)"
                ) from None
            if "WAL" in msg and wal.exists() and "wal" not in moved:
                dest = move_aside(wal, "corrupt")
                moved.add("wal")
                log.error(
                    "DATABASE RECOVERY: the write-ahead log of %s could not be replayed (%s). "
                    "Moved it to %s; changes since the last checkpoint are in that file, not in the "
                    "database. Starting from the last checkpoint.",
                    path,
                    _first_line(exc),
                    dest,
                )
                continue
            if "not a valid DuckDB database" in msg and _is_incomplete_creation(path) and "db" not in moved:
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
            if "not a valid DuckDB database" in msg:
                raise StoreError(
                    f"{path} exists but is not a DuckDB database; refusing to touch it (choose another --db)"
                ) from None
            if ("Corrupt" in msg or "checksum" in msg) and "db" not in moved:
                dest = move_aside(path, "corrupt")
                moved.add("db")
                if wal.exists():
                    move_aside(wal, "corrupt")
                log.error(
                    "DATABASE RECOVERY: %s is corrupt (%s); moved it to %s and starting a new database.",
                    path,
                    _first_line(exc),
                    dest,
                )
                continue
            raise StoreError(f"cannot open database {path}: {_first_line(exc)}") from None
