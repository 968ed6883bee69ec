"""What a Dash callback request (``POST /_dash-update-component``) must hold (pure, no I/O).

Dash reads the body's keys without checking them: a body that is not an object, names no
registered callback or carries inputs of the wrong type raised inside Dash (``KeyError:
'output'``) and came back as a 500 with a traceback in the log. The page never sends such a
body, so anything that does gets a 400 naming what is wrong, before Dash sees it.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

__all__ = ["problem"]


def _dependency(item: Any) -> bool:
    """One input or state: ``{"id", "property", ...}``, or a list of them (a wildcard's)."""
    if isinstance(item, list):
        return all(isinstance(i, dict) for i in item)
    return isinstance(item, dict)


def problem(body: Any, outputs: Container[str]) -> str | None:
    """Why ``body`` is not a callback request for one of ``outputs`` (the app's callback map
    keys), or None when it is one."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    output = body.get("output")
    if not isinstance(output, str) or not output:
        return "'output' must name the callback's output"
    if output not in outputs:
        return "no callback has that output"
    for key in ("inputs", "state"):
        value = body.get(key, [])
        if not isinstance(value, list) or not all(_dependency(v) for v in value):
            return f"'{key}' must be a list of dependencies"
    changed = body.get("changedPropIds", [])
    if not isinstance(changed, list) or not all(isinstance(c, str) for c in changed):
        return "'changedPropIds' must be a list of strings"
    return None
