"""Fixtures for integration tests: every process is started through `procs` and stopped."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import ProcessGroup, RunningBridge, processes, start_bridge

# The speech clips and baresip members of the audio tests, shared by every module that
# has phone members talk (moderation, gateways).
from tests.integration.test_audio import clips, members  # noqa: E402, F401


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[ProcessGroup]:
    yield from processes(tmp_path)


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBridge]:
    """One bridge on the default test config per module, for tests that need nothing else.

    The robustness tests feed it every malformed message in turn, then check it still works.
    """
    group = ProcessGroup(tmp_path_factory.mktemp("bridge"))
    try:
        yield start_bridge(group)
    finally:
        group.stop_all()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
