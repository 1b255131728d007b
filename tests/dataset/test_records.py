"""The records task over a real SQLite database, CSV and Parquet files, and the embedded demo database."""

from __future__ import annotations

import csv
import random
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from pipelines.dataset.example import SkipSource
from pipelines.dataset.records_demo import ensure_demo_db, write_demo_db
from pipelines.dataset.tasks import records

N_ROWS = 2500
NULL_EVERY = 50  # every 50th ticket has no fix (NULL) → 50 empty_answer drops
SERVICES = ("checkout", "auth", "search", "billing", "ledger")
COLUMNS = ["id", "service", "opened", "summary", "fix", "score"]

TICKET_CFG = {
    "table": "tickets",
    "group_column": "service",
    "provider_column": "service",
    "system_prompt": "You are an on-call engineer.",
    "user_template": "[$service] $summary (opened ${opened}, score $score)",
    "answer_template": "Fix: $fix",
}


def ticket(i: int) -> dict:
    """Ticket ``i``: deterministic content; a NULL fix on every NULL_EVERY-th."""
    return {
        "id": i,
        "service": SERVICES[i % len(SERVICES)],
        "opened": datetime(2024, 3, 1, 8, 0, 0) + timedelta(minutes=7 * i),
        "summary": f"error rate {i % 97}% on port {8000 + i % 13}",
        "fix": None if i % NULL_EVERY == 0 else f"restart pod {i} and pin version 1.{i % 11}",
        "score": i / 8,
    }


@pytest.fixture(scope="module")
def tickets() -> list[dict]:
    rows = [ticket(i) for i in range(1, N_ROWS + 1)]
    random.Random(0).shuffle(rows)  # inserted out of order: the task must read in id order
    return rows


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory, tickets: list[dict]) -> str:
    path = tmp_path_factory.mktemp("db") / "ops.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    table = sa.Table(
        "tickets",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("service", sa.String),
        sa.Column("opened", sa.DateTime),
        sa.Column("summary", sa.Text),
        sa.Column("fix", sa.Text),
        sa.Column("score", sa.Float),
    )
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), tickets)
    engine.dispose()
    return f"sqlite:///{path}"


def run(cfg: records.Config) -> tuple[list[dict], dict[str, int]]:
    exs: list[dict] = []
    drops: dict[str, int] = {}
    for row in records.sources(cfg):
        try:
            exs += records.examples(row, cfg)
        except SkipSource as e:
            drops[e.reason] = drops.get(e.reason, 0) + 1
    return exs, drops


def expected_messages(i: int) -> list[dict]:
    t = ticket(i)
    opened = t["opened"].isoformat()
    return [
        {"role": "system", "content": "You are an on-call engineer."},
        {"role": "user", "content": f"[{t['service']}] {t['summary']} (opened {opened}, score {t['score']!r})"},
        {"role": "assistant", "content": f"Fix: {t['fix']}"},
    ]


def test_sqlite_table(sqlite_url: str) -> None:
    cfg = records.Config(url=sqlite_url, **TICKET_CFG)
    rows = records.sources(cfg)
    assert [r["id"] for r in rows] == [str(i) for i in range(1, N_ROWS + 1)]
    exs, drops = run(cfg)
    assert len(exs) == N_ROWS - N_ROWS // NULL_EVERY == 2450
    assert drops == {"empty_answer": 50}
    by_source = {e["source_id"]: e for e in exs}
    e = by_source["tickets:1234"]
    assert e["messages"] == expected_messages(1234)
    assert (
        e["messages"][1]["content"] == "[ledger] error rate 70% on port 8012 (opened 2024-03-07T07:58:00, score 154.25)"
    )
    assert e["messages"][2]["content"] == "Fix: restart pod 1234 and pin version 1.2"
    assert (e["task"], e["subtask"], e["group"], e["provider"]) == ("records", "tickets", "tickets:ledger", "ledger")
    assert e["labels"] == '{"id": "1234"}'
    assert run(cfg) == (exs, drops)  # same inputs, same outputs


def test_null_answer_is_empty_answer(sqlite_url: str) -> None:
    cfg = records.Config(url=sqlite_url, **TICKET_CFG)
    row = next(r for r in records.sources(cfg) if r["id"] == "100")
    assert row["values"]["fix"] is None
    with pytest.raises(SkipSource) as e:
        records.examples(row, cfg)
    assert e.value.reason == "empty_answer"
    assert str(e.value) == "empty_answer: tickets id=100 has no fix"


def test_query_and_limit(sqlite_url: str) -> None:
    query = "SELECT id, service, opened, summary, fix, score FROM tickets WHERE service = 'auth' AND fix IS NOT NULL;"
    cfg = records.Config(url=sqlite_url, query=query, limit=7, **{k: v for k, v in TICKET_CFG.items() if k != "table"})
    exs, drops = run(cfg)
    assert drops == {}
    assert [e["source_id"] for e in exs] == [f"query:{i}" for i in (1, 6, 11, 16, 21, 26, 31)]
    # a query's columns carry no SQLAlchemy types: values are what the driver returns (SQLite keeps DATETIME as text)
    assert (
        exs[1]["messages"][1]["content"]
        == "[auth] error rate 6% on port 8006 (opened 2024-03-01 08:42:00.000000, score 0.75)"
    )
    assert exs[1]["messages"][2] == expected_messages(6)[2]


def test_csv_and_parquet_give_the_same_examples(tmp_path: Path, sqlite_url: str, tickets: list[dict]) -> None:
    want, want_drops = run(records.Config(url=sqlite_url, **TICKET_CFG))
    file_cfg = {k: v for k, v in TICKET_CFG.items() if k != "table"}

    csv_path = tmp_path / "tickets.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for t in tickets:
            w.writerow({**t, "opened": t["opened"].isoformat(), "score": repr(t["score"]), "fix": t["fix"] or ""})
    pq_path = tmp_path / "tickets.parquet"
    pq.write_table(pa.Table.from_pylist(tickets), pq_path, row_group_size=300)

    for path in (csv_path, pq_path):
        exs, drops = run(records.Config(path=str(path), batch_size=256, **file_cfg))
        assert drops == want_drops
        assert [e["example_id"] for e in exs] == [e["example_id"] for e in want]
        assert [e["source_id"] for e in exs][:3] == ["tickets:1", "tickets:2", "tickets:3"]
        assert next(e for e in exs if e["source_id"] == "tickets:1234")["messages"] == expected_messages(1234)


def test_template_naming_a_missing_column_lists_columns(sqlite_url: str, tmp_path: Path) -> None:
    cfg = records.Config(url=sqlite_url, **{**TICKET_CFG, "answer_template": "$fix\n$postmortem"})
    with pytest.raises(ValueError) as e:
        records.sources(cfg)
    assert str(e.value) == (
        f"records: {sqlite_url} table tickets has no column(s) postmortem (named by the templates or "
        "id/group/provider/required columns); available columns: id, service, opened, summary, fix, score"
    )
    csv_path = tmp_path / "t.csv"
    csv_path.write_text("id,summary\n1,x\n")
    with pytest.raises(
        ValueError, match=r"has no column\(s\) service, opened, score, fix .*available columns: id, summary$"
    ):
        records.sources(records.Config(path=str(csv_path), **{k: v for k, v in TICKET_CFG.items() if k != "table"}))


def test_config_errors(sqlite_url: str) -> None:
    with pytest.raises(ValidationError, match="set either url"):
        records.Config(url=sqlite_url, table="tickets", path="x.csv")
    with pytest.raises(ValidationError, match="with url, set table"):
        records.Config(url=sqlite_url)
    with pytest.raises(ValidationError, match="set either table or query"):
        records.Config(url=sqlite_url, table="tickets", query="SELECT 1")
    with pytest.raises(ValidationError, match="invalid \\$placeholder"):
        records.Config(user_template="cost $5")
    with pytest.raises(ValidationError, match="Extra inputs"):
        records.Config(tabel="tickets")
    with pytest.raises(ValueError, match="has no table 'nope'; tables: tickets"):
        records.sources(records.Config(url=sqlite_url, table="nope"))


def test_stringify_is_deterministic() -> None:
    assert records.stringify(None) is None
    assert records.stringify(0.1) == "0.1"
    assert records.stringify(3) == "3"
    assert records.stringify(True) == "true"
    assert records.stringify(datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02T03:04:05"
    assert records.stringify({"b": 1, "a": [2]}) == '{"a": [2], "b": 1}'
    assert records.stringify(b"caf\xc3\xa9") == "café"


# ---------------------------------------------------------------- demo database


def query_all(path: Path) -> dict[str, list[tuple]]:
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            return {
                t: [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {t} ORDER BY id"))]
                for t in ("incidents", "audit_log", "code_reviews")
            }
    finally:
        engine.dispose()


def test_demo_db_is_deterministic(tmp_path: Path) -> None:
    a = query_all(write_demo_db(tmp_path / "a.sqlite", n=300, seed=0))
    b = query_all(write_demo_db(tmp_path / "b.sqlite", n=300, seed=0))
    c = query_all(write_demo_db(tmp_path / "c.sqlite", n=300, seed=1))
    assert a == b
    assert a["incidents"] != c["incidents"]
    assert (len(a["incidents"]), len(a["audit_log"]), len(a["code_reviews"])) == (300, 300, 100)
    # content varies: families, services and drawn parameters (ports, versions, limits, times)
    assert len({r[12] for r in a["incidents"]}) == 300  # timelines
    assert len({r[13] for r in a["incidents"]}) > 200  # root causes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.sqlite", "b.sqlite", "c.sqlite"]  # no temp left


def test_default_config_reads_the_demo_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TFPREDICT_HOME", str(tmp_path))
    cfg = records.Config(demo_rows=400)
    exs, drops = run(cfg)
    db = tmp_path / "records" / "demo-v1-n400-s0.sqlite"
    assert db.is_file()
    n_open = sum(1 for r in query_all(db)["incidents"] if r[13] is None)
    assert n_open > 0
    assert (len(exs), drops) == (400 - n_open, {"empty_answer": n_open})
    first = exs[0]["messages"]
    assert [m["role"] for m in first] == ["system", "user", "assistant"]
    assert first[2]["content"].startswith("Root cause:\n")
    assert "\n\nResolution:\n" in first[2]["content"]
    assert "\n\nFollow-ups:\n- " in first[2]["content"]
    mtime = db.stat().st_mtime_ns
    assert ensure_demo_db(n=400) == db
    assert db.stat().st_mtime_ns == mtime  # generated once


def test_demo_tables_work_with_custom_templates(tmp_path: Path) -> None:
    db = write_demo_db(tmp_path / "demo.sqlite", n=30)
    cfg = records.Config(
        url=f"sqlite:///{db}",
        table="code_reviews",
        group_column="repo",
        provider_column="severity",
        system_prompt="You review Terraform changes.",
        user_template="Review this change to $path in $repo:\n$diff",
        answer_template="$comment",
    )
    exs, drops = run(cfg)
    assert (len(exs), drops) == (10, {})
    assert all(e["group"].startswith("code_reviews:infra-") for e in exs)
