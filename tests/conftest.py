import sys

import pytest


@pytest.fixture(autouse=True)
def _no_leftover_tracing():
    """Every test starts and ends with no trace function on the main thread."""
    sys.settrace(None)
    yield
    leftover = sys.gettrace()
    sys.settrace(None)
    assert leftover is None, f"test left a trace function set: {leftover!r}"
