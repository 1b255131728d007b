"""Sandboxed ``terraform init`` + ``plan`` + ``show -json`` for one workspace.

Every collected repository is hostile (ARCHITECTURE.md, security model): ``plan`` evaluates
``file()``/``fileset()`` on any path the process can read, resolves ``../`` module sources anywhere on
disk and reaches the network through built-in data sources. Screening is only a pre-filter; the
barrier is the operating system. Each terraform invocation runs inside bubblewrap (``bwrap``): a
private mount namespace that holds only the workspace copy (read-write, at ``/work``), the terraform
binary, the provider mirror and a mirror-only CLI config (read-only, under ``/sandbox``), a tmpfs
HOME and /tmp, /proc and /dev — no host file at all, since terraform and its providers are static
binaries — with network, PID, IPC, UTS and cgroup namespaces unshared, as the invoking user, dying
with its parent. Around it: an environment with nothing from ours, ``prlimit`` CPU/memory/file-size
limits, ``setpriv --pdeathsig`` and a deadline that kills the whole process tree.

``isolation``: ``bwrap`` requires it; ``auto`` uses it when the node offers it and otherwise refuses
untrusted code (our own synthetic repos may then run with ``none``); ``none`` is an explicit opt-in
for trusted code. Every result records the isolation it ran under.
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

# bump whenever the sandbox changes what a plan can see or how results are classified: plans rows record
# it and a rerun replans rows made under older rules
SANDBOX_RULES_VERSION = 2
ISOLATIONS = ("auto", "bwrap", "none")
MAX_ERROR_CHARS = 600
_TAIL_BYTES = 64 * 1024  # of a step's stderr/stdout read back for its error message
# paths inside the sandbox
_TF, _MIRROR, _RC, _WORK = "/sandbox/bin/terraform", "/sandbox/mirror", "/sandbox/terraformrc", "/work"
# never written into a workspace copy: terraform's own state and config, which a repository could plant
_RESERVED_PARTS = (".terraform",)
_RESERVED_NAMES = (".terraformrc", "terraform.rc", "terraform.tfstate", "terraform.tfstate.backup")


@dataclass(frozen=True)
class SandboxConfig:
    terraform: str
    mirror: str
    timeout_s: float = 120.0  # whole init+plan+show (history mode: + apply)
    cpu_s: int = 300  # RLIMIT_CPU per terraform process
    memory_mb: int = 2048  # RLIMIT_DATA per terraform process
    max_file_mb: int = 256  # RLIMIT_FSIZE: no file terraform writes (state, plan, its stdout) grows past it
    max_plan_json_mb: float = 64.0  # `show -json` output; larger → plan_status too_large
    max_resource_changes: int = 10_000  # per workspace; more → plan_status too_large
    isolation: str = "auto"  # auto | bwrap | none (ISOLATIONS)
    bwrap: str = "bwrap"  # the bubblewrap binary (name on PATH or absolute path)
    work_root: str | None = None  # where temp workdirs go (default: system temp)


@dataclass
class PlanResult:
    status: str  # ok | error | timeout | too_large
    error: str | None = None
    resource_changes: list[dict[str, Any]] = field(default_factory=list)
    terraform_version: str = ""
    duration_s: float = 0.0
    step: str = ""  # the step that failed: sandbox | setup | init | apply | plan | show
    isolation: str = ""  # bwrap | none: what it ran under ("" when terraform never started)


class StepFailed(Exception):
    def __init__(self, step: str, status: str, message: str) -> None:
        super().__init__(message)
        self.step, self.status, self.message = step, status, message


class IsolationUnavailable(RuntimeError):
    """The node cannot contain terraform and the config does not allow running it uncontained."""


def isolation_fix(reason: str) -> str:
    return (
        f"isolation_unavailable: bubblewrap cannot contain terraform on this node ({reason}). Fix: install it "
        "(`apt-get install bubblewrap`; scripts/setup.sh does) and allow unprivileged user namespaces "
        "(`sysctl kernel.unprivileged_userns_clone=1`, or `kernel.apparmor_restrict_unprivileged_userns=0` on "
        "Ubuntu 24.04; in containers run with a seccomp profile that permits them), or set plan.isolation=none "
        "only for code you trust"
    )


def _bwrap_args(workdir: Path, cwd: str, cfg: SandboxConfig, rc_file: Path) -> list[str]:
    return [
        shutil.which(cfg.bwrap) or cfg.bwrap,  # absolute: the step's PATH is the sandbox's
        "--unshare-all",  # user, mount, network, PID, IPC, UTS, cgroup
        "--die-with-parent",
        "--new-session",  # no terminal to inject into
        "--hostname",
        "tfpredict-sandbox",
        "--ro-bind",
        str(Path(cfg.terraform).resolve()),
        _TF,
        "--ro-bind",
        str(Path(cfg.mirror).resolve()),
        _MIRROR,
        "--ro-bind",
        str(rc_file),
        _RC,
        "--bind",
        str(workdir),
        _WORK,
        "--tmpfs",
        "/tmp",
        "--dir",
        "/tmp/home",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--chdir",
        cwd,
        "--",
    ]


def _limits(cfg: SandboxConfig) -> list[str]:
    prefix: list[str] = []
    setpriv, prlimit = shutil.which("setpriv"), shutil.which("prlimit")
    if setpriv:  # the whole tree dies with the worker that started it
        prefix += [setpriv, "--pdeathsig", "KILL", "--"]
    if prlimit:
        prefix += [
            prlimit,
            f"--cpu={cfg.cpu_s}",
            f"--data={cfg.memory_mb * 2**20}",
            f"--fsize={cfg.max_file_mb * 2**20}",
            "--core=0",
            "--",
        ]
    return prefix


@cache
def _probe_bwrap(terraform: str, mirror: str, bwrap: str) -> str | None:
    """None when bwrap runs terraform here with every namespace unshared, else why not (once per process)."""
    if not shutil.which(bwrap):
        return f"{bwrap} is not installed"
    root = Path(tempfile.mkdtemp(prefix="tfpredict-probe-"))
    try:
        (root / "work").mkdir()
        rc = root / "terraformrc"
        rc.write_text(cli_config(Path(_MIRROR)))
        cfg = SandboxConfig(terraform=terraform, mirror=mirror, bwrap=bwrap)
        cmd = [*_bwrap_args(root / "work", _WORK, cfg, rc), _TF, "version"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False, env=_env(True))
        if proc.returncode != 0:
            return " ".join((proc.stderr or proc.stdout).split())[:200] or f"bwrap exited {proc.returncode}"
        return None
    except (OSError, subprocess.SubprocessError) as e:
        return f"{type(e).__name__}: {e}"[:200]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def resolve_isolation(cfg: SandboxConfig, trusted: bool = False) -> str:
    """The isolation a run of untrusted (or ``trusted``) code gets under ``cfg``; IsolationUnavailable if none."""
    if cfg.isolation not in ISOLATIONS:
        raise ValueError(f"plan.isolation must be one of {ISOLATIONS}, got {cfg.isolation!r}")
    if cfg.isolation == "none":
        return "none"
    problem = _probe_bwrap(cfg.terraform, cfg.mirror, cfg.bwrap)
    if problem is None:
        return "bwrap"
    if cfg.isolation == "auto" and trusted:
        logger.warning("bubblewrap unavailable (%s): planning trusted (synthetic) repositories uncontained", problem)
        return "none"
    raise IsolationUnavailable(isolation_fix(problem))


def _env(isolated: bool, host_dirs: tuple[Path, Path, Path] | None = None) -> dict[str, str]:
    """Nothing inherited: plan runs provider code and must not see our credentials (or TF_VAR_*)."""
    env = {"LANG": "C.UTF-8", "TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"}
    if isolated:
        return {**env, "PATH": str(PurePosixPath(_TF).parent), "HOME": "/tmp/home", "TMPDIR": "/tmp",
                "TF_CLI_CONFIG_FILE": _RC}  # fmt: skip
    assert host_dirs is not None
    tf_dir, home, rc = host_dirs
    return {**env, "PATH": f"{tf_dir}:/usr/bin:/bin", "HOME": str(home), "TMPDIR": str(home.parent / "tmp"),
            "TF_CLI_CONFIG_FILE": str(rc)}  # fmt: skip


def safe_relpath(path: str) -> PurePosixPath:
    """A repo-relative path that cannot escape its root; ValueError otherwise."""
    p = PurePosixPath(path)
    if p.is_absolute() or ".." in p.parts or not p.parts or "\\" in path:
        raise ValueError(f"unsafe path {path!r}")
    return p


def write_files(root: Path, files: Sequence[Mapping[str, str]]) -> list[str]:
    """Write a workspace copy; returns the paths left out (terraform's own state/config a repo may plant)."""
    left_out = []
    for f in files:
        rel = safe_relpath(f["path"])
        if any(p in _RESERVED_PARTS for p in rel.parts) or rel.name in _RESERVED_NAMES:
            left_out.append(f["path"])
            continue
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f["content"], encoding="utf-8")
    return left_out


def _clean_error(text: str) -> str:
    """The useful part of terraform's stderr: from the first 'Error:' on, whitespace squeezed, capped."""
    i = text.find("Error:")
    text = text[i:] if i >= 0 else text
    text = " ".join(text.replace("│", " ").replace("╷", " ").replace("╵", " ").split())
    return text[:MAX_ERROR_CHARS]


def _tail(path: Path) -> str:
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - _TAIL_BYTES))
        return fh.read().decode("utf-8", errors="replace")


class _Runner:
    """Runs terraform steps for one workspace copy under ``root/src`` with the chosen isolation."""

    def __init__(self, cfg: SandboxConfig, root: Path, deadline: float, isolation: str) -> None:
        self.cfg, self.root, self.deadline, self.isolation = cfg, root, deadline, isolation
        self.src = root / "src"
        self.src.mkdir()
        home = root / "home"
        home.mkdir()
        (root / "tmp").mkdir()
        self.rc = root / "terraformrc"
        isolated = isolation == "bwrap"
        self.rc.write_text(cli_config(Path(_MIRROR) if isolated else Path(cfg.mirror)))
        self.env = _env(isolated, (Path(cfg.terraform).parent, home, self.rc))
        self.limits = _limits(cfg)

    def command(self, args: list[str], cwd: Path) -> tuple[list[str], Path]:
        if self.isolation != "bwrap":
            return [*self.limits, self.cfg.terraform, *args], cwd
        inner = str(PurePosixPath(_WORK) / cwd.relative_to(self.src).as_posix())
        return [*self.limits, *_bwrap_args(self.src, inner, self.cfg, self.rc), _TF, *args], self.root

    def run(self, step: str, args: list[str], cwd: Path, max_out_mb: float | None = None) -> Path:
        """Run one step; its stdout lands in a file (returned), bounded by ``max_out_mb``."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise StepFailed(step, "timeout", f"timed out before {step} (limit {self.cfg.timeout_s:g}s)")
        cmd, run_cwd = self.command(args, cwd)
        out_path, err_path = self.root / f"{step}.out", self.root / f"{step}.err"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                cmd, cwd=run_cwd, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True
            )
            try:
                proc.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                raise StepFailed(
                    step, "timeout", f"terraform {step} exceeded the {self.cfg.timeout_s:g}s limit"
                ) from None
        size = out_path.stat().st_size
        if max_out_mb is not None and (size > max_out_mb * 2**20 or size >= self.cfg.max_file_mb * 2**20):
            raise StepFailed(
                step,
                "too_large",
                f"terraform {step} printed {size / 2**20:.1f} MB > plan.max_plan_json_mb={max_out_mb:g}",
            )
        if proc.returncode != 0:
            killed = proc.returncode < 0 or proc.returncode in (137, 152, 153)  # SIGKILL / SIGXCPU / SIGXFSZ
            reason = (
                f"killed by signal (resource limit?) rc={proc.returncode}"
                if killed
                else _clean_error(_tail(err_path) or _tail(out_path))
            )
            raise StepFailed(step, "error", f"terraform {step} failed: {reason}")
        return out_path


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the step's process group; inside bwrap the PID namespace dies with it (--die-with-parent)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        logger.warning("terraform pid %s did not exit after SIGKILL", proc.pid)


def plan_workspace(
    files: Sequence[Mapping[str, str]],
    workspace_path: str,
    cfg: SandboxConfig,
    prior_files: Sequence[Mapping[str, str]] | None = None,
    trusted: bool = False,
) -> PlanResult:
    """Plan ``workspace_path`` of a repo given as ``files`` ({path, content}, repo-relative).

    With ``prior_files`` (history mode, trusted repos only) the prior commit is applied first in the
    same sandbox, so the plan shows update/delete/replace against that state. ``trusted`` only matters
    under ``isolation=auto`` on a node without bubblewrap: trusted code may then run uncontained.
    """
    start = time.monotonic()
    version = terraform_version(cfg.terraform)
    if prior_files is not None and not trusted:
        return PlanResult("error", "sandbox: history mode applies code, so it needs trusted=True", [], version, 0.0,
                          "sandbox")  # fmt: skip
    try:
        isolation = resolve_isolation(cfg, trusted)
    except IsolationUnavailable as e:
        return PlanResult("error", str(e), [], version, time.monotonic() - start, "sandbox")
    root = Path(tempfile.mkdtemp(prefix="tfpredict-plan-", dir=cfg.work_root))
    try:
        runner = _Runner(cfg, root, start + cfg.timeout_s, isolation)
        src = runner.src
        ws = src / safe_relpath(workspace_path) if workspace_path not in ("", ".") else src
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
        plan_args = ["plan", "-input=false", "-lock=false", "-refresh=false", "-no-color", "-out=tfpredict.plan"]
        runner.run("plan", plan_args, ws)
        out = runner.run("show", ["show", "-json", "-no-color", "tfpredict.plan"], ws, cfg.max_plan_json_mb)
        try:
            changes = normalize_resource_changes(json.loads(out.read_bytes()))
        except ValueError as e:
            raise StepFailed("show", "error", f"terraform show printed invalid JSON: {e}") from e
        if len(changes) > cfg.max_resource_changes:
            raise StepFailed(
                "show",
                "too_large",
                f"{len(changes)} resource changes > plan.max_resource_changes={cfg.max_resource_changes}",
            )
        return PlanResult("ok", None, changes, version, time.monotonic() - start, "", isolation)
    except StepFailed as e:
        return PlanResult(e.status, e.message, [], version, time.monotonic() - start, e.step, isolation)
    except (OSError, ValueError) as e:
        return PlanResult("error", f"sandbox: {e}", [], version, time.monotonic() - start, "setup", isolation)
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
