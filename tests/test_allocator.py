"""The allocator tuning: glibc's thresholds raised, unless the environment sets them."""

import sys

import pytest

from app.allocator import tune_allocator


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux's")
def test_tunes_glibc_malloc() -> None:
    """On Linux with glibc, both thresholds are set."""
    assert tune_allocator()


def test_leaves_thresholds_the_environment_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    """A threshold set through glibc's environment variables is the operator's choice."""
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert not tune_allocator()
