"""Chat formats (OpenAI JSONL, Harmony, ShareGPT/Alpaca importers) and the ``imported`` task over real files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.dataset.example import SkipSource
from pipelines.dataset.formats import (
    from_alpaca,
    from_sharegpt,
    harmony_record,
    openai_record,
    read_jsonl,
    render_harmony,
    write_jsonl,
)
from pipelines.dataset.tasks import imported
from schemas.config import ConfigError

HARMONY_SYSTEM_TEXT = (
    "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
    "Knowledge cutoff: 2024-06\n\nReasoning: low\n\n"
    "# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>"
)
CONVO = [
    {"role": "system", "content": "You predict terraform plans."},
    {"role": "user", "content": "What does `terraform plan` show for a new null_resource?"},
    {"role": "assistant", "content": "null_resource.a: create"},
]


# ---------------------------------------------------------------- Harmony


def test_render_harmony_three_turns_exact() -> None:
    assert render_harmony(CONVO) == (
        "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
        "Knowledge cutoff: 2024-06\n\nReasoning: low\n\n"
        "# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>"
        "<|start|>developer<|message|># Instructions\n\nYou predict terraform plans.<|end|>"
        "<|start|>user<|message|>What does `terraform plan` show for a new null_resource?<|end|>"
        "<|start|>assistant<|channel|>final<|message|>null_resource.a: create<|return|>"
    )


def test_render_harmony_multi_turn_only_last_answer_returns() -> None:
    msgs = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
        {"role": "assistant", "content": "d"},
    ]
    assert render_harmony(msgs) == (
        HARMONY_SYSTEM_TEXT + "<|start|>user<|message|>a<|end|>"
        "<|start|>assistant<|channel|>final<|message|>b<|end|>"
        "<|start|>user<|message|>c<|end|>"
        "<|start|>assistant<|channel|>final<|message|>d<|return|>"
    )
    # a conversation that ends with a user turn has no training target: nothing ends with <|return|>
    assert "<|return|>" not in render_harmony(msgs[:3])


def test_render_harmony_tool_calls() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "get_plan", "arguments": '{"dir": "envs/prod"}'}}
    msgs = [
        {"role": "user", "content": "plan prod"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"changes": 2}'},
        {"role": "assistant", "content": "2 changes"},
    ]
    assert render_harmony(msgs) == (
        HARMONY_SYSTEM_TEXT + "<|start|>user<|message|>plan prod<|end|>"
        '<|start|>assistant to=functions.get_plan<|channel|>commentary <|constrain|>json<|message|>{"dir": "envs/prod"}'
        "<|call|>"
        '<|start|>functions.get_plan to=assistant<|channel|>commentary<|message|>{"changes": 2}<|end|>'
        "<|start|>assistant<|channel|>final<|message|>2 changes<|return|>"
    )
    with pytest.raises(ValueError, match="a tool message needs a name or a tool_call_id"):
        render_harmony([{"role": "tool", "content": "x"}])


def test_harmony_record_messages() -> None:
    rec = harmony_record([*CONVO[:2], {**CONVO[2], "weight": 1}])
    assert rec["messages"][1:] == [
        {"role": "developer", "content": "# Instructions\n\nYou predict terraform plans."},
        {"role": "user", "content": CONVO[1]["content"]},
        {"role": "assistant", "channel": "final", "content": "null_resource.a: create", "weight": 1},
    ]
    assert rec["messages"][0]["role"] == "system"
    assert rec["text"] == render_harmony(CONVO)
    with pytest.raises(ValueError, match="unknown role 'robot'"):
        harmony_record([{"role": "robot", "content": "x"}])


# ---------------------------------------------------------------- OpenAI JSONL


def test_openai_record_keeps_weight_on_assistant_only() -> None:
    msgs = [
        {"role": "user", "content": "a", "weight": 1, "extra": "x"},
        {"role": "assistant", "content": "b", "weight": 0},
        {"role": "user", "content": "c"},
        {"role": "assistant", "content": "d"},
    ]
    assert openai_record(msgs) == {
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b", "weight": 0},
            {"role": "user", "content": "c"},
            {"role": "assistant", "content": "d"},
        ]
    }


def test_write_jsonl_round_trips_without_blank_lines(tmp_path: Path) -> None:
    records = [
        openai_record(CONVO),
        {
            "messages": [
                {"role": "user", "content": "line\nbreak \u2028 sep, ünïcode"},
                {"role": "assistant", "content": ""},
            ]
        },
        openai_record([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "weight": 1}]),
    ]
    out = tmp_path / "sub" / "train.jsonl"
    assert write_jsonl(out, records) == 3
    data = out.read_bytes()
    assert data.endswith(b"\n")
    assert not data.endswith(b"\n\n")
    lines = data.decode("utf-8").split("\n")[:-1]
    assert len(lines) == 3
    assert all(x.strip() for x in lines)
    assert data.decode("utf-8").splitlines() == lines  # U+2028 is escaped: splitlines() readers see 3 lines too
    assert lines[0] == (
        '{"messages":[{"content":"You predict terraform plans.","role":"system"},'
        '{"content":"What does `terraform plan` show for a new null_resource?","role":"user"},'
        '{"content":"null_resource.a: create","role":"assistant"}]}'
    )
    assert [json.loads(x) for x in lines] == records
    assert list(read_jsonl(out)) == records
    assert sorted(p.name for p in out.parent.iterdir()) == ["train.jsonl"]  # no temp file left
    write_jsonl(out, records)
    assert out.read_bytes() == data  # deterministic


# ---------------------------------------------------------------- importers


def test_from_sharegpt() -> None:
    obj = {
        "system": "Be brief.",
        "conversations": [
            {"from": "human", "value": "hi"},
            {"from": "gpt", "value": "hello", "weight": 0},
            {"from": "user", "value": "plan?"},
            {"from": "assistant", "value": "create"},
        ],
    }
    assert from_sharegpt(obj) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello", "weight": 0},
        {"role": "user", "content": "plan?"},
        {"role": "assistant", "content": "create"},
    ]
    variant = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]}
    assert from_sharegpt(variant) == [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    tool = {"conversations": [{"from": "tool", "value": "{}"}]}
    assert from_sharegpt(tool) == [{"role": "tool", "content": "{}"}]


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"conversations": [{"from": "bot", "value": "x"}]}, "ShareGPT turn 1 has unknown speaker 'bot'"),
        ({"conversations": [{"from": "human"}]}, "ShareGPT turn 1 has no 'value' field"),
        ({"conversations": [{"value": "x"}]}, "ShareGPT turn 1 has no 'from' (or 'role') field"),
        ({"conversations": [{"from": "gpt", "value": 3}]}, "ShareGPT turn 1: 'value' must be a string, got int"),
        ({"conversations": []}, "ShareGPT 'conversations' must be a non-empty list"),
        ({"conversations": ["hi"]}, "ShareGPT turn 1 must be an object, got str"),
        ({"instruction": "x"}, "not a ShareGPT record: no 'conversations' (or 'messages') list; keys are"),
    ],
)
def test_from_sharegpt_errors(obj: dict, message: str) -> None:
    with pytest.raises(ValueError) as e:
        from_sharegpt(obj)
    assert str(e.value).startswith(message)


def test_from_alpaca() -> None:
    assert from_alpaca({"instruction": "Explain", "input": "terraform plan", "output": "It previews."}) == [
        {"role": "user", "content": "Explain\n\nterraform plan"},
        {"role": "assistant", "content": "It previews."},
    ]
    full = {"instruction": "Q2", "input": "", "output": "A2", "system": "S", "history": [["Q1", "A1"]]}
    assert from_alpaca(full) == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "Q2"},
        {"role": "assistant", "content": "A2"},
    ]


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"instruction": "x"}, "Alpaca record has no 'output' field"),
        ({"output": "x"}, "Alpaca record has no 'instruction' field"),
        ({"instruction": "x", "output": None}, "Alpaca record has no 'output' field"),
        ({"instruction": "x", "output": "y", "input": 5}, "Alpaca record: 'input' must be a string, got int"),
        ({"instruction": "x", "output": "y", "history": [["a"]]}, "Alpaca record: history entry 1 must be"),
        ([1], "an Alpaca record must be a JSON object, got list"),
    ],
)
def test_from_alpaca_errors(obj: object, message: str) -> None:
    with pytest.raises(ValueError) as e:
        from_alpaca(obj)  # type: ignore[arg-type]
    assert str(e.value).startswith(message)


# ---------------------------------------------------------------- the imported task


def run_task(cfg: imported.Config) -> tuple[list[dict], dict[str, int]]:
    exs: list[dict] = []
    drops: dict[str, int] = {}
    for row in imported.sources(cfg):
        try:
            exs += imported.examples(row, cfg)
        except SkipSource as e:
            drops[e.reason] = drops.get(e.reason, 0) + 1
    return exs, drops


def test_imported_mixed_files(tmp_path: Path) -> None:
    d = tmp_path / "data"
    d.mkdir()
    openai_lines = [
        json.dumps(openai_record(CONVO)),
        "",  # blank lines are not records
        json.dumps({"messages": [{"role": "user", "content": "only a question"}]}),
        "{not json",
        json.dumps({**openai_record(CONVO), "group_key": "ticket-7"}),
    ]
    (d / "a.jsonl").write_text("\n".join(openai_lines) + "\n")
    sharegpt = [
        {
            "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}],
            "group_key": "ticket-7",
        },
        {"conversations": [{"from": "alien", "value": "x"}]},
    ]
    (d / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sharegpt))
    alpaca = [{"instruction": "Explain", "input": "", "output": "Done."}, {"prompt": "x", "completion": "y"}]
    (d / "c.json").write_text(json.dumps(alpaca))
    (d / "notes.txt").write_text("ignored")

    cfg = imported.Config(paths=[str(d)])
    rows = imported.sources(cfg)
    assert [(Path(r["path"]).name, r["index"], r["line"]) for r in rows] == [
        ("a.jsonl", 0, 1),
        ("a.jsonl", 1, 3),
        ("a.jsonl", 2, 4),
        ("a.jsonl", 3, 5),
        ("b.jsonl", 0, 1),
        ("b.jsonl", 1, 2),
        ("c.json", 0, 0),
        ("c.json", 1, 0),
    ]
    exs, drops = run_task(cfg)
    assert drops == {"no_assistant": 1, "invalid_json": 1, "bad_record": 1, "unknown_format": 1}
    assert [(e["subtask"], e["provider"], e["group"]) for e in exs] == [
        ("openai", "a.jsonl", f"{d / 'a.jsonl'}#0"),
        ("openai", "a.jsonl", "ticket-7"),
        ("sharegpt", "b.jsonl", "ticket-7"),
        ("alpaca", "c.json", f"{d / 'c.json'}#0"),
    ]
    assert exs[0]["messages"] == CONVO
    assert exs[3]["messages"] == [{"role": "user", "content": "Explain"}, {"role": "assistant", "content": "Done."}]
    assert exs[0]["example_id"] == exs[1]["example_id"]  # same content → same id (the build job dedups)


def test_imported_forced_format_and_missing_path(tmp_path: Path) -> None:
    f = tmp_path / "x.jsonl"
    f.write_text(json.dumps(openai_record(CONVO)) + "\n")
    exs, drops = run_task(imported.Config(paths=[str(f)], format="alpaca"))
    assert (exs, drops) == ([], {"bad_record": 1})
    row = imported.sources(imported.Config(paths=[str(f)]))[0]
    with pytest.raises(SkipSource, match=r"^bad_record: .*x.jsonl:1: Alpaca record has no 'instruction' field$"):
        imported.examples(row, imported.Config(paths=[str(f)], format="alpaca"))
    with pytest.raises(ConfigError, match="matches no file"):
        imported.sources(imported.Config(paths=[str(tmp_path / "nope*.jsonl")]))
    assert imported.sources(imported.Config()) == []
