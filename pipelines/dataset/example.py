"""The one shape every dataset task produces: a chat example (OpenAI ``messages``) plus metadata.

Tasks turn source rows into examples with :func:`make_example`; a source row that cannot become an
example raises :class:`SkipSource` with a short reason (``"<reason>: <detail>"``), which the job turns
into a counted drop. ``example_id`` is a hash of the content, so the same example always has the same id.

Every example is scrubbed here, the one place every task funnels through: each string of each message
(contents, tool-call arguments, names) and the metadata strings go through
:mod:`pipelines.collect.secrets` *before* the id is computed, so reruns stay byte-identical and exact
dedup sees the scrubbed text. The counts per kind travel with the example (``secrets_scrubbed``); the
build job refuses an example without them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pipelines.collect import secrets
from pipelines.ids import short_hash

ROLES = ("system", "developer", "user", "assistant", "tool")

# metadata columns every example carries (besides ``messages``); the build job adds n_tokens, split, ...
META_KEYS = (
    "example_id",
    "task",
    "subtask",
    "group",
    "source_id",
    "repo_id",
    "provider",
    "complexity_bucket",
    "labels",
)
# the example's findings per kind ({kind: count}, sorted): proof that make_example scrubbed it
SCRUBBED_KEY = "secrets_scrubbed"


class SkipSource(Exception):
    """A source row yields no example; ``str(e)`` is ``"<reason>: <detail>"`` (reason is counted in stats)."""

    @property
    def reason(self) -> str:
        return str(self).split(":", 1)[0].strip()


def canonical_messages(messages: Sequence[Mapping[str, Any]]) -> str:
    """Stable JSON of the messages (key order fixed), the basis of example ids and exact dedup."""
    return json.dumps([dict(m) for m in messages], sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def chat(system: str | None, user: str, assistant: str) -> list[dict[str, Any]]:
    """The common three-turn conversation (system omitted when None/empty)."""
    msgs: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    return [*msgs, {"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


def make_example(
    task: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    group: str,
    source_id: str,
    subtask: str = "",
    repo_id: str | None = None,
    provider: str = "",
    complexity_bucket: str = "",
    labels: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One example row.

    group: the leakage unit: examples sharing a group always land in the same split (a repository,
      a KICS query, a scenario instance, an incident); source_id: the source row it came from;
    provider: the stratum for splits/stats (a cloud provider, a scenario family, a table name);
    labels: free metadata, stored as sorted JSON.
    """
    msgs, findings = scrub_messages(messages)
    meta = {"subtask": subtask, "group": group, "source_id": source_id, "provider": provider}
    for key, value in meta.items():
        if isinstance(value, str):
            meta[key], found = secrets.scrub_text(value, key)
            findings += found
    scrubbed_labels, found = secrets.scrub_json(dict(labels or {}), "labels")
    findings += found
    return {
        "example_id": short_hash(task, canonical_messages(msgs)),
        "task": task,
        "subtask": meta["subtask"],
        "group": meta["group"],
        "source_id": meta["source_id"],
        "repo_id": repo_id,
        "provider": meta["provider"],
        "complexity_bucket": complexity_bucket,
        "labels": json.dumps(scrubbed_labels, sort_keys=True, ensure_ascii=False),
        "messages": msgs,
        SCRUBBED_KEY: secrets.count_by_kind(findings),
    }


def scrub_messages(messages: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[secrets.Finding]]:
    """Copies of the messages with every secret in every string replaced (contents, tool calls, names)."""
    scrubbed, findings = secrets.scrub_json([dict(m) for m in messages], "messages")
    return scrubbed, findings
