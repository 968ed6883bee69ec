"""Moved to ``tests/helpers/procs.py``; this shim keeps older imports working."""

from tests.helpers.procs import *  # noqa: F403
from tests.helpers.procs import __all__  # noqa: F401
