"""Moved to ``tests/helpers/otel.py``; this shim keeps older imports working."""

from tests.helpers.otel import *  # noqa: F403
from tests.helpers.otel import __all__  # noqa: F401
