"""Erasing captured content from the spans table, keeping every number (writer thread).

An erased span keeps its ids, attribution, model, status, usage, timings and cost; it loses
``input_messages``, ``output_messages`` and ``system_instructions``, its events keep only
their names, times and numeric attributes, its attributes only numbers, booleans and the few
string attributes known to be metadata (``METADATA_STRINGS``: a free-form string may carry a
prompt). ``content_erased_at`` says when. ``strip_row`` does the same to a row on its way in
(a span of an erased session that arrives late: no resurrection, see ``tokentail.erasure``).

Space: an UPDATE leaves the old column segments in the file's free blocks until DuckDB
writes over them, so a checkpoint alone would keep the erased text on disk. ``compact``
copies the database into a fresh file (DuckDB's documented way to reclaim space) and swaps
it in; ``Store.erase`` does it after every API erase, content retention at most once per
``compact_interval``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from .. import semconv as sc
from ..erasure import Selector

log = logging.getLogger("tokentail.collector.erase")

CONTENT_COLUMNS = ("input_messages", "output_messages", "system_instructions")
# String attributes that are metadata, not content (any other string is dropped on erase).
METADATA_STRINGS = frozenset(
    {
        sc.RESPONSE_ID,
        sc.SERVER_ADDRESS,
        sc.TT_UPSTREAM_MODEL,
        sc.TT_REPLAY_OF,
        "gen_ai.output.type",
        "gen_ai.request.encoding_formats",
        "tokentail.proxy",
    }
)
BATCH_ROWS = 5_000


def _keep(key: str, value: Any) -> bool:
    if isinstance(value, (bool, int, float)):
        return True
    if isinstance(value, list):
        return all(isinstance(v, (bool, int, float)) for v in value)
    return isinstance(value, str) and key in METADATA_STRINGS


def metadata_attributes(text: str | None) -> str | None:
    """An attributes JSON object with only metadata left (see the module docstring)."""
    if not text:
        return text
    try:
        attrs = json.loads(text)
    except ValueError:
        return None
    if not isinstance(attrs, dict):
        return None
    return json.dumps({k: v for k, v in attrs.items() if _keep(k, v)}, ensure_ascii=False)


def metadata_events(text: str | None) -> str | None:
    """Events JSON with names, times and numeric attributes only; the operation details
    event (which carries the messages) goes whole."""
    if not text:
        return text
    try:
        events = json.loads(text)
    except ValueError:
        return None
    if not isinstance(events, list):
        return None
    out = []
    for ev in events:
        if not isinstance(ev, dict) or ev.get("name") == sc.EVENT_OPERATION_DETAILS:
            continue
        attrs = ev.get("attributes")
        attrs = attrs if isinstance(attrs, dict) else {}
        kept = {"name": ev.get("name"), "attributes": {k: v for k, v in attrs.items() if _keep(k, v)}}
        if "time" in ev:
            kept["time"] = ev["time"]
        out.append(kept)
    return json.dumps(out, ensure_ascii=False) if out else None


def strip_row(row: dict[str, Any], erased_at: float) -> dict[str, Any]:
    """``row`` (a spans row about to be inserted) without its content."""
    out = {**row, **dict.fromkeys(CONTENT_COLUMNS)}
    out["attributes"] = metadata_attributes(row.get("attributes"))
    out["events"] = metadata_events(row.get("events"))
    out["size_bytes"] = len(out["attributes"] or "") + len(out["events"] or "")
    out["content_erased_at"] = erased_at
    return out


_ERASED_SCHEMA = pa.schema(
    [("request_id", pa.string()), ("start_time", pa.float64()), ("attributes", pa.string()), ("events", pa.string())]
)


def erase_batch(con: duckdb.DuckDBPyConnection, where: str, args: list[Any], now: float, limit: int) -> int:
    """Erase the content of at most ``limit`` spans matching ``where`` not yet erased
    (one transaction, the caller's); returns how many."""
    rows = con.execute(
        f"SELECT request_id, start_time, attributes, events FROM spans "
        f"WHERE content_erased_at IS NULL AND ({where}) LIMIT ?",
        [*args, limit],
    ).fetchall()
    if not rows:
        return 0
    table = pa.Table.from_pylist(
        [
            {"request_id": r, "start_time": t, "attributes": metadata_attributes(a), "events": metadata_events(e)}
            for r, t, a, e in rows
        ],
        schema=_ERASED_SCHEMA,
    )
    con.register("erased_batch", table)
    try:
        con.execute(
            "UPDATE spans SET input_messages = NULL, output_messages = NULL, system_instructions = NULL, "
            "attributes = b.attributes, events = b.events, "
            "size_bytes = length(coalesce(b.attributes, '')) + length(coalesce(b.events, '')), "
            "content_erased_at = ? FROM erased_batch b "
            "WHERE spans.request_id = b.request_id AND spans.start_time = b.start_time "
            "AND spans.content_erased_at IS NULL",
            [now],
        )
    finally:
        con.unregister("erased_batch")
    return len(rows)


def content_retention_where(cutoff: float) -> tuple[str, list[Any]]:
    """Spans whose content outlived ``--content-retention`` (by arrival, as span retention)."""
    return "received_at < ?", [cutoff]


def load_ledger(con: duckdb.DuckDBPyConnection) -> list[tuple[Selector, float]]:
    out = []
    for text, at in con.execute("SELECT selector, erased_at FROM erase_ledger ORDER BY id").fetchall():
        try:
            out.append((Selector(**json.loads(text)), at))
        except (ValueError, TypeError):
            continue  # written by this module: never expected
    return out


def record_erase(con: duckdb.DuckDBPyConnection, sel: Selector, now: float, limit: int) -> None:
    """Add ``sel`` to the ledger table, dropping the oldest beyond ``limit``."""
    next_id = con.execute("SELECT coalesce(max(id), 0) + 1 FROM erase_ledger").fetchall()[0][0]
    con.execute("INSERT INTO erase_ledger VALUES (?, ?, ?)", [next_id, now, json.dumps(sel.as_json())])
    con.execute("DELETE FROM erase_ledger WHERE id <= ?", [next_id - limit])


def compact(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Copy the database at ``path`` (open on ``con``) into a fresh file beside it; the
    caller closes ``con`` and calls ``swap``."""
    tmp = path.with_name(path.name + ".compact")
    for p in (tmp, tmp.with_name(tmp.name + ".wal")):
        p.unlink(missing_ok=True)
    con.execute("CHECKPOINT")
    name = con.execute("SELECT current_database()").fetchall()[0][0]
    con.execute(f"ATTACH '{_sql_str(str(tmp))}' AS tokentail_compact")
    try:
        con.execute(f'COPY FROM DATABASE "{name}" TO tokentail_compact')
    finally:
        con.execute("DETACH tokentail_compact")


def swap(path: Path) -> None:
    """Put the compacted copy in place of ``path`` (the old file's connection is closed)."""
    tmp = path.with_name(path.name + ".compact")
    os.replace(tmp, path)
    path.with_name(path.name + ".wal").unlink(missing_ok=True)


def _sql_str(s: str) -> str:
    return s.replace("'", "''")
