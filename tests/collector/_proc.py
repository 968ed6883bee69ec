"""Moved to ``tests/helpers/procs.py``; this shim keeps older imports working."""

from tests.helpers.procs import CollectorProcess, run_cli

__all__ = ["CollectorProcess", "run_cli"]
