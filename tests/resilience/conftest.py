"""Fixtures for the shared-memory resilience tests: the gateway tests' simulators, on uvloop like the gateway."""

from tests.gateway.conftest import pytest_asyncio_loop_factories, sim_factory  # noqa: F401 - used by pytest by name
