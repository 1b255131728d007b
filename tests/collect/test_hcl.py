"""HCL parsing with a per-file timeout that survives a parser that never returns."""

from __future__ import annotations

import pytest

from pipelines.collect.hcl import HclError, HclParser, HclTimeout

# An unterminated heredoc over whitespace lines: lark's lexer is quadratic on it (minutes at ~100 KB).
HANGING_HCL = "x = <<EOF\n" + " \n" * 40000


def test_parser_times_out_then_recovers() -> None:
    with HclParser(timeout_s=1.5) as p:
        assert p.parse('a = 1\nb = "x"\n') == {"a": 1, "b": "x"}
        with pytest.raises(HclTimeout, match=r"did not finish within 1\.5s"):
            p.parse(HANGING_HCL)
        assert p.parse("c = true\n") == {"c": True}


def test_invalid_hcl_is_an_error_with_the_reason() -> None:
    with HclParser() as p, pytest.raises(HclError, match="Unexpected"):
        p.parse('resource "x" {\n  a = \n')
