"""ChildService: per-call timeouts that kill and restart the child, handler errors and crashes as exceptions."""

from __future__ import annotations

import os
import time

import pytest

from pipelines.child import ChildDied, ChildError, ChildService, ChildTimeout


def _noop() -> None:
    return None


def _handle(request: tuple[str, float]) -> str:
    kind, value = request
    if kind == "sleep":
        time.sleep(value)
    elif kind == "raise":
        raise ValueError(f"bad   input\n{value}")
    elif kind == "exit":
        os._exit(3)
    return f"{kind}:{os.getpid()}"


def test_calls_timeouts_errors_and_crashes() -> None:
    svc = ChildService("test-child", _noop, _handle)
    try:
        first = svc.call(("echo", 0), timeout_s=30)
        assert first.startswith("echo:") and svc.call(("echo", 0), timeout_s=30) == first  # the same child
        with pytest.raises(ChildError, match=r"^ValueError: bad input 7$"):
            svc.call(("raise", 7), timeout_s=30)
        assert svc.call(("echo", 0), timeout_s=30) == first  # a handler error does not kill the child
        with pytest.raises(ChildTimeout, match=r"did not finish within 0\.5s"):
            svc.call(("sleep", 60), timeout_s=0.5)
        second = svc.call(("echo", 0), timeout_s=30)
        assert second != first  # the timed-out child was killed; a fresh one answers
        with pytest.raises(ChildDied, match="test-child process died"):
            svc.call(("exit", 0), timeout_s=30)
        assert svc.call(("echo", 0), timeout_s=30) not in (first, second)
    finally:
        svc.close()
