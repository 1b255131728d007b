"""rego_policy: KICS-style Rego queries for Terraform ↔ their descriptions and their tests.

Source rows: one per query directory of a KICS-layout tree (``<provider>/<query>/query.rego``, ``metadata.json``,
``test/positive*.tf``, ``test/negative*.tf``, ``test/positive_expected_result.json``); default: the embedded
fixture tree ``pipelines/dataset/kics_queries``. With ``check`` on, a query becomes examples only when its own
tests pass :func:`pipelines.dataset.rego.check_query`; otherwise the row is a drop whose reason is the status.

Subtasks (both of one query share the group ``<provider>/<query id>``):

- ``write_policy``: user = the description and the metadata JSON → assistant = the ``query.rego`` text.
- ``write_tests``: user = the metadata JSON and ``query.rego`` → assistant = the tests, each file headed by a
  ``# file: <path>`` line (the plan task's convention), positives then negatives (natural order), then the
  expected results; sections are separated by one blank line::

      # file: test/positive1.tf
      resource "aws_s3_bucket" "b" {
      ...
      }

      # file: test/negative1.tf
      ...

      # file: test/positive_expected_result.json
      [{"queryName": "...", "severity": "HIGH", "line": 3, "fileName": "positive1.tf"}]

  A file's text is everything after its header line up to the next header, with trailing blank lines dropped
  (so line numbers inside each file are exact). :func:`parse_tests_answer` reads the format back and
  :func:`check_tests_answer` / :func:`check_policy_answer` score a model's answer with the checker.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import field_validator

from pipelines.dataset import rego
from pipelines.dataset.example import SkipSource, chat, make_example
from schemas.config import Strict

NAME = "rego_policy"
SUBTASKS = ("write_policy", "write_tests")
FILE_HEADER = "# file: "
_HEADER_LINE = re.compile(r"^# file: *(\S.*?)[ \t]*$", re.MULTILINE)

LIBRARY_DOC = (
    "Helpers (import data.generic.common as common_lib; import data.generic.terraform as tf_lib): "
    "common_lib.valid_key(obj, key), common_lib.emptyOrNull(value), common_lib.as_array(value), "
    "common_lib.inArray(list, item), common_lib.is_unrestricted(cidr), common_lib.build_search_line(path, obj), "
    "common_lib.is_true(value), common_lib.is_false(value); tf_lib.resources(doc, type), "
    "tf_lib.port_in_range(rule, port), tf_lib.open_to_internet(rule), tf_lib.port_matches(range, port), "
    "tf_lib.rule_has_port(rule, port), tf_lib.rule_open_source(rule), tf_lib.get_resource_name(resource, name), "
    "tf_lib.get_specific_resource_name(resource, type, name)."
)
SYSTEM_PROMPT_POLICY = (
    "You write KICS queries for Terraform in Rego. Answer with the query.rego text only: `package Cx`, rules "
    "`CxPolicy[result] { ... }` over `input.document[i]` (each document has `id`, `file` and "
    "`resource.<type>.<name>`; a nested block that appears once is an object, repeated blocks are a list). "
    "Each result is an object with documentId, resourceType, resourceName, searchKey (e.g. "
    '`sprintf("aws_s3_bucket[%s].acl", [name])`, or the resource itself when an attribute is missing), '
    "issueType (IncorrectValue or MissingAttribute), keyExpectedValue and keyActualValue; searchLine is optional. "
    + LIBRARY_DOC
    + " Write v0 Rego (rule bodies in braces, no `if`/`contains` keywords, no `every`) and bind iterated values "
    "before passing them to a function (`v := x[_]; f(v)`)."
)
SYSTEM_PROMPT_TESTS = (
    "You write tests for KICS Terraform queries. Answer with the files only, each headed by a line "
    "`# file: <path>`: test/positive1.tf, test/positive2.tf, ... (Terraform the query must flag), "
    "test/negative1.tf, ... (Terraform it must not flag), then test/positive_expected_result.json, a JSON list "
    'of {"queryName", "severity", "line", "fileName"} with one entry per finding: the line of the flagged '
    "attribute, or of the resource block when the attribute is missing."
)


class Config(Strict):
    queries_dir: str | None = None  # a KICS-layout tree; None = the embedded fixture tree
    subtasks: list[str] = ["write_policy", "write_tests"]
    check: bool = True  # only queries whose own tests pass the checker become examples
    check_timeout_s: float = rego.DEFAULT_TIMEOUT_S  # per query
    system_prompt_policy: str = SYSTEM_PROMPT_POLICY
    system_prompt_tests: str = SYSTEM_PROMPT_TESTS

    @field_validator("subtasks")
    @classmethod
    def _known_subtasks(cls, value: list[str]) -> list[str]:
        unknown = [s for s in value if s not in SUBTASKS]
        if unknown:
            raise ValueError(f"unknown rego_policy subtasks {unknown}; choose from {list(SUBTASKS)}")
        return value


# ---------------------------------------------------------------- sources
def _files(files: Mapping[str, str]) -> list[dict[str, str]]:
    """{name: text} → ``[{"path": "test/<name>", "content": text}]`` in natural order (Arrow-friendly rows)."""
    return [{"path": f"{rego.TEST_DIR}/{name}", "content": files[name]} for name in sorted(files, key=rego.natural_key)]


def sources(cfg: Config) -> list[dict[str, Any]]:
    """One row per query directory, sorted by path; malformed directories are rows with ``error`` set."""
    rows = []
    for q in rego.load_tree(cfg.queries_dir or rego.DEFAULT_TREE):
        rows.append(
            {
                "path": q.path,
                "provider": q.provider,
                "query_id": q.query_id,
                "query_name": q.name,
                "rego": q.rego,
                "metadata": json.dumps(q.metadata, indent=2, ensure_ascii=False),
                "positives": _files(q.positives),
                "negatives": _files(q.negatives),
                "expected": json.dumps(q.expected, indent=2, ensure_ascii=False),
                "error": q.error,
            }
        )
    return rows


# ---------------------------------------------------------------- the write_tests answer format
@dataclass
class TestSuite:
    """A query's tests: file name (``positive1.tf``) → Terraform text, and the parsed expected results."""

    positives: dict[str, str] = field(default_factory=dict)
    negatives: dict[str, str] = field(default_factory=dict)
    expected: Any = None


def render_tests(positives: Mapping[str, str], negatives: Mapping[str, str], expected: Any) -> str:
    """The write_tests answer (module docstring): headed files, positives, negatives, then expected results."""
    sections = [
        f"{FILE_HEADER}{f['path']}\n{f['content'].rstrip()}\n" for f in [*_files(positives), *_files(negatives)]
    ]
    sections.append(f"{FILE_HEADER}{rego.TEST_DIR}/{rego.EXPECTED_FILE}\n{json.dumps(expected, indent=2)}\n")
    return "\n".join(sections)


def parse_tests_answer(text: str) -> TestSuite:
    """Read a write_tests answer back into files; ValueError says what is wrong with the format."""
    headers = list(_HEADER_LINE.finditer(text))
    if not headers:
        raise ValueError("no '# file: <path>' header: start each file with a line '# file: test/positive1.tf'")
    suite = TestSuite()
    seen: set[str] = set()
    for i, m in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        body = text[m.end() + 1 : end].rstrip() + "\n"
        name = m.group(1).removeprefix("./").removeprefix(f"{rego.TEST_DIR}/")
        if name in seen:
            raise ValueError(f"file {name!r} appears twice")
        seen.add(name)
        if name == rego.EXPECTED_FILE:
            try:
                suite.expected = json.loads(body)
            except ValueError as e:
                raise ValueError(f"{rego.EXPECTED_FILE} is not valid JSON: {e}") from e
        elif name.startswith("positive") and name.endswith(".tf"):
            suite.positives[name] = body
        elif name.startswith("negative") and name.endswith(".tf"):
            suite.negatives[name] = body
        else:
            raise ValueError(f"unexpected file {name!r}: name tests positive<N>.tf / negative<N>.tf")
    if suite.expected is None:
        raise ValueError(f"missing '# file: {rego.TEST_DIR}/{rego.EXPECTED_FILE}'")
    return suite


@functools.lru_cache(maxsize=8)
def _library(queries_dir: str | None) -> tuple[tuple[str, str], ...]:
    """The helper library a tree's queries run against: the tree's own ``libraries/``, else ours."""
    lib = rego.load_library(queries_dir) if queries_dir else {}
    return tuple(sorted((lib or rego.load_library()).items()))


def check_tests_answer(
    rego_text: str, answer: str, queries_dir: str | None = None, timeout_s: float = rego.DEFAULT_TIMEOUT_S
) -> rego.CheckResult:
    """Score a write_tests answer: the tests it writes must pass the (reference) query; never raises."""
    try:
        suite = parse_tests_answer(answer)
    except ValueError as e:
        return rego.CheckResult("invalid_tests", str(e))
    return check_against(rego_text, suite, queries_dir, timeout_s)


def check_against(
    rego_text: str, suite: TestSuite, queries_dir: str | None = None, timeout_s: float = rego.DEFAULT_TIMEOUT_S
) -> rego.CheckResult:
    """Run a query against a test suite with the tree's helper library; never raises."""
    lib = dict(_library(queries_dir))
    return rego.check_query(
        rego_text, suite.positives, suite.negatives, suite.expected, library=lib, timeout_s=timeout_s
    )


def check_policy_answer(
    row: Mapping[str, Any], answer: str, queries_dir: str | None = None, timeout_s: float = rego.DEFAULT_TIMEOUT_S
) -> rego.CheckResult:
    """Score a write_policy answer (query.rego text) against the source row's own tests; never raises."""
    pos, neg, expected = _row_tests(row)
    return rego.check_query(answer, pos, neg, expected, library=dict(_library(queries_dir)), timeout_s=timeout_s)


# ---------------------------------------------------------------- examples
def _row_tests(row: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str], Any]:
    strip = len(rego.TEST_DIR) + 1
    pos = {f["path"][strip:]: f["content"] for f in row["positives"]}
    neg = {f["path"][strip:]: f["content"] for f in row["negatives"]}
    return pos, neg, json.loads(row["expected"])


def _policy_user(row: Mapping[str, Any]) -> str:
    description = json.loads(row["metadata"]).get("descriptionText", "")
    return (
        f"Write a KICS query for Terraform ({row['provider']}): {description}\n\n"
        f"Query metadata:\n```json\n{row['metadata']}\n```\n"
    )


def _tests_user(row: Mapping[str, Any]) -> str:
    return (
        "Write KICS tests (positive and negative Terraform files and the expected results) for this query.\n\n"
        f"Query metadata:\n```json\n{row['metadata']}\n```\n\n"
        f"{FILE_HEADER}{rego.QUERY_FILE}\n{row['rego'].rstrip()}\n"
    )


def examples(row: dict[str, Any], cfg: Config) -> list[dict[str, Any]]:
    """Both subtasks of one query (those in ``cfg.subtasks``), after the query passes its own tests."""
    if row["error"]:
        raise SkipSource(f"{rego.MALFORMED}: {row['error']}")
    pos, neg, expected = _row_tests(row)
    if cfg.check:
        lib = dict(_library(cfg.queries_dir))
        res = rego.check_query(row["rego"], pos, neg, expected, library=lib, timeout_s=cfg.check_timeout_s)
        if not res.ok:
            raise SkipSource(f"{res.status}: {res.reason}")
    meta = json.loads(row["metadata"])
    labels = {
        "query_id": row["query_id"],
        "query_name": row["query_name"],
        "path": row["path"],
        "severity": meta.get("severity", ""),
        "category": meta.get("category", ""),
        "n_positive": len(pos),
        "n_negative": len(neg),
    }
    turns = {
        "write_policy": (cfg.system_prompt_policy, _policy_user(row), row["rego"]),
        "write_tests": (cfg.system_prompt_tests, _tests_user(row), render_tests(pos, neg, expected)),
    }
    return [
        make_example(
            NAME,
            chat(*turns[subtask]),
            group=f"{row['provider']}/{row['query_id']}",
            source_id=row["path"],
            subtask=subtask,
            provider=row["provider"],
            labels=labels,
        )
        for subtask in cfg.subtasks
    ]
