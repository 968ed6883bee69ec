"""Moved to ``tests/helpers/upstreams.py``; this shim keeps older imports working."""

from tests.helpers.upstreams import *  # noqa: F403
from tests.helpers.upstreams import __all__  # noqa: F401
