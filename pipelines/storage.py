"""Where artifacts live, and how a stage publishes them: paths and URIs through ``pyarrow.fs``, stage manifests.

A stage's outputs count only once its manifest is written, and the manifest is written last: it names the
stage's fingerprint (its settings and its inputs' manifests) and every file it published with its size. A
reader trusts outputs only through a manifest whose files are all still there at those sizes; a stage killed
before its manifest leaves outputs that no reader takes for current. One PUT of a small object is atomic on
object stores and a rename is atomic on a local or shared filesystem, so a manifest is never half written.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
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


def exists(location: str) -> bool:
    fs, path = resolve(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def temp_sibling(location: str) -> str:
    """A fresh location beside ``location`` to write a directory into before it replaces ``location``."""
    head, _, name = location.rstrip("/").rpartition("/")
    return f"{head}/.{name}.tmp-{uuid.uuid4().hex[:8]}" if head else f".{name}.tmp-{uuid.uuid4().hex[:8]}"


def replace_dir(tmp: str, final: str) -> None:
    """Put the directory at ``tmp`` in place of ``final``: a rename on a filesystem (readers see the old or the
    new directory), a server-side copy then a delete on an object store (readers go by the stage manifest)."""
    fs, tmp_path = resolve(tmp)
    _, final_path = resolve(final)
    if isinstance(fs, pafs.LocalFileSystem):
        old = f"{final_path}.old-{uuid.uuid4().hex[:8]}"
        if fs.get_file_info(final_path).type != pafs.FileType.NotFound:
            fs.move(final_path, old)
        fs.move(tmp_path, final_path)
        shutil.rmtree(old, ignore_errors=True)
        return
    if fs.get_file_info(final_path).type != pafs.FileType.NotFound:
        fs.delete_dir(final_path)
    pafs.copy_files(tmp_path, final_path, source_filesystem=fs, destination_filesystem=fs)
    fs.delete_dir(tmp_path)


def upload_dir(local: Path, location: str) -> None:
    """Copy a local directory to ``location`` as a whole (through a temp sibling, then ``replace_dir``)."""
    fs, _ = resolve(location)
    if isinstance(fs, pafs.LocalFileSystem) and Path(resolve(location)[1]) == local.resolve():
        return
    tmp = temp_sibling(location)
    _, tmp_path = resolve(tmp)
    pafs.copy_files(str(local), tmp_path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)
    replace_dir(tmp, location)


@contextlib.contextmanager
def writing_dir(location: str) -> Iterator[Path]:
    """A local directory to write the whole of ``location`` into; it replaces ``location`` when the block ends
    without an error: renamed into place on a filesystem (readers see the old or the new directory), uploaded
    to an object store. On an error nothing at ``location`` changes."""
    if not is_uri(location):
        tmp = Path(temp_sibling(str(Path(location).resolve())))
        tmp.mkdir(parents=True)
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        replace_dir(str(tmp), location)
        return
    tmp = Path(tempfile.mkdtemp(prefix="tfpredict-out-"))
    try:
        yield tmp
        upload_dir(tmp, location)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cache_root() -> Path:
    from pipelines.terraform.install import tfpredict_home

    return tfpredict_home() / "storage-cache"


@contextlib.contextmanager
def node_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` among the processes of one node; the kernel drops it if we die."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def on_node(location: str) -> Path:
    """A local directory holding what is at ``location``, on the node that calls it.

    A local path is returned as it is (it is the same on every node, or ``attach`` refused it). An object
    store location is downloaded once per node into ``$TFPREDICT_HOME/storage-cache`` and reused while its
    listing (names and sizes) is unchanged; concurrent callers on one node download it once.
    """
    if not is_uri(location):
        return Path(location).resolve()
    files = listing(location)
    if not files or "" in files:
        raise FileNotFoundError(f"no directory at {location}")
    key = hashlib.sha256(location.encode()).hexdigest()[:24]
    local, stamp = cache_root() / key, cache_root() / f"{key}.listing.json"
    want = json.dumps(files, sort_keys=True)
    with node_lock(cache_root() / f"{key}.lock"):
        if local.is_dir() and stamp.is_file() and stamp.read_text() == want:
            return local
        fs, path = resolve(location)
        tmp = cache_root() / f".{key}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        pafs.copy_files(path, str(tmp), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
        shutil.rmtree(local, ignore_errors=True)
        tmp.rename(local)
        stamp.write_text(want)
        logger.info("storage: %s → %s (%d files)", location, local, len(files))
    return local


def local(location: str) -> str:
    """``location`` for readers that take local paths, on this node: an object store directory's node copy
    (``on_node``); anything else (a path, a hub id) unchanged."""
    return str(on_node(location)) if is_uri(location) else location


def delete(location: str) -> None:
    """Remove the directory or file at ``location`` (nothing there: nothing to do)."""
    fs, path = resolve(location)
    kind = fs.get_file_info(path).type
    if kind == pafs.FileType.Directory:
        fs.delete_dir(path)
    elif kind == pafs.FileType.File:
        fs.delete_file(path)


SYNCED = ".tfpredict-synced.json"  # in a mirror: each file's local and remote (size, mtime) when last synced


def mirror(location: str, exclude: tuple[str, ...] = ()) -> Path:
    """A local directory to read and write ``location`` through, on this node: the path itself on a
    filesystem; for an object store, a node-local directory holding exactly what is there now (but names
    starting with ``exclude``; local files the store lacks are removed), whose changes ``sync_up`` uploads."""
    if not is_uri(location):
        path = Path(location).resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path
    key = hashlib.sha256(location.encode()).hexdigest()[:24]
    root = cache_root() / "mirrors" / key
    fs, path = resolve(location)
    with node_lock(cache_root() / "mirrors" / f"{key}.lock"):
        root.mkdir(parents=True, exist_ok=True)
        synced, remote = _synced(root), _files(fs, path)
        names = {info.path.removeprefix(path.rstrip("/") + "/") for info in remote}
        for f in [p for p in root.rglob("*") if p.is_file()]:
            rel = f.relative_to(root).as_posix()
            if rel != SYNCED and rel not in names:
                f.unlink()
                synced.pop(rel, None)
        for info in remote:
            rel = info.path.removeprefix(path.rstrip("/") + "/")
            dst = root / rel
            seen = {"local": _stat(dst) if dst.is_file() else None, "remote": _remote(info)}
            if rel.startswith(exclude) or synced.get(rel) == seen:
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            with fs.open_input_stream(info.path) as src, open(dst, "wb") as out:
                shutil.copyfileobj(src, out)
            synced[rel] = {"local": _stat(dst), "remote": seen["remote"]}
        (root / SYNCED).write_text(json.dumps(synced))
    return root


def sync_up(root: Path, location: str, exclude: tuple[str, ...] = ()) -> int:
    """Upload the files of a ``mirror`` written since they were last synced; how many. A filesystem location
    is its own mirror: nothing to do."""
    if not is_uri(location):
        return 0
    fs, path = resolve(location)
    synced, n = _synced(root), 0
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = f.relative_to(root).as_posix()
        if rel == SYNCED or rel.startswith(exclude) or synced.get(rel, {}).get("local") == _stat(f):
            continue
        target = f"{path.rstrip('/')}/{rel}"
        with open(f, "rb") as src, fs.open_output_stream(target) as out:
            shutil.copyfileobj(src, out)
        synced[rel], n = {"local": _stat(f), "remote": _remote(fs.get_file_info(target))}, n + 1
    (root / SYNCED).write_text(json.dumps(synced))
    return n


def _files(fs: pafs.FileSystem, path: str) -> list[pafs.FileInfo]:
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        return []
    return [f for f in fs.get_file_info(pafs.FileSelector(path, recursive=True)) if f.type == pafs.FileType.File]


def _stat(p: Path) -> list[int]:
    st = p.stat()
    return [st.st_size, st.st_mtime_ns]


def _remote(info: pafs.FileInfo) -> list[int]:
    return [info.size, info.mtime_ns or 0]


def _synced(root: Path) -> dict[str, dict[str, Any]]:
    try:
        return json.loads((root / SYNCED).read_text())
    except (OSError, ValueError):
        return {}


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
