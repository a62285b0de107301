"""The marker check of tests/conftest.py: a test using a real-process fixture must be marked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pytest

from tests.conftest import pytest_collection_modifyitems


@dataclass
class FakeItem:
    nodeid: str
    fixturenames: tuple[str, ...]
    marked: bool = False

    def get_closest_marker(self, name: str) -> object | None:
        return object() if self.marked and name == "integration" else None


def check(*items: FakeItem) -> None:
    pytest_collection_modifyitems(cast(Any, list(items)))


def test_an_unmarked_test_on_a_real_process_fixture_fails_collection_by_name() -> None:
    with pytest.raises(pytest.UsageError) as raised:
        check(
            FakeItem("t.py::uses_postgres", ("pool", "db_url", "pg_server")),
            FakeItem("t.py::uses_the_mesh", ("mesh",), marked=True),
            FakeItem("t.py::pure", ("tmp_path",)),
        )
    message = str(raised.value)
    assert "t.py::uses_postgres" in message
    assert "uses_the_mesh" not in message and "pure" not in message


def test_marked_and_pure_tests_pass() -> None:
    check(
        FakeItem("t.py::a", ("triton",), marked=True),
        FakeItem("t.py::b", ("free_port",)),
    )
