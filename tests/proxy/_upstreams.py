"""Moved to ``tests/helpers/upstreams.py``; this shim keeps older imports working."""

from tests.helpers.upstreams import Probe, firehose, scripted_sse, serve

__all__ = ["Probe", "firehose", "scripted_sse", "serve"]
