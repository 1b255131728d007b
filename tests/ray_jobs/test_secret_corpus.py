"""End-to-end secret regression: one distinct canary of every shape, planted in every carrier, through the
real collect job (real git over smart HTTP on loopback, real terraform) and the real build_dataset job
(plan_prediction, terminal_report, records, imported, rego_policy) on the session's Ray cluster. Then every
file written under the output directory is read, raw and decoded, and no canary may appear; stats count
each kind exactly; no source_url carries the credential it was cloned with.

The repository is served by ``git http-backend`` behind a tiny CGI shim (the dumb HTTP transport cannot do
shallow fetches), and is cloned with a GitHub-token-shaped user in its URL, so the credential reaches the
rows only if ``source_url`` scrubbing fails.
"""

from __future__ import annotations

import base64
import csv
import http.server
import json
import logging
import os
import random
import shutil
import string
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipelines.collect import repo as repo_lib
from pipelines.collect.git import FetchLimits
from pipelines.collect.repo import CollectSettings, collect_source
from pipelines.collect.sources import Source
from pipelines.dataset import rego
from ray_jobs import build_dataset, collect
from schemas.config import load_config
from tests.conftest import make_git_repo


def tok(prefix: str, n: int, seed: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    rng = random.Random(f"canary:{seed}")
    return prefix + "".join(rng.choice(alphabet) for _ in range(n))


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def pem_block(seed: int) -> tuple[str, list[str]]:
    body = base64.b64encode(random.Random(seed).randbytes(300)).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join(["-----BEGIN PRIVATE KEY-----", *lines, "-----END PRIVATE KEY-----"]), lines


HEX = "0123456789abcdef"
JWT = (
    base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
    + "."
    + base64.urlsafe_b64encode(b'{"sub":"canary-jwt","iat":1700000000}').decode().rstrip("=")
    + "."
    + tok("", 43, 13, string.ascii_letters + string.digits + "-_")
)
PEM_SA, PEM_SA_LINES = pem_block(16)
PEM_FILE, PEM_FILE_LINES = pem_block(26)

# canary -> the kind it must be redacted as (one finding each). C: repository, T: terminal log,
# R: records, I: imported chats, G: the rego query tree, U: the clone URL.
C = {
    "C01": ("Hn4vQ8zK2mWp", "password"),  # variable default
    "C02": ("Kd7#rT1xLq9z", "password"),  # export in a user_data heredoc
    "C03": ("Tr0ub&3$x!Wq", "basic_auth_url"),  # URL password with sub-delims
    "C04": ("Zk3pLm9xQ7rt", "basic_auth_url"),  # redis://:pw@
    "C05": (tok("", 28, 5), "authorization_header"),  # Bearer in an HCL header map
    "C06": (b64("svc:" + tok("", 14, 6)), "authorization_header"),  # Basic
    "C07": (tok("ghp_", 36, 7), "github_token"),  # token as a URL user
    "C08": (tok("glpat-", 20, 8), "gitlab_token"),  # oauth2:<token>@
    "C09": (tok("", 24, 9), "basic_auth_url"),  # x-access-token:<opaque>@
    "C10": ("xoxb-123456789012-123456789012-" + tok("", 24, 10), "slack_token"),
    "C11": (
        "https://hooks.slack.com/services/T" + tok("", 8, 11) + "/B" + tok("", 8, 12) + "/" + tok("", 24, 13),
        "slack_token",
    ),
    "C12": (
        "xapp-1-A" + tok("", 10, 12, string.ascii_uppercase + string.digits) + "-1234567890123-" + tok("", 64, 14, HEX),
        "slack_token",
    ),
    "C13": (JWT, "jwt"),
    "C14": (
        tok("", 3, 15) + "8Q~" + tok("", 34, 16, string.ascii_letters + string.digits + "._-"),
        "azure_client_secret",
    ),
    "C15": ("xoxp-123456789012-123456789012-123456789012-" + tok("", 32, 17, HEX), "slack_token"),  # .tfvars
    "C16": (tok("", 40, 18, HEX), "gcp_service_account_key"),  # private_key_id inside base64 in .tfvars.json
    "C18": (tok("", 20, 19), "generic_secret"),  # export API_TOKEN="..." in .sh
    "C19": (tok("", 22, 20), "generic_secret"),  # ARM_CLIENT_SECRET=... in .sh
    "C20": ("Pq5@wE8#tY2z", "basic_auth_url"),  # git clone https://ci:<pw>@ in .sh
    "C21": ("Mn6!bV3$cX9l", "password"),  # mysql --password=...
    "C22": (tok("", 26, 22), "generic_secret"),  # curl -H "X-Api-Key: ..."
    "C23": ("Wq2%eR5^tY8u", "password"),  # export REDIS_PASSWORD=... in .tftpl
    "C24": ("Jk8*hG4&fD1s", "password"),  # YAML-ish password: ... in .tftpl
    "C25": (tok("", 40, 25, HEX), "gcp_service_account_key"),  # sa.json private_key_id
    "C27": (
        tok("", 3, 27) + "7Q~" + tok("", 34, 28, string.ascii_letters + string.digits + "._-"),
        "azure_client_secret",
    ),  # azurerm provider client_secret (static workspace)
}
SA_JSON = json.dumps(
    {
        "type": "service_account",
        "project_id": "canary-project",
        "private_key_id": C["C16"][0],
        "private_key": PEM_SA + "\n",
        "client_email": "ci@canary-project.iam.gserviceaccount.com",
    },
    indent=2,
)
URL_TOKEN = tok("ghp_", 36, 99)
T = {
    "T01": ("Lp3#kJ9!mN2b", "password"),
    "T02": (tok("", 30, 102), "authorization_header"),  # appears twice: -H and the -v trace
    "T03": (tok("ghp_", 36, 103), "github_token"),
    "T04": ("Rt6$yU1@iO4p", "basic_auth_url"),
    "T05": (
        "https://hooks.slack.com/services/T" + tok("", 8, 105) + "/B" + tok("", 8, 106) + "/" + tok("", 24, 107),
        "slack_token",
    ),
    "T06": ("Ws9^xC3&vB7n", "basic_auth_url"),  # in the report (assistant turn)
}
R = {
    "R01": ("Qa1!zX5#sW8e", "basic_auth_url"),
    "R02": ("xoxb-210987654321-210987654321-" + tok("", 24, 202), "slack_token"),
    "R03": (
        base64.urlsafe_b64encode(b'{"alg":"RS256","typ":"JWT"}').decode().rstrip("=")
        + "."
        + base64.urlsafe_b64encode(b'{"sub":"records-canary"}').decode().rstrip("=")
        + "."
        + tok("", 43, 203, string.ascii_letters + string.digits + "-_"),
        "jwt",
    ),
    "R04": ("Ed4%rF7^tG0h", "password"),
}
I = {  # noqa: E741 - the imported carrier
    "I01": (tok("github_pat_", 22, 301) + "_" + tok("", 59, 302), "github_token"),
    "I02": ("Yh6&uJ2*iK5l", "password"),
    "I03": (b64("admin:" + tok("", 16, 303)), "authorization_header"),
    "I04": (
        tok("", 3, 304) + "5Q~" + tok("", 34, 305, string.ascii_letters + string.digits + "._-"),
        "azure_client_secret",
    ),
}
G = {"G01": ("Zx7!cV4#bN1m", "password")}  # a comment in a rego query's negative test


def v(key: str) -> str:
    for table in (C, T, R, I, G):
        if key in table:
            return table[key][0]
    raise KeyError(key)


def repo_files() -> dict[str, str]:
    main = f"""\
variable "db_password" {{
  type    = string
  default = "{v("C01")}"
}}

variable "blob" {{
  type = string
}}

variable "api_token" {{
  type = string
}}

resource "terraform_data" "web" {{
  input = {{
    user_data = <<-EOF
      #!/bin/bash
      export DB_PASSWORD={v("C02")}
      systemctl start app
    EOF
    db_url  = "postgres://app:{v("C03")}@db.internal:5432/app"
    cache   = "redis://:{v("C04")}@cache:6379/0"
    headers = {{ Authorization = "Bearer {v("C05")}" }}
    basic   = {{ Authorization = "Basic {v("C06")}" }}
    clone   = "https://{v("C07")}@github.com/org/app.git"
    mirror  = "https://oauth2:{v("C08")}@gitlab.com/org/app.git"
    xat     = "https://x-access-token:{v("C09")}@github.com/org/app.git"
    slack   = "{v("C10")}"
    hook    = "{v("C11")}"
    app     = "{v("C12")}"
    jwt     = "{v("C13")}"
    sp      = "{v("C14")}"
    n_blob  = length(var.blob)
  }}
}}
"""
    boot_sh = f"""\
#!/bin/bash
set -euo pipefail
export API_TOKEN="{v("C18")}"
ARM_CLIENT_SECRET={v("C19")}
git clone https://ci:{v("C20")}@git.example.com/org/app.git
mysql --password={v("C21")} app < schema.sql
curl -fsS -H "X-Api-Key: {v("C22")}" https://api.example.com/v1/ping
"""
    tftpl = f"""\
#!/bin/bash
export DB_PASSWORD=${{db_password}}
export REDIS_PASSWORD={v("C23")}
cat > /etc/app.yaml <<YAML
password: {v("C24")}
YAML
"""
    sa_file = json.dumps(
        {
            "type": "service_account",
            "project_id": "canary-project",
            "private_key_id": v("C25"),
            "private_key": PEM_FILE + "\n",
            "client_email": "deploy@canary-project.iam.gserviceaccount.com",
        },
        indent=2,
    )
    azure = f"""\
provider "azurerm" {{
  features {{}}
  client_id     = "00000000-0000-0000-0000-000000000000"
  client_secret = "{v("C27")}"
}}

resource "azurerm_resource_group" "rg" {{
  name     = "rg-canary"
  location = "westeurope"
}}
"""
    return {
        "main.tf": main,
        "terraform.tfvars": f'api_token = "{v("C15")}"\n',
        "terraform.tfvars.json": json.dumps({"blob": b64(SA_JSON)}, indent=2) + "\n",
        "boot.sh": boot_sh,
        "boot.tftpl": tftpl,
        "sa.json": sa_file + "\n",
        "azure/main.tf": azure,
    }


def terminal_files(d: Path) -> None:
    d.mkdir(parents=True)
    log = (
        f"\x1b[32m$\x1b[0m export DB_PASSWORD={v('T01')}\r\n"
        f"\x1b[32m$\x1b[0m curl -sv -H 'Authorization: Bearer {v('T02')}' https://api.example.com/v1/deploy\r\n"
        f"> Authorization: Bearer {v('T02')}\r\n"
        "< HTTP/1.1 200 OK\r\n"
        f"\x1b[32m$\x1b[0m git push https://{v('T03')}@github.com/org/app.git main\r\n"
        f"warning: cache at redis://:{v('T04')}@cache:6379 unreachable\r\n"
        f"SLACK_WEBHOOK={v('T05')}\r\n"
    )
    (d / "deploy.log").write_text(log)
    report = {
        "summary": "Deployed the app; the cache was unreachable.",
        "key_successes": [{"desc": "deploy call", "specifics": "HTTP 200", "adjacent_context": "curl -v"}],
        "blockers": [],
        "resources": [f"https://ci:{v('T06')}@git.example.com/org/app.git"],
    }
    (d / "deploy.report.json").write_text(json.dumps(report, indent=2))


def records_file(path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "service", "symptoms", "resolution"])
        w.writerow(["1", "api", f"DATABASE_URL=postgres://app:{v('R01')}@db/app in the logs", f"revoked {v('R02')}"])
        w.writerow(["2", "web", f"a session token {v('R03')} was pasted", f"moved PGPASSWORD={v('R04')} to vault"])


def imported_file(path: Path) -> None:
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"is {v('I01')} still valid?"},
                {"role": "assistant", "content": "revoke it"},
            ]
        },
        {"conversations": [{"from": "human", "value": f"password: {v('I02')}"}, {"from": "gpt", "value": "rotate it"}]},
        {
            "instruction": "fix this call",
            "input": f"curl -H 'Authorization: Basic {v('I03')}'",
            "output": "use a vault",
        },
        {
            "messages": [
                {"role": "user", "content": "login fails"},
                {"role": "assistant", "content": f"set ARM_CLIENT_SECRET={v('I04')} and retry"},
            ]
        },
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def rego_tree(root: Path) -> Path:
    src = Path(rego.DEFAULT_TREE)
    shutil.copytree(src / "libraries", root / "libraries")
    query = root / "gcp" / "compute_instance_public_ip"
    shutil.copytree(src / "gcp" / "compute_instance_public_ip", query)
    neg = query / "test" / "negative1.tf"
    neg.write_text(neg.read_text() + f"# bootstrap: export DB_PASSWORD={v('G01')}\n")
    return root


# ---------------------------------------------------------------- smart HTTP git server on loopback
class _GitHttp(http.server.BaseHTTPRequestHandler):
    """``git http-backend`` as CGI: enough of RFC 3875 for git's smart HTTP protocol."""

    root = ""

    def _cgi(self) -> None:
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": self.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": self.root,
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
        }
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        out = subprocess.run(
            ["git", "http-backend"], check=False, input=body, env=env, capture_output=True, timeout=60
        ).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode().split("\r\n"):
            key, _, value = line.partition(": ")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key:
                headers.append((key, value))
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _cgi

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("git-http")
    make_git_repo(root / "work", [repo_files()])
    subprocess.run(["git", "clone", "-q", "--bare", str(root / "work"), str(root / "srv" / "corpus.git")], check=True)
    handler = type("Handler", (_GitHttp,), {"root": str(root / "srv")})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{srv.server_address[1]}", root
    srv.shutdown()


# ---------------------------------------------------------------- source URLs without Ray
def settings(root: Path) -> CollectSettings:
    return CollectSettings(cache_dir=str(root / "cache"), fetch=FetchLimits(allowed_protocols=("http", "file")))


def test_collect_source_scrubs_url_credentials_from_rows_tasks_errors_and_logs(
    git_server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    host, _ = git_server
    pw = "Uy7&iO2$pA5s"
    src = Source(url=f"http://ci:{pw}@{host}/corpus.git", kind="git")  # built directly: check_url would refuse it
    row, tasks = collect_source(src, settings(tmp_path))
    assert row["status"] == "ok" and tasks
    assert row["source_url"] == f"http://ci:REDACTED_BASIC_AUTH_URL@{host}/corpus.git"
    assert {t.source_url for t in tasks} == {row["source_url"]}
    assert pw not in json.dumps(row, default=str) and all(pw not in t.to_json() for t in tasks)
    # git's own error text, and our internal-error path with its logged traceback
    row, _ = collect_source(Source(url=f"http://ci:{pw}@{host}/missing.git", kind="git"), settings(tmp_path))
    assert row["status"] == "error" and pw not in (row["error"] or "") and pw not in row["source_url"]

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"cannot discover {src.url} (see {src.url}/info)")

    monkeypatch.setattr(repo_lib, "discover", boom)
    with caplog.at_level(logging.DEBUG):
        row, tasks = collect_source(src, settings(tmp_path))
    assert row["status"] == "error" and row["error"].startswith("internal: RuntimeError: cannot discover http://ci:")
    assert "collect failed for http://ci:REDACTED_BASIC_AUTH_URL@" in caplog.text
    assert pw not in caplog.text and pw not in row["error"] and not tasks


# ---------------------------------------------------------------- the whole pipeline
@pytest.fixture(scope="module")
def built(
    ray_cluster: object, git_server: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    host, _ = git_server
    root = tmp_path_factory.mktemp("secret-corpus")
    out = root / "out"
    url = f"http://{URL_TOKEN}@{host}/corpus.git"
    cfg = load_config(
        collect.CollectConfig,
        None,
        [
            f"output_dir={out}",
            f"cache_dir={root / 'git-cache'}",  # the raw clone lives outside the output directory
            f"sources.urls={json.dumps([url])}",
            "sources.synthetic=null",
            "clone.allowed_protocols=[http, file]",
            "plan.timeout_s=60",
        ],
    )
    collect_summary = collect.run(cfg)
    terminal_files(root / "transcripts")
    records_file(root / "incidents.csv")
    imported_file(root / "chats.jsonl")
    tree = rego_tree(root / "kics")
    bcfg = load_config(
        build_dataset.BuildDatasetConfig,
        None,
        [
            f"output_dir={out}",
            "name=corpus",
            "tasks={plan_prediction: 1.0, terminal_report: 1.0, records: 1.0, imported: 1.0, rego_policy: 1.0}",
            "terminal_report.n_synthetic=0",
            f"terminal_report.transcripts_dir={root / 'transcripts'}",
            f"records.path={root / 'incidents.csv'}",
            "records.system_prompt=''",
            "records.user_template='$service: $symptoms'",
            "records.answer_template='$resolution'",
            f"imported.paths={json.dumps([str(root / 'chats.jsonl')])}",
            f"rego_policy.queries_dir={tree}",
        ],
    )
    summary = build_dataset.run(bcfg)
    return {"out": out, "url": url, "host": host, "collect": collect_summary, "summary": summary}


def canaries() -> dict[str, str]:
    found = {k: val for table in (C, T, R, I, G) for k, (val, _) in table.items()}
    found["U"] = URL_TOKEN
    for i, line in enumerate(PEM_SA_LINES + PEM_FILE_LINES):
        found[f"PEM{i}"] = line
    return found


def _fragments(value: str) -> list[str]:
    """The canary, and its head and tail where it is long enough that those alone identify it."""
    return [value, value[:10], value[-10:]] if len(value) >= 24 else [value]


def test_no_canary_in_any_written_file(built: dict[str, Any]) -> None:
    files = sorted(p for p in built["out"].rglob("*") if p.is_file())
    names = {p.relative_to(built["out"]).as_posix() for p in files}
    assert {"datasets/corpus/train.jsonl", "datasets/corpus/stats.json", "models/tiny/tokenizer.json"} <= names
    assert any(n.startswith("plans.parquet") for n in names) and any(n.startswith("repos.parquet") for n in names)
    leaks = []
    for p in files:
        texts = [p.read_bytes().decode("utf-8", errors="replace")]
        if p.suffix == ".parquet":  # pages may be compressed: decode every value too
            texts.append(json.dumps(pq.read_table(p).to_pylist(), default=str, ensure_ascii=False))
        for name, value in canaries().items():
            for frag in _fragments(value):
                if any(frag in t for t in texts):
                    leaks.append((p.relative_to(built["out"]).as_posix(), name))
    assert leaks == []
    assert len(files) >= 12


def test_source_urls_carry_no_credential(built: dict[str, Any]) -> None:
    safe = f"http://REDACTED_GITHUB_TOKEN@{built['host']}/corpus.git"
    repos = pq.read_table(built["out"] / "repos.parquet").to_pylist()
    plans = pq.read_table(built["out"] / "plans.parquet").to_pylist()
    assert [r["source_url"] for r in repos] == [safe] and repos[0]["status"] == "ok"
    assert sorted((p["path"], p["source_url"]) for p in plans) == [(".", safe), ("azure", safe)]
    examples = [
        json.loads(line) for line in (built["out"] / "datasets" / "corpus" / "train.jsonl").read_text().splitlines()
    ]
    assert examples  # the dataset was written (the leak check above read every line of it)


def _expected(*tables: dict[str, tuple[str, str]], extra: Counter[str] | None = None) -> dict[str, int]:
    counts: Counter[str] = Counter(kind for table in tables for _, kind in table.values())
    counts.update(extra or {})
    return dict(sorted(counts.items()))


def test_collect_counts_every_planted_secret_once(built: dict[str, Any]) -> None:
    repos = pq.read_table(built["out"] / "repos.parquet").to_pylist()
    plans = {p["path"]: p for p in pq.read_table(built["out"] / "plans.parquet").to_pylist()}
    # sa.json's PEM block is one more private_key finding; the source URL's token one more in the repos row
    want_root = _expected({k: val for k, val in C.items() if k != "C27"}, extra=Counter({"private_key": 1}))
    assert {k["kind"]: k["count"] for k in plans["."]["secret_kinds"]} == want_root
    assert {k["kind"]: k["count"] for k in plans["azure"]["secret_kinds"]} == {"azure_client_secret": 1}
    assert repos[0]["secrets_found"] == sum(want_root.values()) + 1 + 1
    assert plans["."]["plan_status"] == "ok" and plans["."]["planner"] == "terraform"


def test_dataset_stats_count_each_kind_exactly(built: dict[str, Any]) -> None:
    stats = json.loads((built["out"] / "datasets" / "corpus" / "stats.json").read_text())
    sc = stats["secrets_scrubbed"]
    want = _expected(T, R, I, G, extra=Counter({"authorization_header": 1}))  # T02 appears twice
    assert sc["by_kind"] == want and sc["total"] == sum(want.values())
    assert sc["by_task"] == {
        "imported": len(I),
        "records": len(R),
        "rego_policy": len(G),  # in the write_tests answer only
        "terminal_report": len(T) + 1,
    }  # plan_prediction: 0, its files were scrubbed at collect time
    root = _expected({k: val for k, val in C.items() if k != "C27"}, extra=Counter({"private_key": 1}))
    assert stats["secrets_scrubbed_upstream"]["secrets"] == sum(root.values())  # the planned workspace only
    assert built["summary"]["secrets_scrubbed"] == sc
    card = (built["out"] / "datasets" / "corpus" / "README.md").read_text()
    assert f"Secrets scrubbed from the examples' messages and metadata (rules v2): {sc['total']}" in card
    assert stats["examples"]["by_task"].keys() == {
        "imported",
        "plan_prediction",
        "records",
        "rego_policy",
        "terminal_report",
    }


def test_ray_logs_carry_no_canary(built: dict[str, Any]) -> None:
    import ray

    logs = Path(ray._private.worker.global_worker.node.get_logs_dir_path())
    hits = []
    for p in logs.rglob("*"):
        if p.is_file() and p.stat().st_size < 50_000_000:
            text = p.read_bytes().decode("utf-8", errors="replace")
            hits += [(p.name, name) for name, value in canaries().items() if value in text]
    assert hits == []
