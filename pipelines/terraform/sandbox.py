"""Sandboxed ``terraform init`` + ``plan`` + ``show -json`` for one workspace.

Every collected repository is hostile (ARCHITECTURE.md, security model). Screening blocks what plan
would execute or fetch; this module contains the rest: each run gets its own temp workdir and HOME, an
environment with nothing from ours (no tokens, no cloud credentials), a CLI config that installs
providers only from the local mirror, CPU/memory/file-size limits (``prlimit``), no network
(``unshare -n`` where the OS allows), death with its parent (``setpriv --pdeathsig``), and a deadline
that kills the whole process group.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

from pipelines.terraform.install import cli_config, terraform_version
from pipelines.terraform.plan_json import normalize_resource_changes

logger = logging.getLogger(__name__)

MAX_ERROR_CHARS = 600


@dataclass(frozen=True)
class SandboxConfig:
    terraform: str
    mirror: str
    timeout_s: float = 120.0  # whole init+plan+show (history mode: + apply)
    cpu_s: int = 300  # RLIMIT_CPU per terraform process
    memory_mb: int = 2048  # RLIMIT_DATA per terraform process
    max_file_mb: int = 256  # RLIMIT_FSIZE
    network: str = "auto"  # auto: isolate when unshare works; on: require it; off
    work_root: str | None = None  # where temp workdirs go (default: system temp)


@dataclass
class PlanResult:
    status: str  # ok | error | timeout
    error: str | None = None
    resource_changes: list[dict[str, Any]] = field(default_factory=list)
    terraform_version: str = ""
    duration_s: float = 0.0
    step: str = ""  # the step that failed: init | apply | plan | show


class StepFailed(Exception):
    def __init__(self, step: str, status: str, message: str) -> None:
        super().__init__(message)
        self.step, self.status, self.message = step, status, message


@cache
def _can_unshare_net() -> bool:
    try:
        return subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _wrapper(cfg: SandboxConfig) -> list[str]:
    """Command prefix that applies limits, network isolation and parent-death kill where available."""
    prefix: list[str] = []
    if shutil.which("setpriv"):
        prefix += ["setpriv", "--pdeathsig", "KILL", "--"]
    if shutil.which("prlimit"):
        prefix += [
            "prlimit",
            f"--cpu={cfg.cpu_s}",
            f"--data={cfg.memory_mb * 2**20}",
            f"--fsize={cfg.max_file_mb * 2**20}",
            "--core=0",
            "--",
        ]
    if cfg.network != "off":
        if _can_unshare_net():
            prefix += ["unshare", "-n", "--"]
        elif cfg.network == "on":
            raise RuntimeError(
                "network isolation required (network=on) but `unshare -n` does not work here; "
                "run as root or enable unprivileged user namespaces, or set network=auto"
            )
    return prefix


def safe_relpath(path: str) -> PurePosixPath:
    """A repo-relative path that cannot escape its root; ValueError otherwise."""
    p = PurePosixPath(path)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise ValueError(f"unsafe path {path!r}")
    return p


def write_files(root: Path, files: Sequence[Mapping[str, str]]) -> None:
    for f in files:
        target = root / safe_relpath(f["path"])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f["content"], encoding="utf-8")


def _clean_error(text: str) -> str:
    """The useful part of terraform's stderr: from the first 'Error:' on, whitespace squeezed, capped."""
    i = text.find("Error:")
    text = text[i:] if i >= 0 else text
    text = " ".join(text.replace("│", " ").replace("╷", " ").replace("╵", " ").split())
    return text[:MAX_ERROR_CHARS]


class _Runner:
    def __init__(self, cfg: SandboxConfig, root: Path, deadline: float) -> None:
        self.cfg, self.deadline = cfg, deadline
        home = root / "home"
        tmp = root / "tmp"
        home.mkdir()
        tmp.mkdir()
        rc = root / "terraformrc"
        rc.write_text(cli_config(Path(cfg.mirror)))
        tf_dir = str(Path(cfg.terraform).parent)
        self.env = {  # nothing inherited: plan runs provider code and must not see our credentials
            "PATH": f"{tf_dir}:/usr/bin:/bin",
            "HOME": str(home),
            "TMPDIR": str(tmp),
            "LANG": "C.UTF-8",
            "TF_CLI_CONFIG_FILE": str(rc),
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "CHECKPOINT_DISABLE": "1",
        }
        self.prefix = _wrapper(cfg)

    def run(self, step: str, args: list[str], cwd: Path) -> str:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise StepFailed(step, "timeout", f"timed out before {step} (limit {self.cfg.timeout_s:g}s)")
        proc = subprocess.Popen(
            [*self.prefix, self.cfg.terraform, *args],
            cwd=cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=remaining)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise StepFailed(step, "timeout", f"terraform {step} exceeded the {self.cfg.timeout_s:g}s limit") from None
        if proc.returncode != 0:
            killed = proc.returncode < 0 or proc.returncode in (137, 152)  # SIGKILL / SIGXCPU via prlimit
            reason = f"killed by signal (resource limit?) rc={proc.returncode}" if killed else _clean_error(err or out)
            raise StepFailed(step, "error", f"terraform {step} failed: {reason}")
        return out


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        logger.warning("terraform pid %s did not exit after SIGKILL", proc.pid)


def plan_workspace(
    files: Sequence[Mapping[str, str]],
    workspace_path: str,
    cfg: SandboxConfig,
    prior_files: Sequence[Mapping[str, str]] | None = None,
) -> PlanResult:
    """Plan ``workspace_path`` of a repo given as ``files`` ({path, content}, repo-relative).

    With ``prior_files`` (history mode, trusted repos only) the prior commit is applied first in the
    same sandbox, so the plan shows update/delete/replace against that state.
    """
    start = time.monotonic()
    version = terraform_version(cfg.terraform)
    root = Path(tempfile.mkdtemp(prefix="tfpredict-plan-", dir=cfg.work_root))
    try:
        runner = _Runner(cfg, root, start + cfg.timeout_s)
        src = root / "src"
        ws = src / safe_relpath(workspace_path or ".") if workspace_path not in ("", ".") else src
        init = ["init", "-input=false", "-backend=false", "-no-color"]
        if prior_files is not None:
            write_files(src, prior_files)
            ws.mkdir(parents=True, exist_ok=True)
            runner.run("init", init, ws)
            runner.run("apply", ["apply", "-input=false", "-lock=false", "-auto-approve", "-no-color"], ws)
            _replace_sources(src, keep=ws)
        write_files(src, files)
        ws.mkdir(parents=True, exist_ok=True)
        runner.run("init", init, ws)
        runner.run(
            "plan", ["plan", "-input=false", "-lock=false", "-refresh=false", "-no-color", "-out=tfpredict.plan"], ws
        )
        raw = runner.run("show", ["show", "-json", "-no-color", "tfpredict.plan"], ws)
        try:
            plan = json.loads(raw)
        except ValueError as e:
            raise StepFailed("show", "error", f"terraform show printed invalid JSON: {e}") from e
        return PlanResult("ok", None, normalize_resource_changes(plan), version, time.monotonic() - start)
    except StepFailed as e:
        return PlanResult(e.status, e.message, [], version, time.monotonic() - start, e.step)
    except (OSError, ValueError) as e:
        return PlanResult("error", f"sandbox: {e}", [], version, time.monotonic() - start, "setup")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _replace_sources(src: Path, keep: Path) -> None:
    """Remove the prior commit's files but keep the workspace's state and .terraform directory."""
    state = {keep / "terraform.tfstate", keep / ".terraform", keep / ".terraform.lock.hcl"}
    for p in sorted(src.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if p in state or any(s in p.parents for s in state):
            continue
        if p.is_file() or p.is_symlink():
            p.unlink()
        elif p.is_dir() and not any(p.iterdir()):
            p.rmdir()
