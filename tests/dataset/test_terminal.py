"""The terminal_report task: the synthetic session generator, its report schema, and the task contract."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from pipelines.dataset import terminal
from pipelines.dataset.example import SkipSource
from pipelines.dataset.tasks import terminal_report as task
from pipelines.dataset.terminal import FAMILIES, clean, generate, make_scenario, strip_ansi
from schemas.config import ConfigError, load_config

SEEDS = (0, 1, 2, 3, 4)
PER_SEED = 6  # scenarios per (family, seed): 30 per family
REQUIRED_FAMILIES = (
    "pytest_failures", "docker_build", "git_merge_conflict", "npm_audit", "db_migration", "k8s_rbac_forbidden",
    "port_conflict", "terraform_plan", "redis_refused", "nginx_config_test", "maven_test_failures",
    "certbot_renewal", "pip_dependency_conflict", "disk_full", "oom_killed", "ssh_host_key_mismatch",
    "cargo_build_error", "go_test_failure", "helm_upgrade_failure", "ansible_unreachable",
    "systemd_service_failing", "ci_lint_failure",
)  # fmt: skip
GOOD_REPORT = {
    "summary": "Deployed api 1.2.3 to staging; smoke test passed.",
    "key_successes": [{"desc": "Deployed api 1.2.3", "specifics": "helm revision 7", "adjacent_context": "staging"}],
    "blockers": [],
    "resources": ["helm upgrade api ./chart", "port 8080"],
}


def by_family(family: str) -> list[terminal.Scenario]:
    """All test scenarios of one family (every seed)."""
    return [s for seed in SEEDS for s in generate(PER_SEED, seed, [family])]


def in_transcript(resource: str, text: str) -> bool:
    """A resource appears in the transcript as spelled; ``port N`` needs the number N."""
    m = re.fullmatch(r"port (\d+)", resource)
    return (m.group(1) in text) if m else (resource in text)


def user_transcript(example: dict[str, Any]) -> str:
    """The transcript inside the user turn's fenced block."""
    user = example["messages"][1]["content"]
    fence = re.search(r"^(`{3,})text$", user, re.M)
    assert fence is not None
    return user[fence.end() + 1 : user.rindex(fence.group(1))]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- the schema


def test_schema_is_valid_draft_2020_12_and_closed_everywhere() -> None:
    schema = json.loads(task.SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["required"] == ["summary", "key_successes", "blockers", "resources"]
    objects = [schema, schema["properties"]["key_successes"]["items"], schema["properties"]["blockers"]["items"]]
    assert all(o["additionalProperties"] is False for o in objects)
    assert objects[1]["required"] == ["desc", "specifics", "adjacent_context"]
    assert objects[2]["required"] == ["desc", "impact", "owner_hint", "resolution_hint"]


def test_schema_accepts_empty_arrays_and_rejects_missing_or_extra_keys() -> None:
    empty = {"summary": "nothing ran", "key_successes": [], "blockers": [], "resources": []}
    assert task.report_errors(empty) == []
    assert task.report_errors(GOOD_REPORT) == []
    missing = {k: v for k, v in GOOD_REPORT.items() if k != "resources"}
    assert task.report_errors(missing) == ["$: 'resources' is a required property"]
    extra = {**GOOD_REPORT, "key_successes": [{**GOOD_REPORT["key_successes"][0], "note": "x"}]}
    assert task.report_errors(extra) == [
        "$.key_successes[0]: Additional properties are not allowed ('note' was unexpected)"
    ]


# ---------------------------------------------------------------- the generator


def test_families_are_an_explicit_dict_of_at_least_20() -> None:
    assert type(FAMILIES) is dict
    assert len(FAMILIES) >= 20
    assert set(REQUIRED_FAMILIES) <= set(FAMILIES)
    assert all(callable(f) for f in FAMILIES.values())


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_reports_are_valid_and_grounded_in_the_transcript(family: str) -> None:
    scenarios = by_family(family)
    assert len(scenarios) == len(SEEDS) * PER_SEED
    outcomes = set()
    for s in scenarios:
        assert s.family == family
        assert task.report_errors(s.report) == [], (s.seed, s.index)
        text = clean(s.transcript)
        missing = [r for r in s.report["resources"] if not in_transcript(r, text)]
        assert missing == [], (s.seed, s.index, missing)
        outcomes.add(task.outcome_of(s.report))
    # every family mixes a fully successful session with at least one that ends blocked
    assert "success" in outcomes and outcomes & {"partial", "failed"}, outcomes


def test_all_three_outcomes_occur() -> None:
    outcomes = {task.outcome_of(s.report) for s in generate(3 * len(FAMILIES), 11)}
    assert outcomes == {"success", "partial", "failed"}


def test_generation_is_deterministic_and_prefix_stable() -> None:
    first = generate(30, 7)
    assert first == generate(30, 7)
    assert generate(12, 7) == first[:12]  # growing n never changes earlier scenarios
    assert [s.family for s in first[: len(FAMILIES)]] == list(FAMILIES)  # round-robin
    assert first[5] == make_scenario(7, 5, first[5].family)
    other = generate(30, 8)
    assert sum(a.transcript != b.transcript for a, b in zip(first, other, strict=True)) == 30


def test_family_subset_is_round_robin_and_unknown_names_fail() -> None:
    got = generate(5, 0, ["disk_full", "port_conflict"])
    assert [s.family for s in got] == ["disk_full", "port_conflict", "disk_full", "port_conflict", "disk_full"]
    with pytest.raises(ValueError, match=r"unknown terminal scenario families \['nope'\]; valid families: pytest_"):
        generate(1, 0, ["pytest_failures", "nope"])


def test_port_conflict_reports_the_port_of_the_transcript() -> None:
    for s in by_family("port_conflict"):
        ports = [r for r in s.report["resources"] if r.startswith("port ")]
        port = ports[0].removeprefix("port ")
        assert f"port {port}" in s.report["summary"]
        assert f":{port}" in clean(s.transcript)  # listen :::3000 / 0.0.0.0:8080 / lsof *:3000


def test_pytest_blockers_name_the_failing_tests_of_the_transcript() -> None:
    seen = 0
    for s in by_family("pytest_failures"):
        for b in s.report["blockers"]:
            node = b["desc"].split(" fails: ")[0]
            if "::" in node:
                seen += 1
                assert f"FAILED {node} - " in clean(s.transcript)
    assert seen >= 10


def test_terraform_plan_counts_match_the_plan_line() -> None:
    plans = 0
    for s in by_family("terraform_plan"):
        m = re.search(r"Plan: (\d+) to add, (\d+) to change, (\d+) to destroy\.", clean(s.transcript))
        if m:
            plans += 1
            add, change, destroy = m.groups()
            assert f"{add} to add, {change} to change, {destroy} to destroy" in s.report["summary"]
    assert plans >= 10


def test_ansi_present_in_raw_and_gone_after_clean() -> None:
    scenarios = generate(4 * len(FAMILIES), 3)
    with_ansi = [s for s in scenarios if "\x1b[" in s.transcript]
    with_cr = [s for s in scenarios if "\r" in s.transcript]
    assert len(with_ansi) >= len(scenarios) // 2
    assert len(with_cr) >= 10
    for s in scenarios:
        plain = clean(s.transcript)
        assert "\x1b" not in plain and "\r" not in plain
        assert strip_ansi(s.transcript).count("\n") == plain.count("\n")


def test_clean_keeps_what_the_terminal_finally_shows() -> None:
    raw = "\x1b]0;title\x07$ \x1b[1;32mok\x1b[0m\r\n 10% [#.]\r 55% [##]\r100% [##]\nend\r\n"
    assert strip_ansi(raw) == "$ ok\r\n 10% [#.]\r 55% [##]\r100% [##]\nend\r\n"
    assert clean(raw) == "$ ok\n100% [##]\nend\n"


# ---------------------------------------------------------------- the task: config and sources


def test_config_defaults_and_family_validation() -> None:
    cfg = task.Config()
    assert (cfg.n_synthetic, cfg.seed, cfg.families, cfg.transcripts_dir) == (200, 0, None, None)
    assert (cfg.strip_ansi, cfg.max_transcript_chars) == (False, 24000)
    with pytest.raises(ValidationError, match="valid families: pytest_failures, docker_build"):
        task.Config(families=["docker_build", "kubectl_magic"])
    with pytest.raises(ConfigError, match=r"families: Value error, unknown terminal scenario families \['nope'\]"):
        load_config(task.Config, overrides=["families=[nope]"])


def test_synthetic_sources_are_small_rows_in_index_order() -> None:
    rows = task.sources(task.Config(n_synthetic=4, seed=9, families=["oom_killed", "disk_full"]))
    assert rows == [
        {"kind": "synthetic", "seed": 9, "index": 0, "family": "oom_killed"},
        {"kind": "synthetic", "seed": 9, "index": 1, "family": "disk_full"},
        {"kind": "synthetic", "seed": 9, "index": 2, "family": "oom_killed"},
        {"kind": "synthetic", "seed": 9, "index": 3, "family": "disk_full"},
    ]


def test_transcripts_dir_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a directory"):
        task.sources(task.Config(n_synthetic=0, transcripts_dir=str(tmp_path / "nope")))


# ---------------------------------------------------------------- the task: examples


def test_synthetic_examples_follow_the_contract_and_validate() -> None:
    cfg = task.Config(n_synthetic=2 * len(FAMILIES), seed=5)
    rows = task.sources(cfg)
    exs = [e for row in rows for e in task.examples(row, cfg)]
    assert len(exs) == len(rows)
    for row, ex in zip(rows, exs, strict=True):
        sc = make_scenario(5, row["index"], row["family"])
        assert ex["task"] == "terminal_report" and ex["subtask"] == ""
        assert ex["group"] == f"terminal:{row['family']}:{row['index']}"
        assert ex["provider"] == row["family"]
        roles = [m["role"] for m in ex["messages"]]
        assert roles == ["system", "user", "assistant"]
        answer = json.loads(ex["messages"][2]["content"])
        assert task.report_errors(answer) == []
        assert answer == sc.report
        assert ex["messages"][2]["content"] == json.dumps(
            sc.report, sort_keys=True, ensure_ascii=False, separators=(",", ":")
        )
        assert user_transcript(ex) == sc.transcript
        labels = json.loads(ex["labels"])
        assert labels["outcome"] == task.outcome_of(sc.report) and labels["truncated"] is False
    assert [e for row in rows for e in task.examples(row, cfg)] == exs  # byte-identical on rerun


def test_strip_ansi_gives_the_clean_rendering() -> None:
    cfg = task.Config(n_synthetic=len(FAMILIES), seed=1, strip_ansi=True)
    for row in task.sources(cfg):
        (ex,) = task.examples(row, cfg)
        shown = user_transcript(ex)
        assert shown == clean(make_scenario(1, row["index"], row["family"]).transcript)
        assert "\x1b" not in shown and "\r" not in shown


def test_real_transcripts_report_missing_invalid(tmp_path: Path) -> None:
    raw = '\x1b[32mdev@box\x1b[0m:~/api$ helm upgrade api ./chart\nRelease "api" has been upgraded.\n'
    good = write(tmp_path / "a" / "deploy.log", raw)
    write(tmp_path / "a" / "deploy.report.json", json.dumps(GOOD_REPORT, indent=2))
    write(tmp_path / "b" / "missing.txt", "$ make\nmake: Nothing to be done.\n")
    write(tmp_path / "c" / "badschema.log", "$ ls\n")
    write(tmp_path / "c" / "badschema.report.json", json.dumps({"summary": "ls", "blockers": []}))
    write(tmp_path / "c" / "notjson.txt", "$ true\n")
    write(tmp_path / "c" / "notjson.report.json", "{oops")
    write(tmp_path / "c" / "notes.md", "not a transcript")
    cfg = task.Config(n_synthetic=1, transcripts_dir=str(tmp_path))
    rows = task.sources(cfg)
    assert [r["kind"] for r in rows] == ["synthetic", "file", "file", "file", "file"]
    assert [Path(r["path"]).name for r in rows[1:]] == ["deploy.log", "missing.txt", "badschema.log", "notjson.txt"]

    (ex,) = task.examples(rows[1], cfg)
    assert ex["group"] == ex["source_id"] == str(good)
    assert ex["provider"] == "real" and ex["subtask"] == ""
    assert ex["messages"][2]["content"] == task.canonical_report(GOOD_REPORT)
    assert user_transcript(ex) == raw
    reasons = []
    for row in rows[2:]:
        with pytest.raises(SkipSource) as e:
            task.examples(row, cfg)
        reasons.append(e.value.reason)
    assert reasons == ["no_report", "invalid_report", "invalid_report"]


# ---------------------------------------------------------------- truncation


def test_truncation_keeps_head_tail_and_marker() -> None:
    lines = [f"line {i:04d} " + "x" * 20 for i in range(1000)]
    text = "\n".join(lines) + "\n"
    cut, n = task.truncate_transcript(text, 2000)
    assert len(cut) <= 2000
    head, marker, tail = re.split(r"^(\[\.\.\. \d+ lines cut \.\.\.\])\n", cut, flags=re.M)
    kept = head.splitlines() + tail.splitlines()
    assert head.startswith("line 0000 ") and tail.endswith("line 0999 " + "x" * 20 + "\n")
    assert all(k in lines for k in kept)  # whole lines only
    assert n == 1000 - len(kept) and marker == f"[... {n} lines cut ...]"
    assert abs(len(head) - len(tail)) <= 40  # the halves are balanced
    assert task.truncate_transcript(text, len(text)) == (text, 0)


def test_truncation_of_one_huge_line_cuts_inside_it() -> None:
    text = "".join(f"{i:05d}|" for i in range(5000))  # 30000 chars, no newline
    cut, n = task.truncate_transcript(text, 1000)
    assert len(cut) <= 1000 and n == 1
    head, tail = cut.split("\n[... 1 lines cut ...]\n")
    assert text.startswith(head) and text.endswith(tail) and len(head) >= 400


def test_examples_truncate_long_transcripts() -> None:
    cfg = task.Config(n_synthetic=len(FAMILIES), seed=2, max_transcript_chars=600)
    n_truncated = 0
    for row in task.sources(cfg):
        (ex,) = task.examples(row, cfg)
        shown = user_transcript(ex)
        labels = json.loads(ex["labels"])
        full = make_scenario(2, row["index"], row["family"]).transcript
        if len(full) <= 600:
            assert shown == full and labels["truncated"] is False
            continue
        n_truncated += 1
        assert len(shown) <= 600 + 1  # plus the newline closing the block
        marker = re.search(r"^\[\.\.\. (\d+) lines cut \.\.\.\]$", shown, re.M)
        assert marker is not None and labels["truncated"] is True
        assert labels["lines_cut"] == int(marker.group(1))
        assert full.startswith(shown[: marker.start()])
        assert full.endswith(shown[marker.end() + 1 :])
    assert n_truncated >= len(FAMILIES) // 2


def test_fence_outgrows_backticks_in_the_transcript() -> None:
    assert task.fence_for("plain") == "```"
    assert task.fence_for("run `make` or ```sh\nx\n```") == "````"
    user = task.render_user("echo ```done```")
    assert user == "Report on this terminal session.\n\n````text\necho ```done```\n````"
