"""A long-lived child process that serves calls with a per-call timeout.

For work a thread cannot interrupt: lark on hostile HCL (quadratic lexing), rego-cpp on pathological
policies. The child is spawned (fork from a threaded Ray worker is unsafe), warms up once outside any
call's timeout, then answers requests; a call that exceeds its timeout kills the child and the next call
starts a fresh one. ``warmup`` and ``handler`` must be module-level functions (they are pickled by name).
"""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection
import threading
from collections.abc import Callable
from typing import Any

STARTUP_TIMEOUT_S = 60.0


class ChildTimeout(TimeoutError):
    """The call did not finish within its timeout (the child was killed)."""


class ChildDied(RuntimeError):
    """The child exited while starting or serving a call (memory limit, crash in native code)."""


class ChildError(RuntimeError):
    """The handler raised; the message is its one-line ``Type: message``."""


def one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"


def _serve(conn: mp.connection.Connection, warmup: Callable[[], None], handler: Callable[[Any], Any]) -> None:
    warmup()
    conn.send(("ready", None))
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        try:
            conn.send(("ok", handler(request)))
        except Exception as e:  # every handler failure goes back to the parent as data
            conn.send(("error", one_line(e)))


class ChildService:
    """Calls ``handler(request)`` in a child process; one per worker process; calls are serialized."""

    def __init__(self, name: str, warmup: Callable[[], None], handler: Callable[[Any], Any]) -> None:
        self.name, self._warmup, self._handler = name, warmup, handler
        self._proc: mp.process.BaseProcess | None = None
        self._conn: mp.connection.Connection | None = None
        self._lock = threading.Lock()

    def _start(self) -> mp.connection.Connection:
        if self._proc is None or not self._proc.is_alive() or self._conn is None:
            ctx = mp.get_context("spawn")
            parent, child = ctx.Pipe()
            self._proc = ctx.Process(
                target=_serve, args=(child, self._warmup, self._handler), daemon=True, name=self.name
            )
            self._proc.start()
            child.close()
            if not parent.poll(STARTUP_TIMEOUT_S):
                self.close()
                raise ChildDied(f"{self.name} process did not start within {STARTUP_TIMEOUT_S:g}s")
            try:
                parent.recv()  # the "ready" message: start-up never counts against a call
            except EOFError as e:
                self.close()
                raise ChildDied(f"{self.name} process died while starting") from e
            self._conn = parent
        return self._conn

    def call(self, request: Any, timeout_s: float) -> Any:
        """The handler's result; ChildTimeout past ``timeout_s``, ChildDied, or ChildError (the handler raised)."""
        with self._lock:
            conn = self._start()
            conn.send(request)
            if not conn.poll(timeout_s):
                self.close()
                raise ChildTimeout(f"did not finish within {timeout_s:g}s")
            try:
                status, payload = conn.recv()
            except EOFError as e:
                self.close()
                raise ChildDied(f"{self.name} process died") from e
            if status == "error":
                raise ChildError(payload)
            return payload

    def close(self) -> None:
        """Kill the child (the next call starts a fresh one)."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(timeout=5)
        if self._conn is not None:
            self._conn.close()
        self._proc, self._conn = None, None
