"""HCL parsing with python-hcl2 v7 behind a per-file timeout.

lark can take minutes on hostile input (an unterminated heredoc over whitespace lines is
quadratic in the lexer), and a thread cannot be interrupted, so parsing runs in a long-lived child
process that builds the parser once; a file that exceeds its timeout kills that child and the next
file starts a fresh one. v7 is chosen deliberately over v8: v8 keeps quotes around strings and its
line metadata is broken, and we need lines (``__start_line__``) for policy search lines.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import multiprocessing.connection
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
STARTUP_TIMEOUT_S = 60.0


class HclError(Exception):
    """The file is not valid HCL (status ``parse_error``)."""


class HclTimeout(HclError):
    """Parsing exceeded its timeout (status ``parse_timeout``)."""


def parse_hcl_inline(text: str, with_meta: bool = False) -> dict[str, Any]:
    """Parse in this process, no timeout: for trusted text (our own fixtures and generators)."""
    import hcl2

    try:
        return hcl2.loads(text, with_meta=with_meta)
    except Exception as e:  # lark raises many exception types for bad input
        raise HclError(_one_line(e)) from e


def _one_line(e: BaseException) -> str:
    msg = " ".join(str(e).split())
    return f"{type(e).__name__}: {msg[:300]}"


def _serve(conn: multiprocessing.connection.Connection) -> None:
    import hcl2

    hcl2.loads("a = 1\n")  # build (or load the cached) lark parser once
    conn.send(("ready", None))
    while True:
        try:
            text, with_meta = conn.recv()
        except EOFError:
            return
        try:
            conn.send(("ok", hcl2.loads(text, with_meta=with_meta)))
        except Exception as e:  # report every parser failure to the parent as data
            conn.send(("error", _one_line(e)))


class HclParser:
    """Parses HCL text in a child process with a per-call timeout. One per worker; not thread-safe."""

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._proc: mp.process.BaseProcess | None = None
        self._conn: multiprocessing.connection.Connection | None = None

    def _start(self) -> multiprocessing.connection.Connection:
        if self._proc is None or not self._proc.is_alive():
            ctx = mp.get_context("spawn")  # fork from a threaded Ray worker is unsafe
            parent, child = ctx.Pipe()
            self._proc = ctx.Process(target=_serve, args=(child,), daemon=True, name="hcl-parser")
            self._proc.start()
            child.close()
            if not parent.poll(STARTUP_TIMEOUT_S):
                self._proc.kill()
                raise RuntimeError(f"HCL parser process did not start within {STARTUP_TIMEOUT_S:g}s")
            parent.recv()  # the "ready" message: startup time never counts against a file
            self._conn = parent
        assert self._conn is not None
        return self._conn

    def parse(self, text: str, with_meta: bool = False, timeout_s: float | None = None) -> dict[str, Any]:
        """Parse ``text``; raise HclError for invalid HCL, HclTimeout when it takes too long."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        conn = self._start()
        conn.send((text, with_meta))
        if not conn.poll(timeout):
            self.close()
            raise HclTimeout(f"parse did not finish within {timeout:g}s")
        try:
            status, payload = conn.recv()
        except EOFError as e:  # the child died (e.g. out of memory)
            self.close()
            raise HclError("parser process died") from e
        if status == "error":
            raise HclError(payload)
        return payload

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(timeout=5)
        self._proc, self._conn = None, None

    def __enter__(self) -> HclParser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
