"""Where artifacts live, and how a stage publishes them: paths and URIs through ``pyarrow.fs``, stage manifests.

A stage's outputs count only once its manifest is written, and the manifest is written last: it names the
stage's fingerprint (its settings and its inputs' manifests) and every file it published with its size. A
reader trusts outputs only through a manifest whose files are all still there at those sizes; a stage killed
before its manifest leaves outputs that no reader takes for current. One PUT of a small object is atomic on
object stores and a rename is atomic on a local or shared filesystem, so a manifest is never half written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

logger = logging.getLogger("tfpredict.storage")
MANIFEST_DIR = "_manifests"
FORMAT = 1


def is_uri(location: str) -> bool:
    return "://" in location


def resolve(location: str) -> tuple[pafs.FileSystem, str]:
    """A path or URI → (filesystem, path on it). Local paths are made absolute."""
    if not is_uri(location):
        return pafs.LocalFileSystem(), str(Path(location).resolve())
    return pafs.FileSystem.from_uri(location)


def join(location: str, *parts: str) -> str:
    return "/".join([location.rstrip("/"), *(p.strip("/") for p in parts)])


def read_json(location: str) -> Any | None:
    """The JSON object at ``location``; None when there is none."""
    fs, path = resolve(location)
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        return json.loads(f.read())


def write_json(location: str, obj: Any) -> None:
    """Write JSON so that a reader sees the old or the new object, never a part (rename locally, one PUT remote)."""
    fs, path = resolve(location)
    data = (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode()
    parent = path.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    if isinstance(fs, pafs.LocalFileSystem):
        tmp = f"{parent}/.{path.rsplit('/', 1)[1]}.tmp-{uuid.uuid4().hex[:8]}"
        with fs.open_output_stream(tmp) as f:
            f.write(data)
        fs.move(tmp, path)
    else:
        with fs.open_output_stream(path) as f:
            f.write(data)


def listing(location: str) -> dict[str, int]:
    """Every file under ``location`` (or the file itself) → its size; {} when nothing is there."""
    fs, path = resolve(location)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        return {"": info.size}
    if info.type != pafs.FileType.Directory:
        return {}
    base = path.rstrip("/") + "/"
    files = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    return {f.path.removeprefix(base): f.size for f in files if f.type == pafs.FileType.File}


# ---------------------------------------------------------------- stage manifests
def fingerprint(stage: str, settings: Mapping[str, Any], inputs: Mapping[str, str | None]) -> str:
    """What a stage's outputs are a function of: its settings and the digests of its inputs' manifests."""
    blob = json.dumps({"stage": stage, "settings": settings, "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def manifest_location(output_dir: str, stage: str) -> str:
    return join(output_dir, MANIFEST_DIR, f"{stage}.json")


def digest(manifest: Mapping[str, Any]) -> str:
    """One stage's published state, for its readers' fingerprints: every publication differs (a rerun of a stage
    makes its readers stale even when it wrote files of the same names and sizes)."""
    keep = {k: manifest[k] for k in ("stage", "fingerprint", "outputs", "published_at", "publication")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()


def publish(output_dir: str, stage: str, fp: str, outputs: Sequence[str], result: Mapping[str, Any]) -> dict[str, Any]:
    """Record a finished stage: its fingerprint, every file under ``outputs`` (relative to ``output_dir``) with
    its size, and its result. Call after every output is written: this is the commit point."""
    files = {rel: listing(join(output_dir, rel)) for rel in outputs}
    empty = [rel for rel, f in files.items() if not f]
    if empty:
        raise FileNotFoundError(f"{stage}: outputs {empty} under {output_dir} are missing; nothing was published")
    manifest = {
        "format": FORMAT,
        "stage": stage,
        "fingerprint": fp,
        "outputs": files,
        "result": dict(result),
        "published_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "publication": uuid.uuid4().hex,
    }
    write_json(manifest_location(output_dir, stage), manifest)
    return manifest


def current(output_dir: str, stage: str, fp: str) -> tuple[dict[str, Any] | None, str]:
    """The stage's manifest when its outputs are current for ``fp`` and intact, else None; and why."""
    m = read_json(manifest_location(output_dir, stage))
    if m is None:
        return None, "never published"
    if m.get("format") != FORMAT:
        return None, f"manifest format {m.get('format')} (this version writes {FORMAT})"
    if m["fingerprint"] != fp:
        return None, "its settings or inputs changed"
    for rel, files in m["outputs"].items():
        now = listing(join(output_dir, rel))
        if now != files:
            changed = sorted(k for k in set(files) | set(now) if files.get(k) != now.get(k))
            return None, f"{rel} changed since it was published ({len(changed)} file(s), e.g. {changed[0] or rel})"
    return m, "current"


def withdraw(output_dir: str, stage: str) -> None:
    """Forget a stage's manifest (its outputs are being redone)."""
    fs, path = resolve(manifest_location(output_dir, stage))
    if fs.get_file_info(path).type == pafs.FileType.File:
        fs.delete_file(path)
