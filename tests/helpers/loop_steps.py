"""How long this process's event loop is held, by step, in CPU time (the stall test and
``bench/content_stall_bench.py``).

``LoopSteps.install`` wraps ``asyncio.events.Handle._run`` (every callback and task step
runs through it) and records each step's CPU time in this thread (``time.thread_time``):
what the loop itself spent on the step, which another process or a loaded machine does not
inflate, unlike the wall clock. Steps over ``name_over`` seconds are also named (a task
step by its coroutine and the line it stopped at next; else the callback).
"""

from __future__ import annotations

import asyncio
import time
from asyncio import events
from collections.abc import Callable

__all__ = ["LoopSteps"]


class LoopSteps:
    def __init__(self, name_over: float = 0.005) -> None:
        self.name_over = name_over
        self.times: list[float] = []
        self.named: list[tuple[float, str]] = []
        self._original: Callable[[events.Handle], None] | None = None

    def install(self) -> LoopSteps:
        run = self._original = events.Handle._run
        times, named, over = self.times, self.named, self.name_over

        def timed(handle: events.Handle) -> None:
            t = time.thread_time()
            run(handle)
            dt = time.thread_time() - t
            times.append(dt)
            if dt > over:
                named.append((dt, _what(handle)))

        events.Handle._run = timed  # type: ignore[method-assign]
        return self

    def uninstall(self) -> None:
        if self._original is not None:
            events.Handle._run = self._original  # type: ignore[method-assign]
            self._original = None

    def clear(self) -> None:
        self.times.clear()
        self.named.clear()

    @property
    def longest(self) -> float:
        return max(self.times, default=0.0)

    def top(self, n: int) -> list[tuple[float, str]]:
        return sorted(self.named, reverse=True)[:n]


def _what(handle: events.Handle) -> str:
    cb = getattr(handle, "_callback", None)
    task = getattr(cb, "__self__", None)
    if isinstance(task, asyncio.Task):
        coro = task.get_coro()
        frame = getattr(coro, "cr_frame", None)
        where = f"{frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno}" if frame is not None else "done"
        return f"task {getattr(coro, '__qualname__', coro)} (now at {where})"
    return repr(cb)[:100]
