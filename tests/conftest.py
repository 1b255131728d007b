"""Shared fixtures: one Ray cluster of two simulated nodes for the whole session, terraform, helpers."""

from __future__ import annotations

import contextlib
import http.server
import os
import subprocess
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from pipelines.terraform.install import ensure_mirror, ensure_terraform
from pipelines.terraform.sandbox import SandboxConfig

GIT_ENV = {
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
}


def make_git_repo(path: Path, commits: list[Mapping[str, str | None]]) -> list[str]:
    """A real git repository at ``path`` with one commit per mapping (file → content; None deletes;
    content starting with ``symlink:`` makes a symlink). Returns the commit SHAs, oldest first."""
    path.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **GIT_ENV}

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=path, env=env, check=True, capture_output=True, text=True).stdout

    git("init", "-q", "-b", "main")
    shas = []
    for i, files in enumerate(commits):
        for rel, content in files.items():
            target = path / rel
            if content is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if content.startswith("symlink:"):
                target.unlink(missing_ok=True)
                target.symlink_to(content.removeprefix("symlink:"))
            else:
                target.write_text(content)
        git("add", "-A")
        git("commit", "-q", "--allow-empty", "-m", f"commit {i}")
        shas.append(git("rev-parse", "HEAD").strip())
    return shas


@contextlib.contextmanager
def recording_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server that records every request path and answers with an empty terraform state
    (what an ``http`` backend expects): ``(base URL, paths requested)``. Tests that hostile code reaches
    nothing assert the list stays empty, and show with an uncontained control that it would not."""
    hits: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            body = b'{"version": 4, "terraform_version": "1.0.0", "serial": 1, "lineage": "x", "outputs": {}}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", hits
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(scope="session")
def sandbox_cfg() -> SandboxConfig:
    return SandboxConfig(terraform=str(ensure_terraform()), mirror=str(ensure_mirror()), timeout_s=120)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[object]:
    """A real Ray cluster of two nodes (1 CPU each, both able to run terraform) on loopback."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # keep every Ray address on loopback: otherwise Ray advertises the machine's interface address
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "resources": {"terraform": 1}, "include_dashboard": False},
    )
    cluster.add_node(num_cpus=1, resources={"terraform": 1})
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()
