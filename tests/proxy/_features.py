"""Moved to ``tests/helpers`` (``proxies``, ``until``, ``read_events``); this shim keeps older imports working."""

from tests.helpers import read_events, until
from tests.helpers.proxies import Proxy, start_proxy, start_sim

__all__ = ["Proxy", "read_events", "start_proxy", "start_sim", "until"]
