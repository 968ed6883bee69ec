"""Moved to ``tests/helpers/fakes.py``; this shim keeps older imports working."""

from tests.helpers.fakes import *  # noqa: F403
from tests.helpers.fakes import __all__  # noqa: F401
