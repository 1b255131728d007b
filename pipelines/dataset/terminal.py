"""Synthetic terminal transcripts and their structured reports, for the ``terminal_report`` dataset task.

``generate(n, seed)`` returns ``n`` scenarios; scenario ``i`` belongs to family ``families[i % len(families)]``
(round-robin, so strata stay balanced) and is drawn from its own
``random.Random(f"terminal:{seed}:{i}:{family}")``, so it depends only on ``(seed, i, families)``: growing
``n`` never changes the earlier scenarios. Each family (in :mod:`pipelines.dataset.terminal_scenarios`) renders
the transcript and the report from the same drawn parameters. :func:`clean` gives the optional plain rendering
(no ANSI, ``\\r`` redraws collapsed to what a terminal finally shows).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipelines.dataset import terminal_scenarios as ts

# name -> family; the name is the stratum (``provider``) of the task's examples
FAMILIES: dict[str, ts.Family] = {
    "pytest_failures": ts.pytest_failures,
    "docker_build": ts.docker_build,
    "git_merge_conflict": ts.git_merge_conflict,
    "npm_audit": ts.npm_audit,
    "db_migration": ts.db_migration,
    "k8s_rbac_forbidden": ts.k8s_rbac_forbidden,
    "port_conflict": ts.port_conflict,
    "terraform_plan": ts.terraform_plan,
    "redis_refused": ts.redis_refused,
    "nginx_config_test": ts.nginx_config_test,
    "maven_test_failures": ts.maven_test_failures,
    "certbot_renewal": ts.certbot_renewal,
    "pip_dependency_conflict": ts.pip_dependency_conflict,
    "disk_full": ts.disk_full,
    "oom_killed": ts.oom_killed,
    "ssh_host_key_mismatch": ts.ssh_host_key_mismatch,
    "cargo_build_error": ts.cargo_build_error,
    "go_test_failure": ts.go_test_failure,
    "helm_upgrade_failure": ts.helm_upgrade_failure,
    "ansible_unreachable": ts.ansible_unreachable,
    "systemd_service_failing": ts.systemd_service_failing,
    "ci_lint_failure": ts.ci_lint_failure,
    "aws_expired_credentials": ts.aws_expired_credentials,
}

# CSI (colours, cursor moves), OSC (titles, hyperlinks; BEL or ST terminated), and lone two-byte escapes
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


@dataclass(frozen=True)
class Scenario:
    """One synthetic session: its family, its index in the generated sequence, the raw transcript, the report."""

    family: str
    index: int
    seed: int
    transcript: str
    report: dict[str, Any]


def check_families(families: Sequence[str] | None) -> list[str]:
    """The family names to use (all, in ``FAMILIES`` order, when None); unknown names raise ValueError."""
    if families is None:
        return list(FAMILIES)
    names = list(families)
    unknown = [f for f in names if f not in FAMILIES]
    if unknown or not names:
        what = f"unknown terminal scenario families {unknown}" if unknown else "families must not be an empty list"
        raise ValueError(f"{what}; valid families: {', '.join(FAMILIES)} (or leave it unset for all)")
    return names


def make_scenario(seed: int, index: int, family: str) -> Scenario:
    """Scenario ``index`` of ``seed`` rendered by ``family``; a pure function of its arguments."""
    if family not in FAMILIES:
        raise ValueError(f"unknown terminal scenario family {family!r}; valid families: {', '.join(FAMILIES)}")
    rng = random.Random(f"terminal:{seed}:{index}:{family}")
    transcript, rep = FAMILIES[family](rng)
    return Scenario(family=family, index=index, seed=seed, transcript=transcript, report=rep)


def family_for(index: int, families: Sequence[str]) -> str:
    """The family of scenario ``index``: round-robin over ``families`` so every stratum gets its share."""
    return families[index % len(families)]


def generate(n: int, seed: int, families: list[str] | None = None) -> list[Scenario]:
    """``n`` scenarios; the i-th depends only on ``(seed, i, families)``."""
    names = check_families(families)
    return [make_scenario(seed, i, family_for(i, names)) for i in range(n)]


def strip_ansi(text: str) -> str:
    """``text`` without ANSI escape sequences (colours, cursor moves, OSC titles/links)."""
    return _ANSI.sub("", text)


def normalize_cr(text: str) -> str:
    """Collapse ``\\r`` redraws: CRLF becomes LF and each line keeps its last non-empty ``\\r`` segment."""
    out = []
    for line in text.replace("\r\n", "\n").split("\n"):
        segs = [s for s in line.split("\r") if s]
        out.append(segs[-1] if segs else "")
    return "\n".join(out)


def clean(text: str) -> str:
    """The plain rendering of a transcript: no ANSI codes, progress redraws collapsed."""
    return normalize_cr(strip_ansi(text))
