"""Moved to ``tests/helpers/prom.py``; this shim keeps older imports working."""

from tests.helpers.prom import *  # noqa: F403
from tests.helpers.prom import __all__  # noqa: F401
