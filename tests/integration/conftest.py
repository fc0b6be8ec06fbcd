"""Fixtures for integration tests: every process is started through `procs` and stopped."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import ProcessGroup, processes


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[ProcessGroup]:
    yield from processes(tmp_path)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
