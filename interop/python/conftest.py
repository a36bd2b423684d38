"""One real `updraft` server per test module, stopped when the module ends."""

from __future__ import annotations

import pytest

from harness import Server


@pytest.fixture(scope="module")
def server():
    srv = Server()
    try:
        yield srv
    finally:
        srv.stop()
