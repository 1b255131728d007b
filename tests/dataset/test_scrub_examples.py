"""Every dataset task's examples are scrubbed in make_example, before their id: terminal transcripts,
database/CSV records, imported chat JSONL, plan_prediction (even from plans rows made under older
rules) and the metadata strings. Also the build job's guard, drop details and secret stats.

Real task code on literal inputs; nothing is faked.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from pipelines.collect.secrets import SCRUBBER_RULES_VERSION
from pipelines.dataset.example import SCRUBBED_KEY, canonical_messages, chat, make_example
from pipelines.dataset.tasks import imported, plan_prediction, records, terminal_report
from pipelines.dataset.tokens import build_tiny_tokenizer
from pipelines.ids import short_hash
from ray_jobs import build_dataset
from tests.dataset.test_plan_prediction import plans_row

GHP = "ghp_" + "Q7wErTy9UiOp3AsDfGh5JkLz1XcVbN8mQwE2"
PW = "Vx7#kP2!qZ9w"
BEARER = "Zq8mR2vLp0abcdEF12gh"
URL_PW = "Tr0ub&3$x"
REPORT = {"summary": "Deployed api.", "key_successes": [], "blockers": [], "resources": ["curl"]}


def dumped(ex: dict[str, Any]) -> str:
    return json.dumps(ex, ensure_ascii=False)


def test_make_example_scrubs_messages_and_metadata_before_the_id() -> None:
    messages = [
        {"role": "user", "content": f"export DB_PASSWORD={PW}"},
        {"role": "assistant", "content": "ok", "tool_calls": [{"function": {"arguments": f'{{"t": "{GHP}"}}'}}]},
    ]
    ex = make_example(
        "imported",
        messages,
        group=f"https://{GHP}@github.com/o/r",
        source_id="s1",
        provider="p",
        labels={"note": f"Authorization: Bearer {BEARER}"},
    )
    text = dumped(ex)
    assert PW not in text and GHP not in text and BEARER not in text
    assert ex["messages"][0]["content"] == "export DB_PASSWORD=REDACTED_PASSWORD"
    assert ex["group"] == "https://REDACTED_GITHUB_TOKEN@github.com/o/r"
    assert ex[SCRUBBED_KEY] == {"authorization_header": 1, "github_token": 2, "password": 1}
    assert ex["example_id"] == short_hash("imported", canonical_messages(ex["messages"]))
    assert messages[0]["content"].endswith(PW)  # the input is not modified


def test_two_sources_differing_only_in_the_secret_are_one_example() -> None:
    """The id hashes the scrubbed text, so exact dedup sees what is written."""
    a = make_example("records", chat(None, f"PGPASSWORD={PW} psql", "rotate it"), group="g", source_id="a")
    b = make_example("records", chat(None, "PGPASSWORD=Other-Pw-123 psql", "rotate it"), group="g", source_id="b")
    assert a["example_id"] == b["example_id"] and a["messages"] == b["messages"]
    again = make_example("records", chat(None, f"PGPASSWORD={PW} psql", "rotate it"), group="g", source_id="a")
    assert again == a  # deterministic


def test_terminal_transcript_files(tmp_path: Path) -> None:
    log = (
        "\x1b[32m$\x1b[0m export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\r\n"
        f"$ curl -v -H 'Authorization: Bearer {BEARER}' https://api.example.com\r\n"
        f"> Authorization: Bearer {BEARER}\r\n"
        f"$ git clone https://ci:{URL_PW}@git.example.com/org/app.git\r\n"
    )
    (tmp_path / "deploy.log").write_text(log)
    report = {**REPORT, "resources": [f"https://ci:{URL_PW}@git.example.com/org/app.git"]}
    (tmp_path / "deploy.report.json").write_text(json.dumps(report))
    cfg = terminal_report.Config(n_synthetic=0, transcripts_dir=str(tmp_path))
    [row] = terminal_report.sources(cfg)
    [ex] = terminal_report.examples(row, cfg)
    text = dumped(ex)
    for canary in ("wJalrXUtnFEMI", BEARER, URL_PW):
        assert canary not in text
    assert ex[SCRUBBED_KEY] == {"authorization_header": 2, "aws_secret_access_key": 1, "basic_auth_url": 2}
    assert json.loads(ex["messages"][-1]["content"])["resources"] == [
        "https://ci:REDACTED_BASIC_AUTH_URL@git.example.com/org/app.git"
    ]


def test_records_from_csv(tmp_path: Path) -> None:
    path = tmp_path / "incidents.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "service", "symptoms", "resolution"])
        w.writerow(["1", "api", f"DATABASE_URL=postgres://app:{URL_PW}@db/app leaked in logs", f"rotated {GHP}"])
        w.writerow(["2", "web", "slow", "restarted"])
    cfg = records.Config(
        path=str(path), user_template="$service: $symptoms", answer_template="$resolution", system_prompt=""
    )
    exs = [e for r in records.sources(cfg) for e in records.examples(r, cfg)]
    assert len(exs) == 2
    assert URL_PW not in dumped(exs[0]) and GHP not in dumped(exs[0])
    assert exs[0][SCRUBBED_KEY] == {"basic_auth_url": 1, "github_token": 1}
    assert exs[1][SCRUBBED_KEY] == {}


def test_imported_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "chats.jsonl"
    lines = [
        {"messages": [{"role": "user", "content": f"my token is {GHP}"}, {"role": "assistant", "content": "revoke"}]},
        {"conversations": [{"from": "human", "value": f"password: {PW}"}, {"from": "gpt", "value": "rotate"}]},
        {"instruction": "fix", "input": f"-H 'Authorization: Bearer {BEARER}'", "output": "use a secret store"},
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    cfg = imported.Config(paths=[str(path)])
    exs = [e for r in imported.sources(cfg) for e in imported.examples(r, cfg)]
    assert [e["subtask"] for e in exs] == ["openai", "sharegpt", "alpaca"]
    for e in exs:
        assert GHP not in dumped(e) and PW not in dumped(e) and BEARER not in dumped(e)
    assert [e[SCRUBBED_KEY] for e in exs] == [{"github_token": 1}, {"password": 1}, {"authorization_header": 1}]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> str:
    texts = ['resource "null_resource" "a" {\n  count = 2\n}\n', '{"resource_changes":[]}'] * 20
    return str(build_tiny_tokenizer(texts, tmp_path_factory.mktemp("tok"), vocab_size=300))


def test_plan_prediction_rescrubs_rows_made_under_older_rules(tokenizer: str) -> None:
    """A plans.parquet from rules v1 still holds `export DB_PASSWORD=...` in user_data: the example does not."""
    row = plans_row(source_url=f"https://{GHP}@github.com/o/r")
    row["files"] = [
        *row["files"],
        {
            "path": "infra/web.tf",
            "content": f'locals {{\n  u = "redis://:{URL_PW}@cache:6379"\n  boot = <<EOF\n'
            f"export DB_PASSWORD={PW}\nEOF\n}}\n",
        },
    ]
    [ex] = plan_prediction.examples(row, plan_prediction.Config(tokenizer=tokenizer))
    text = dumped(ex)
    assert PW not in text and URL_PW not in text and GHP not in text
    assert "export DB_PASSWORD=REDACTED_PASSWORD" in ex["messages"][1]["content"]
    assert ex[SCRUBBED_KEY] == {"basic_auth_url": 1, "github_token": 1, "password": 1}
    assert json.loads(ex["labels"])["source_url"] == "https://REDACTED_GITHUB_TOKEN@github.com/o/r"


# --- the build job's side (pure functions; the Ray run is in tests/ray_jobs/test_secret_corpus.py)


def test_examples_udf_drops_an_example_that_bypassed_make_example(monkeypatch: pytest.MonkeyPatch) -> None:
    bypass = {"example_id": "x", "messages": chat(None, f"PGPASSWORD={PW}", "ok")}
    monkeypatch.setattr(records, "examples", lambda source, cfg: [bypass])
    [drop] = build_dataset.examples_udf(
        {"task": "records", "source_id": "r1", "source": "{}"}, {"records": records.Config()}
    )
    assert (drop["kind"], drop["reason"]) == ("drop", "internal")
    assert "not scrubbed" in drop["detail"] and PW not in json.dumps(drop)


def test_drop_details_are_scrubbed_before_the_cut() -> None:
    detail = "x" * 490 + f" https://u:{URL_PW}@host/r"  # the cut at 500 chars would split the URL
    drop = build_dataset._drop("records", "r1", "source", "internal", detail)
    assert URL_PW not in drop["detail"] and "Tr0ub" not in drop["detail"]


def test_secret_stats_count_kept_examples_by_kind_and_task() -> None:
    kept = [
        {"task": "records", "secret_kinds": json.dumps({"password": 2})},
        {"task": "imported", "secret_kinds": json.dumps({"password": 1, "jwt": 1})},
        {"task": "terminal_report", "secret_kinds": "{}"},
    ]
    assert build_dataset._secrets_scrubbed(kept) == {
        "total": 4,
        "by_kind": {"jwt": 1, "password": 3},
        "by_task": {"imported": 2, "records": 2},
        "rules_version": SCRUBBER_RULES_VERSION,
    }
