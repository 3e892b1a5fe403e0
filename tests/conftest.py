"""Shared test fixtures."""
import os

import pytest

# `jaxsem run` keeps compiled programs on disk; tests compile afresh and write nothing
# outside their temporary folders (test_cli checks the cache with its own folder).
os.environ["JAXSEM_CACHE_DIR"] = ""


@pytest.fixture
def interrupt_second_chunk(monkeypatch):
    """Make the Bayes driver see Ctrl-C while it checks the second chunk of draws."""
    from jaxsem.bayes import driver
    calls = []
    real = driver._check_finite

    def check(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)
    monkeypatch.setattr(driver, "_check_finite", check)
