"""A user agent for tests (`tests.flaky_agent:flaky`): fails the first time, then passes."""

from __future__ import annotations

from typing import Any

CALLS = {"n": 0}


def flaky(state: dict[str, Any]) -> dict[str, Any]:
    CALLS["n"] += 1
    if CALLS["n"] == 1:
        raise RuntimeError("simulated crash part-way through the run")
    return {}


def slow(state: dict[str, Any]) -> dict[str, Any]:
    """Takes a while per note, so a test can kill a batch half-way."""
    import time

    time.sleep(0.4)
    return {}
