"""The JSONL validator: each bad line is caught with its exact line number and code; the command's output and exit
codes, in-process and as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.dataset.tokens import build_tiny_tokenizer, count_tokens, load_tokenizer
from pipelines.dataset.validate import MIN_EXAMPLES, check_example, main, validate_file, validate_lines

REPO = Path(__file__).resolve().parents[2]
MAX_TOKENS = 64
WORDS = ["terraform", "plan", "apply", "state", "module", "provider", "resource", "variable", "output", "network"]


def example(i: int, answer: str | None = None, **extra: object) -> dict:
    """A distinct, valid three-turn example."""
    return {
        "messages": [
            {"role": "system", "content": "You predict terraform plans."},
            {"role": "user", "content": f"What does plan {i} create?"},
            {"role": "assistant", "content": answer or f"It creates null_resource.r{i}."},
        ],
        **extra,
    }


def line(obj: object) -> str:
    return json.dumps(obj)


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [f"What does plan {i} create? It creates null_resource.r{i}. {' '.join(WORDS)}" for i in range(300)]
    return build_tiny_tokenizer(texts, tmp_path_factory.mktemp("tok"), vocab_size=512)


@pytest.fixture(scope="module")
def tok(tok_dir: Path) -> object:
    return load_tokenizer(tok_dir)


def long_answer() -> str:
    return " ".join(WORDS * 12)


# line number → the one error code expected there
BAD_LINES: dict[int, tuple[str, str]] = {
    2: ("blank_line", ""),
    3: ("invalid_json", '{"messages": [}'),
    4: ("missing_messages", line({"tools": []})),
    5: (
        "unknown_role",
        line({"messages": [{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "x"}]}),
    ),
    6: ("missing_content", line({"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]})),
    7: ("no_assistant", line({"messages": [{"role": "user", "content": "hi"}]})),
    8: (
        "bad_weight",
        line({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x", "weight": 2}]}),
    ),
    9: ("too_long", line(example(9, long_answer()))),
}


def bad_file_lines() -> list[str]:
    lines = [line(example(1))]
    lines += [BAD_LINES[n][1] for n in sorted(BAD_LINES)]
    lines.append(line(example(10)))
    return [f"{x}\n" for x in lines]


def test_each_bad_line_has_its_line_number_and_code(tok: object) -> None:
    report = validate_lines(bad_file_lines(), tokenizer=tok, max_tokens=MAX_TOKENS, over_limit="fail")
    assert sorted((e.line_no, e.code) for e in report.errors) == [
        (n, code) for n, (code, _) in sorted(BAD_LINES.items())
    ]
    assert report.n_lines == 10
    assert report.n_examples == 2
    assert not report.ok
    assert [(w.line_no, w.code) for w in report.warnings] == [(0, "few_examples")]


def test_error_messages_say_what_is_wrong(tok: object) -> None:
    report = validate_lines(bad_file_lines(), tokenizer=tok, max_tokens=MAX_TOKENS)
    by_line = {e.line_no: e.message for e in report.errors}
    assert by_line[5] == "message 1 has unknown role 'robot'; allowed: system, developer, user, assistant, tool"
    assert by_line[6] == "message 1 (user) has no content"
    assert by_line[8] == "message 2: weight must be 0 or 1, got 2"
    n = count_tokens(tok, example(9, long_answer())["messages"]).n_tokens
    assert n > MAX_TOKENS
    assert by_line[9] == f"{n} tokens > max {MAX_TOKENS}; it would be truncated"


def test_over_limit_warn_keeps_the_example(tok: object) -> None:
    lines = [line(example(i)) for i in range(3)] + [line(example(3, long_answer()))]
    report = validate_lines(lines, tokenizer=tok, max_tokens=MAX_TOKENS, over_limit="warn")
    assert report.ok
    assert report.n_examples == 4
    assert [(w.line_no, w.code) for w in report.warnings] == [(4, "too_long"), (0, "few_examples")]
    assert report.tokens is not None
    assert report.tokens.n_over_limit == 1
    assert report.tokens.max > MAX_TOKENS


def test_no_trainable_tokens_after_truncation(tok: object) -> None:
    # the user turn alone is longer than the cap: the assistant answer is cut off entirely
    ex = {
        "messages": [
            {"role": "user", "content": long_answer()},
            {"role": "assistant", "content": "ok"},
        ]
    }
    report = validate_lines([line(ex)], tokenizer=tok, max_tokens=MAX_TOKENS, over_limit="warn")
    assert [(e.line_no, e.code) for e in report.errors] == [(1, "no_trainable_tokens")]
    assert [(w.line_no, w.code) for w in report.warnings] == [(1, "too_long"), (0, "few_examples")]
    with pytest.raises(ValueError, match="max_tokens needs a tokenizer"):
        validate_lines([line(ex)], max_tokens=MAX_TOKENS)


def test_token_stats_are_exact(tok: object) -> None:
    exs = [example(i) for i in range(5)]
    counts = [count_tokens(tok, e["messages"]) for e in exs]
    report = validate_lines([line(e) for e in exs], tokenizer=tok)
    lengths = sorted(c.n_tokens for c in counts)
    assert report.tokens is not None
    assert (report.tokens.min, report.tokens.max, report.tokens.p50) == (lengths[0], lengths[-1], lengths[2])
    assert report.tokens.p95 == lengths[-1]
    assert report.tokens.total_trainable == sum(c.n_trainable for c in counts)
    assert report.tokens.mean == round(sum(lengths) / 5, 2)


def test_check_example_structure() -> None:
    tool_call = {"id": "c1", "type": "function", "function": {"name": "plan", "arguments": "{}"}}
    ok = {
        "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "be brief"}]},
            {"role": "user", "content": "plan it"},
            {"role": "assistant", "tool_calls": [tool_call]},
            {"role": "tool", "tool_call_id": "c1", "content": "{}"},
            {"role": "assistant", "content": "done", "weight": 1},
        ],
        "tools": [],
        "parallel_tool_calls": False,
    }
    assert check_example(ok) == []
    assert check_example([1]) == [("not_object", "each line must be a JSON object, got list")]
    assert [c for c, _ in check_example({**example(1), "prompt": "x"})] == ["unknown_key"]
    assert [c for c, _ in check_example({"messages": []})] == ["bad_messages"]
    assert [c for c, _ in check_example({"messages": ["hi", {"role": "assistant", "content": "x"}]})] == ["bad_message"]
    weighted_user = {"messages": [{"role": "user", "content": "a", "weight": 1}, {"role": "assistant", "content": "b"}]}
    assert check_example(weighted_user) == [
        ("bad_weight", "message 1: weight is only allowed on assistant messages, not 'user'")
    ]
    assert [c for c, _ in check_example({"messages": [{"role": "assistant", "content": 3}]})] == ["bad_content"]
    assert [c for c, _ in check_example({"messages": [{"role": "assistant", "content": "x", "extra": 1}]})] == [
        "unknown_message_key"
    ]
    all_zero = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "weight": 0}]}
    assert [c for c, _ in check_example(all_zero)] == ["no_trainable_tokens"]


def test_duplicates_and_crlf_and_utf8() -> None:
    lines = [f"{line(example(1))}\r\n".encode(), f"{line(example(1))}\n".encode(), b'{"messages": "\xff"}\n']
    report = validate_lines(lines)
    assert [(e.line_no, e.code) for e in report.errors] == [(3, "invalid_utf8")]
    assert [(w.line_no, w.code, w.message) for w in report.warnings] == [
        (2, "duplicate", "same example as line 1"),
        (0, "few_examples", "2 valid examples; at least 50 are recommended"),
    ]


def write_good(path: Path, n: int = MIN_EXAMPLES + 10) -> Path:
    path.write_text("".join(f"{line(example(i))}\n" for i in range(n)))
    return path


def test_good_file_passes(tmp_path: Path, tok_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_good(tmp_path / "good.jsonl")
    report = validate_file(good)
    assert report.ok
    assert (report.n_lines, report.n_examples, report.warnings) == (60, 60, [])
    assert main([str(good), "--tokenizer", str(tok_dir), "--max-tokens", str(MAX_TOKENS)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{good}: OK: 60 lines, 60 valid examples, 0 errors, 0 warnings"
    assert out[1].startswith(f"{good}: tokens per example min=")
    assert out[-1] == "OK"


def test_command_reports_each_error_line(tmp_path: Path, tok_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(bad_file_lines()))
    good = write_good(tmp_path / "good.jsonl")
    rc = main([str(good), str(bad), "--tokenizer", str(tok_dir), "--max-tokens", str(MAX_TOKENS)])
    assert rc == 1
    out = capsys.readouterr().out.splitlines()
    error_lines = [x for x in out if x.startswith(f"{bad}:") and x.split(":")[1].isdigit()]
    assert [tuple(x.split(": ")[:2]) for x in error_lines] == [
        (f"{bad}:{n}", code) for n, (code, _) in sorted(BAD_LINES.items())
    ]
    assert f"{bad}:7: no_assistant: no assistant message: there is nothing to train on" in out
    assert f"{bad}: warning: few_examples: 2 valid examples; at least 50 are recommended" in out
    assert (
        f"{bad}: FAILED: 10 lines, 2 valid examples, 8 errors (bad_weight=1, blank_line=1, invalid_json=1, "
        "missing_content=1, missing_messages=1, no_assistant=1, too_long=1, unknown_role=1), 1 warnings"
    ) in out
    assert out[-1] == "FAILED"


def test_command_json_and_warn_mode(tmp_path: Path, tok_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "long.jsonl"
    f.write_text(f"{line(example(1, long_answer()))}\n")
    args = [str(f), "--tokenizer", str(tok_dir), "--max-tokens", str(MAX_TOKENS), "--json"]
    assert main([*args, "--over-limit", "warn"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True
    assert [w["code"] for w in doc["files"][str(f)]["warnings"]] == ["too_long", "few_examples"]
    assert main(args) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["files"][str(f)]["error_counts"] == {"too_long": 1}


def test_command_missing_file_and_bad_args(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.jsonl"
    assert main([str(missing)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{missing}: unreadable: cannot read the file: No such file or directory")
    with pytest.raises(SystemExit) as e:
        main([str(missing), "--max-tokens", "5"])
    assert e.value.code == 2


def test_command_as_subprocess(tmp_path: Path) -> None:
    good = write_good(tmp_path / "good.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(f"{line(example(1))}\n\n")
    cmd = [sys.executable, "-m", "pipelines.dataset.validate"]
    ok = subprocess.run([*cmd, str(good)], cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == [f"{good}: OK: 60 lines, 60 valid examples, 0 errors, 0 warnings", "OK"]
    failed = subprocess.run([*cmd, str(bad)], cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert failed.returncode == 1
    assert failed.stdout.splitlines()[0] == f"{bad}:2: blank_line: blank line: JSONL allows no empty lines"
