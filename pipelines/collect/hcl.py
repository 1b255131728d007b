"""HCL parsing with python-hcl2 v7 behind a per-file timeout.

lark can take minutes on hostile input (an unterminated heredoc over whitespace lines is
quadratic in the lexer), and a thread cannot be interrupted, so parsing runs in a long-lived child
process that builds the parser once; a file that exceeds its timeout kills that child and the next
file starts a fresh one. v7 is chosen deliberately over v8: v8 keeps quotes around strings and its
line metadata is broken, and we need lines (``__start_line__``) for policy search lines.
"""

from __future__ import annotations

import logging
from typing import Any

from pipelines.child import ChildDied, ChildError, ChildService, ChildTimeout, one_line

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0


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
        raise HclError(one_line(e)) from e


def _warmup() -> None:
    import hcl2

    hcl2.loads("a = 1\n")  # build (or load the cached) lark parser once


def _parse(request: tuple[str, bool]) -> dict[str, Any]:
    import hcl2

    text, with_meta = request
    return hcl2.loads(text, with_meta=with_meta)


class HclParser:
    """Parses HCL text in a child process with a per-call timeout. One per worker."""

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._child = ChildService("hcl-parser", _warmup, _parse)

    def parse(self, text: str, with_meta: bool = False, timeout_s: float | None = None) -> dict[str, Any]:
        """Parse ``text``; raise HclError for invalid HCL, HclTimeout when it takes too long."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        try:
            return self._child.call((text, with_meta), timeout)
        except ChildTimeout as e:
            raise HclTimeout(f"parse did not finish within {timeout:g}s") from e
        except ChildDied as e:  # e.g. out of memory
            raise HclError("parser process died") from e
        except ChildError as e:
            raise HclError(str(e)) from e

    def close(self) -> None:
        self._child.close()

    def __enter__(self) -> HclParser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
