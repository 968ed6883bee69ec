"""The collector tests' shared fixtures (``client``, ``clock``) live in ``tests.helpers.runs``."""

from tests.helpers.runs import client, clock  # noqa: F401  (fixtures)
