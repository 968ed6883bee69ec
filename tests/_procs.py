"""Moved to ``tests/helpers/procs.py``; this shim keeps older imports working."""

from tests.helpers import free_port
from tests.helpers.procs import ROOT, TokentailProcess

__all__ = ["ROOT", "TokentailProcess", "free_port"]
