"""Moved to ``tests/helpers/stack.py``; this shim keeps older imports working."""

from tests.helpers.stack import *  # noqa: F403
from tests.helpers.stack import __all__  # noqa: F401
