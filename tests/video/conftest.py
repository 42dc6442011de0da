"""Fixtures for video/UDP tests: the shared-memory prefix fixture and the gateway test helpers."""

from tests.gateway.conftest import sim_factory  # noqa: F401 - fixture used by name
from tests.shm.conftest import prefix  # noqa: F401 - fixture used by name
