"""records: chat examples from operational records: incidents, audit-log entries, code-review items.

Rows come from a database through SQLAlchemy (any URL it supports: ``sqlite:///ops.db``,
``postgresql+psycopg://user@host/ops``; a ``table`` read with SQLAlchemy Core or a user-given ``query``) or
from a Parquet/CSV file. With neither, the embedded demo database (:mod:`pipelines.dataset.records_demo`)
is written once under ``$TFPREDICT_HOME`` and its ``incidents`` table is read.

Each row becomes one conversation from three ``string.Template`` templates over its columns
(``$column`` / ``${column}``; ``$$`` is a literal dollar): ``system_prompt``, ``user_template`` and
``answer_template``. Rows are read in ``id_column`` order, so the same data gives the same sources. A row
whose answer columns are empty or NULL is dropped as ``empty_answer``. Values are stringified
deterministically: NULL → "", floats by ``repr``, dates and times as ISO 8601, JSON values as sorted JSON.

Example config (an audit-log table in Postgres, one leakage group per actor)::

    records:
      url: postgresql+psycopg://readonly@db/ops
      table: audit_log
      group_column: actor
      provider_column: outcome
      user_template: "$actor called $action on $resource from $source_ip. Explain the risk."
      answer_template: "$assessment"
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from string import Template
from typing import Any

import sqlalchemy as sa
from pydantic import Field, field_validator, model_validator

from pipelines.dataset.example import SkipSource, chat, make_example
from schemas.config import ConfigError, Strict

logger = logging.getLogger(__name__)

NAME = "records"
DEFAULT_TABLE = "incidents"  # of the embedded demo database

DEFAULT_SYSTEM = (
    "You are a senior site reliability engineer. Given an incident report, explain the root cause, "
    "how to resolve it, and the follow-up actions that prevent it from happening again."
)
DEFAULT_USER = (
    "$severity incident in $service ($environment, $region), opened $opened_at.\n\n"
    "Title: $title\n\nSymptoms:\n$symptoms\n\nTimeline:\n$timeline"
)
DEFAULT_ANSWER = "Root cause:\n$root_cause\n\nResolution:\n$resolution\n\nFollow-ups:\n$follow_ups"


class Config(Strict):
    url: str | None = None  # SQLAlchemy URL; none of url/path → the embedded demo database
    table: str | None = None  # with url (or the demo): a table, optionally "schema.table"; demo default: incidents
    query: str | None = None  # with url (or the demo): a SELECT instead of a table (read-only use; no binds)
    path: str | None = None  # a .parquet or .csv file instead of a database
    demo_path: str | None = None  # where the demo database lives; None → $TFPREDICT_HOME/records/...
    demo_rows: int = Field(3000, ge=1)  # incidents in the demo database
    source_name: str | None = None  # subtask / group prefix; None → table name, "query", or the file's stem
    id_column: str = "id"  # unique per row; rows are read in this order
    group_column: str | None = None  # leakage unit (a service, an incident id, ...); None → id_column
    provider_column: str | None = "service"  # stratum for splits/stats; None → no stratum
    system_prompt: str = DEFAULT_SYSTEM
    user_template: str = DEFAULT_USER
    answer_template: str = DEFAULT_ANSWER
    required_columns: list[str] | None = None  # empty/NULL in any of these → drop; None → answer_template's
    limit: int | None = Field(None, ge=1)  # first N rows in id order
    batch_size: int = Field(1000, ge=1)  # rows fetched per round trip / file batch

    @field_validator("system_prompt", "user_template", "answer_template")
    @classmethod
    def _valid_template(cls, v: str) -> str:
        if not Template(v).is_valid():
            raise ValueError(
                "invalid $placeholder: use $column or ${column} (letters, digits, underscore) and $$ for a literal $"
            )
        return v

    @model_validator(mode="after")
    def _one_source(self) -> Config:
        if self.url and self.path:
            raise ValueError("set either url (a database) or path (a Parquet/CSV file), not both")
        if self.path and (self.table or self.query):
            raise ValueError("table/query apply to a database (url); a path is read whole")
        if self.table and self.query:
            raise ValueError("set either table or query, not both")
        if self.url and not (self.table or self.query):
            raise ValueError("with url, set table (a table name) or query (a SELECT)")
        return self


# ---------------------------------------------------------------- columns


def _identifiers(template: str) -> list[str]:
    return Template(template).get_identifiers()


def template_columns(cfg: Config) -> list[str]:
    """Columns the three templates name, in first-use order."""
    cols = _identifiers(cfg.system_prompt) + _identifiers(cfg.user_template) + _identifiers(cfg.answer_template)
    return list(dict.fromkeys(cols))


def answer_columns(cfg: Config) -> list[str]:
    """Columns that must be non-empty for a row to become an example."""
    return cfg.required_columns if cfg.required_columns is not None else _identifiers(cfg.answer_template)


def needed_columns(cfg: Config) -> list[str]:
    """Every column read: id first, then group, provider, template and required columns (no repeats)."""
    cols = [cfg.id_column, cfg.group_column, cfg.provider_column, *template_columns(cfg), *answer_columns(cfg)]
    return list(dict.fromkeys(c for c in cols if c))


def check_columns(cfg: Config, available: list[str], where: str) -> None:
    """Raise ConfigError naming every column the config uses that ``where`` does not have."""
    missing = [c for c in needed_columns(cfg) if c not in available]
    if missing:
        raise ConfigError(
            f"records: {where} has no column(s) {', '.join(missing)} (named by the templates or "
            f"id/group/provider/required columns); available columns: {', '.join(available)}"
        )


# ---------------------------------------------------------------- values


def stringify(value: Any) -> str | None:
    """A column value as text, the same on every run and backend; None stays None (rendered as "")."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    if isinstance(value, int | Decimal):
        return str(value)
    return str(value)


def _sort_key(value: Any) -> tuple[int, Any]:
    """Order of file rows: NULLs first, then numbers (numeric strings too, as CSV ids are), then text."""
    if value is None:
        return (0, 0)
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return (1, value)
    text = stringify(value) or ""
    try:
        return (1, int(text))
    except ValueError:
        return (2, text)


# ---------------------------------------------------------------- readers


def _redacted(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError as e:
        raise ConfigError(f"records: {url!r} is not a SQLAlchemy URL (e.g. sqlite:///ops.db): {e}") from e


def _reflect(conn: sa.Connection, name: str, where: str) -> sa.Table:
    schema, _, table = name.rpartition(".")
    try:
        return sa.Table(table, sa.MetaData(), schema=schema or None, autoload_with=conn)
    except sa.exc.NoSuchTableError as e:
        tables = sa.inspect(conn).get_table_names(schema=schema or None)
        raise ConfigError(f"records: {where} has no table {name!r}; tables: {', '.join(tables) or '(none)'}") from e


def _sql_statement(conn: sa.Connection, cfg: Config, where: str) -> sa.Select:
    """The SELECT of the needed columns, in id order (then the other columns, so ties are deterministic)."""
    needed = needed_columns(cfg)
    if cfg.query:
        # the query is the user's own SQL; colons are escaped so text() sees no bind parameters in it
        sub = sa.text(cfg.query.strip().rstrip(";").replace(":", "\\:")).columns().subquery("q")
        probe = sa.select(sa.literal_column("*")).select_from(sub).limit(0)
        check_columns(cfg, list(conn.execute(probe).keys()), f"{where} query")
        cols = [sa.column(c) for c in needed]
        stmt = sa.select(*cols).select_from(sub).order_by(*cols)
    else:
        table = _reflect(conn, cfg.table or DEFAULT_TABLE, where)
        check_columns(cfg, [c.name for c in table.columns], f"{where} table {table.fullname}")
        cols = [table.c[c] for c in needed]
        stmt = sa.select(*cols).order_by(*cols)
    return stmt.limit(cfg.limit) if cfg.limit else stmt


def read_sql(url: str, cfg: Config) -> Iterator[dict[str, Any]]:
    """Rows of the table/query as dicts of the needed columns, streamed ``batch_size`` at a time."""
    where = _redacted(url)
    engine = None
    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            stmt = _sql_statement(conn, cfg, where)
            result = conn.execution_options(stream_results=True, yield_per=cfg.batch_size).execute(stmt)
            for part in result.mappings().partitions():
                yield from (dict(r) for r in part)
    except sa.exc.SQLAlchemyError as e:
        raise ConfigError(f"records: reading {where} failed: {e}") from e
    finally:
        if engine is not None:
            engine.dispose()


def read_file(path: Path, cfg: Config) -> list[dict[str, Any]]:
    """Rows of a Parquet or CSV file (needed columns), sorted by the needed columns, id first."""
    needed = needed_columns(cfg)
    if not path.is_file():
        raise ConfigError(f"records: path {path} does not exist (a .parquet or .csv file)")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        check_columns(cfg, list(pf.schema_arrow.names), str(path))
        rows = [r for b in pf.iter_batches(batch_size=cfg.batch_size, columns=needed) for r in b.to_pylist()]
    elif suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            check_columns(cfg, list(reader.fieldnames or []), str(path))
            rows = [{c: (r[c] if r[c] != "" else None) for c in needed} for r in reader]
    else:
        raise ConfigError(f"records: {path} is neither .parquet nor .csv; export the table to one of those")
    rows.sort(key=lambda r: tuple(_sort_key(r[c]) for c in needed))
    return rows[: cfg.limit] if cfg.limit else rows


def _source_row(raw: dict[str, Any], cfg: Config, source: str) -> dict[str, Any]:
    row_id = stringify(raw[cfg.id_column]) or ""
    group = stringify(raw[cfg.group_column]) if cfg.group_column else row_id
    provider = stringify(raw[cfg.provider_column]) if cfg.provider_column else ""
    cols = dict.fromkeys([*template_columns(cfg), *answer_columns(cfg)])
    return {
        "id": row_id,
        "group": group or "",
        "provider": provider or "",
        "source": source,
        "values": {c: stringify(raw[c]) for c in cols},
    }


def sources(cfg: Config) -> list[dict[str, Any]]:
    """One row per record, in id order: id, group, provider, source name and the template columns as text."""
    if cfg.path:
        path = Path(cfg.path).expanduser()
        raw_rows: Iterator[dict[str, Any]] | list[dict[str, Any]] = read_file(path, cfg)
        source = cfg.source_name or path.stem
    else:
        url = cfg.url
        if url is None:
            from pipelines.dataset.records_demo import ensure_demo_db

            url = f"sqlite:///{ensure_demo_db(cfg.demo_path, n=cfg.demo_rows)}"
        raw_rows = read_sql(url, cfg)
        source = cfg.source_name or ("query" if cfg.query else (cfg.table or DEFAULT_TABLE).rpartition(".")[2])
    rows = [_source_row(r, cfg, source) for r in raw_rows]
    logger.info("records: %d rows from %s", len(rows), source)
    return rows


# ---------------------------------------------------------------- examples


def _render(template: str, values: dict[str, str], which: str) -> str:
    try:
        return Template(template).substitute(values)
    except KeyError as e:
        raise ValueError(f"records: {which} names column {e} that the source row lacks; rerun sources()") from e


def examples(row: dict[str, Any], cfg: Config) -> list[dict[str, Any]]:
    """The row's conversation: system prompt, user turn and answer rendered from its columns."""
    values: dict[str, str | None] = row["values"]
    empty = [c for c in answer_columns(cfg) if not (values.get(c) or "").strip()]
    if empty:
        raise SkipSource(f"empty_answer: {row['source']} {cfg.id_column}={row['id']} has no {', '.join(empty)}")
    text = {k: v or "" for k, v in values.items()}
    messages = chat(
        _render(cfg.system_prompt, text, "system_prompt") or None,
        _render(cfg.user_template, text, "user_template"),
        _render(cfg.answer_template, text, "answer_template"),
    )
    return [
        make_example(
            NAME,
            messages,
            group=f"{row['source']}:{row['group']}",
            source_id=f"{row['source']}:{row['id']}",
            subtask=row["source"],
            provider=row["provider"],
            labels={"id": row["id"]},
        )
    ]
