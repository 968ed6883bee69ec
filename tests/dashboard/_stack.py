"""Moved to ``tests/helpers/stack.py``; this shim keeps older imports working."""

from tests.helpers.stack import PRICING, DeltaClock, LoopThread, Proc, Stack, Stream, free_port, stream_chat, wait_port

__all__ = ["PRICING", "DeltaClock", "LoopThread", "Proc", "Stack", "Stream", "free_port", "stream_chat", "wait_port"]
