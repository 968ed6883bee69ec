"""Replay links in the spans table: ``replay_of`` (the original) and ``replays`` (the copies).

A replayed request carries ``X-Tokentail-Replay-Of: <id>``; the proxy stamps its span
with ``tokentail.replay_of`` (see ``proxy.hooks.MarkReplay``), which lands in the span's
``attributes`` JSON, so the link needs no column of its own and no migration.
"""

from __future__ import annotations

from typing import Any

from .query import fetch_span

REPLAY_OF = "tokentail.replay_of"
_REPLAY_OF_SQL = "json_extract_string(attributes, '$.\"tokentail.replay_of\"')"
MAX_REPLAYS = 100


def fetch_span_linked(cur: Any, request_id: str) -> dict[str, Any] | None:
    """``query.fetch_span`` plus ``replay_of`` (an id or None) and ``replays`` (ids, oldest first)."""
    row = fetch_span(cur, request_id)
    if row is None:
        return None
    attrs = row.get("attributes")
    row["replay_of"] = attrs.get(REPLAY_OF) if isinstance(attrs, dict) else None
    row["replays"] = [
        r[0]
        for r in cur.execute(
            f"SELECT request_id FROM spans WHERE {_REPLAY_OF_SQL} = ? ORDER BY start_time LIMIT {MAX_REPLAYS}",
            [request_id],
        ).fetchall()
    ]
    return row
