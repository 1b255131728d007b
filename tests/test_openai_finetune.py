"""The OpenAI fine-tuning job against a local fake of OpenAI's files and fine-tuning API.

OpenAI's API is third-party SaaS, so it is faked here at the HTTP layer: ``FakeOpenAI`` is a real
``http.server.ThreadingHTTPServer`` on 127.0.0.1 (port 0) that answers POST /v1/files (multipart upload),
POST /v1/fine_tuning/jobs, GET /v1/fine_tuning/jobs/{id} and GET /v1/fine_tuning/jobs/{id}/events with
the JSON shapes of the real service: bearer-key auth (401 ``invalid_api_key``), error objects, a job that
moves through its statuses one retrieve at a time (validating_files → queued → running → succeeded, or
failed with an error), events that appear as it goes, listed newest first with ``after`` cursor pagination
and ``has_more`` (pages capped at 2 events, so the client must page), and a 500 answered once on request.
The real ``openai`` client talks to it (``base_url=http://127.0.0.1:PORT/v1``); every request is recorded
with its body so the tests assert exactly what was sent.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from ray_jobs.openai_finetune import OpenAIFinetuneConfig, main, run
from tests.collect.fake_apis import LoopbackHttp

API_KEY = "sk-test-finetune"
BASE_MODEL = "gpt-4o-mini-2024-07-18"
TRAINED_TOKENS = 4321
EVENTS_LOGGER = "tfpredict.openai_finetune.events"
OK = ("validating_files", "queued", "running", "running", "running", "succeeded")
FAIL = ("validating_files", "queued", "running", "failed")
JOB_ERROR = {
    "code": "invalid_training_file",
    "message": "The job failed due to an invalid training file. Expected file to have JSONL format.",
    "param": "training_file",
}


# ---------------------------------------------------------------- the fake
@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int  # what the fake answered


def _error(status: int, message: str, type_: str, code: str | None = None, param: str | None = None) -> tuple[int, Any]:
    return status, {"error": {"message": message, "type": type_, "param": param, "code": code}}


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """multipart/form-data → {field: (filename, bytes)}."""
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        fields[str(name)] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
    return fields


class FakeOpenAI(LoopbackHttp):
    """OpenAI's files + fine-tuning endpoints. Job number k (0-based) follows ``scripts[k]`` (the last
    script repeats): creation returns its first status, each retrieve moves one status on."""

    PAGE_CAP = 2  # events per page at most, whatever ``limit`` asks

    def __init__(self, scripts: Sequence[Sequence[str]] = (OK,), error: dict[str, str] | None = None) -> None:
        super().__init__()
        self.requests: list[Request] = []
        self.files: dict[str, dict[str, Any]] = {}  # id → {"filename", "purpose", "content"}
        self.jobs: dict[str, dict[str, Any]] = {}  # id → job JSON
        self.created: list[dict[str, Any]] = []  # bodies of the job creations that succeeded
        self._scripts = [tuple(s) for s in scripts]
        self._error = error or JOB_ERROR
        self._step: dict[str, int] = {}
        self._events: dict[str, list[dict[str, Any]]] = {}  # job id → events, oldest first
        self._fail_once: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"{self.base_url}/v1"

    def fail_once(self, method: str, path: str) -> None:
        """The next ``method path`` request gets a 500 (the client retries it)."""
        self._fail_once.append((method, path))

    def events(self, job_id: str) -> list[str]:
        """The job's events so far, oldest first, as the job logs them ("level: message")."""
        return [f"{e['level']}: {e['message']}" for e in self._events[job_id]]

    def sent(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path == path]

    # -------------------------------------------------------- serving
    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in h.headers.items()}
        with self._lock:
            status, reply = self._answer(h.command, parts.path, dict(parse_qsl(parts.query)), headers, body)
            self.requests.append(Request(h.command, parts.path, dict(parse_qsl(parts.query)), headers, body, status))
        data = json.dumps(reply).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _answer(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        if headers.get("authorization") != f"Bearer {API_KEY}":
            return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        if (method, path) in self._fail_once:
            self._fail_once.remove((method, path))
            return _error(
                500, "The server had an error while processing your request. Sorry about that!", "server_error"
            )
        segs = path.strip("/").split("/")
        if method == "POST" and path == "/v1/files":
            return self._upload(headers.get("content-type", ""), body)
        if method == "POST" and path == "/v1/fine_tuning/jobs":
            return self._create(json.loads(body))
        if segs[:3] == ["v1", "fine_tuning", "jobs"] and len(segs) in (4, 5) and segs[3] not in self.jobs:
            return _error(404, f"Could not find fine-tune: {segs[3]}", "invalid_request_error", "fine_tune_not_found")
        if method == "GET" and len(segs) == 4 and segs[:3] == ["v1", "fine_tuning", "jobs"]:
            return self._advance(segs[3])
        if method == "GET" and len(segs) == 5 and segs[:3] == ["v1", "fine_tuning", "jobs"] and segs[4] == "events":
            return self._list_events(segs[3], query)
        return _error(404, f"Invalid URL ({method} {path})", "invalid_request_error")

    def _upload(self, content_type: str, body: bytes) -> tuple[int, Any]:
        form = parse_multipart(content_type, body)
        if "file" not in form or "purpose" not in form:
            return _error(400, "Missing file or purpose", "invalid_request_error")
        filename, content = form["file"]
        fid = f"file-{len(self.files) + 1:04d}"
        self.files[fid] = {"filename": filename, "purpose": form["purpose"][1].decode(), "content": content}
        return 200, {
            "id": fid,
            "object": "file",
            "bytes": len(content),
            "created_at": 1_700_000_000,
            "filename": filename,
            "purpose": form["purpose"][1].decode(),
            "status": "processed",
            "status_details": None,
        }

    def _create(self, params: dict[str, Any]) -> tuple[int, Any]:
        for key in ("training_file", "validation_file"):
            fid = params.get(key)
            if key in params and (fid not in self.files or self.files[fid]["purpose"] != "fine-tune"):
                return _error(400, f"invalid {key} {fid}", "invalid_request_error", "invalid_file", key)
        n = len(self.jobs)
        job_id = f"ftjob-{n + 1:04d}"
        hp = params.get("method", {}).get("supervised", {}).get("hyperparameters", {})
        resolved = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.8} | hp
        self.jobs[job_id] = {
            "object": "fine_tuning.job",
            "id": job_id,
            "model": params["model"],
            "created_at": 1_700_000_100 + n,
            "finished_at": None,
            "fine_tuned_model": None,
            "organization_id": "org-test",
            "result_files": [],
            "status": None,
            "validation_file": params.get("validation_file"),
            "training_file": params["training_file"],
            "hyperparameters": resolved,
            "method": {"type": "supervised", "supervised": {"hyperparameters": resolved}},
            "trained_tokens": None,
            "error": None,
            "seed": params.get("seed", 42),
            "suffix": params.get("suffix"),
            "metadata": None,
            "integrations": [],
            "estimated_finish": None,
        }
        self.created.append(params)
        self._step[job_id] = -1
        self._events[job_id] = []
        return self._advance(job_id)

    def _advance(self, job_id: str) -> tuple[int, Any]:
        script = self._scripts[min(list(self._step).index(job_id), len(self._scripts) - 1)]
        job = self.jobs[job_id]
        if self._step[job_id] < len(script) - 1:
            self._step[job_id] += 1
            status = script[self._step[job_id]]
            job["status"] = status
            self._emit(job, status)
        return 200, job

    def _emit(self, job: dict[str, Any], status: str) -> None:
        events = self._events[job["id"]]

        def add(message: str, level: str = "info", kind: str = "message", data: Any = None) -> None:
            events.append(
                {
                    "object": "fine_tuning.job.event",
                    "id": f"ftevent-{job['id']}-{len(events):03d}",
                    "created_at": job["created_at"] + len(events),
                    "level": level,
                    "message": message,
                    "data": data,
                    "type": kind,
                }
            )

        if status == "validating_files":
            add(f"Validating training file: {job['training_file']}")
            if job["validation_file"]:
                add(f"Validating validation file: {job['validation_file']}")
        elif status == "queued":
            add("Files validated, moving job to queued state")
        elif status == "running" and not any("started" in e["message"] for e in events):
            add("Fine-tuning job started")
        elif status == "running":
            for _ in range(2):
                step = sum(e["type"] == "metrics" for e in events) + 1
                add(f"Step {step}/4: training loss=0.{9 - step}", kind="metrics", data={"step": step})
        elif status == "succeeded":
            model = f"ft:{job['model']}:org-test:{job['suffix'] or ''}:{job['id'][-4:]}"
            job.update(fine_tuned_model=model, trained_tokens=TRAINED_TOKENS, finished_at=job["created_at"] + 600)
            add(f"New fine-tuned model created: {model}")
            add("The job has successfully completed")
        elif status == "failed":
            job.update(error=self._error, finished_at=job["created_at"] + 60)
            add(self._error["message"], level="error")

    def _list_events(self, job_id: str, query: dict[str, str]) -> tuple[int, Any]:
        newest_first = self._events[job_id][::-1]
        ids = [e["id"] for e in newest_first]
        start = ids.index(query["after"]) + 1 if query.get("after") in ids else 0
        page = newest_first[start : start + min(int(query.get("limit", 20)), self.PAGE_CAP)]
        return 200, {"object": "list", "data": page, "has_more": start + len(page) < len(newest_first)}


# ---------------------------------------------------------------- helpers
def chat(i: int) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "You predict terraform plans."},
            {"role": "user", "content": f"What does plan {i} create?"},
            {"role": "assistant", "content": f"It creates null_resource.r{i}."},
        ]
    }


def write_jsonl(path: Path, rows: Sequence[Any]) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path.read_bytes()


def dataset(root: Path, n_train: int = 12, n_val: int | None = 3) -> tuple[bytes, bytes | None]:
    ds = root / "datasets" / "default"
    train = write_jsonl(ds / "train.jsonl", [chat(i) for i in range(n_train)])
    val = write_jsonl(ds / "val.jsonl", [chat(100 + i) for i in range(n_val)]) if n_val is not None else None
    return train, val


def config(root: Path, fake: FakeOpenAI, **kw: Any) -> OpenAIFinetuneConfig:
    return OpenAIFinetuneConfig(output_dir=str(root), base_url=fake.url, poll_interval_s=0.01, max_retries=2, **kw)


def logged_events(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == EVENTS_LOGGER]


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as f:
        yield f


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    caplog.set_level(logging.INFO, logger="tfpredict")


# ---------------------------------------------------------------- tests
def test_fine_tunes_end_to_end(tmp_path: Path, fake: FakeOpenAI, caplog: pytest.LogCaptureFixture) -> None:
    train, val = dataset(tmp_path)
    fake.fail_once("POST", "/v1/files")  # the first upload gets a 500; the client retries it
    cfg = config(tmp_path, fake, n_epochs=2, batch_size=4, learning_rate_multiplier=0.5, seed=7, suffix="tfpredict")

    summary = run(cfg)

    # uploads: the 500, its retry with the same bytes, then val; each stored file is exactly the JSONL
    uploads = fake.sent("POST", "/v1/files")
    assert [r.status for r in uploads] == [500, 200, 200]
    forms = [parse_multipart(r.headers["content-type"], r.body) for r in uploads]
    assert forms[0] == forms[1] == {"file": ("train.jsonl", train), "purpose": (None, b"fine-tune")}
    assert {fid: (f["filename"], f["purpose"], f["content"]) for fid, f in fake.files.items()} == {
        "file-0001": ("train.jsonl", "fine-tune", train),
        "file-0002": ("val.jsonl", "fine-tune", val),
    }
    assert all(r.headers["authorization"] == f"Bearer {API_KEY}" for r in fake.requests)
    # the job: model, files and hyperparameters (under the supervised method), exactly
    assert fake.created == [
        {
            "model": BASE_MODEL,
            "training_file": "file-0001",
            "validation_file": "file-0002",
            "suffix": "tfpredict",
            "seed": 7,
            "method": {
                "type": "supervised",
                "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 0.5}},
            },
        }
    ]
    # polled to the end: one retrieve per status after creation
    assert len(fake.sent("GET", "/v1/fine_tuning/jobs/ftjob-0001")) == len(OK) - 1
    # every event logged exactly once, oldest first (the API lists newest first, 2 per page)
    events = fake.events("ftjob-0001")
    assert logged_events(caplog) == events
    assert events == [
        "info: Validating training file: file-0001",
        "info: Validating validation file: file-0002",
        "info: Files validated, moving job to queued state",
        "info: Fine-tuning job started",
        "info: Step 1/4: training loss=0.8",
        "info: Step 2/4: training loss=0.7",
        "info: Step 3/4: training loss=0.6",
        "info: Step 4/4: training loss=0.5",
        "info: New fine-tuned model created: ft:gpt-4o-mini-2024-07-18:org-test:tfpredict:0001",
        "info: The job has successfully completed",
    ]
    assert any(r.query.get("after") for r in fake.sent("GET", "/v1/fine_tuning/jobs/ftjob-0001/events"))

    out = tmp_path / "openai_finetune" / "default"
    result = json.loads((out / "result.json").read_text())
    ds = tmp_path / "datasets" / "default"
    files = {
        "train": {"path": str(ds / "train.jsonl"), "sha256": hashlib.sha256(train).hexdigest(), "file_id": "file-0001"},
        "val": {
            "path": str(ds / "val.jsonl"),
            "sha256": hashlib.sha256(val or b"").hexdigest(),
            "file_id": "file-0002",
        },
    }
    assert result == {
        "job_id": "ftjob-0001",
        "status": "succeeded",
        "base_model": BASE_MODEL,
        "fine_tuned_model": "ft:gpt-4o-mini-2024-07-18:org-test:tfpredict:0001",
        "trained_tokens": TRAINED_TOKENS,
        "hyperparameters": {"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 0.5},
        "files": files,
        "events": 10,
        "finished_at": 1_700_000_700,
        "spec": {
            "base_model": BASE_MODEL,
            "suffix": "tfpredict",
            "seed": 7,
            "hyperparameters": {"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 0.5},
            "files_sha256": {"train": files["train"]["sha256"], "val": files["val"]["sha256"]},
        },
    }
    assert sorted(p.name for p in out.iterdir()) == ["job.json", "result.json"]  # no temp files left
    assert {k: v for k, v in summary.items() if k != "total_s"} == {
        "status": "succeeded",
        "job_id": "ftjob-0001",
        "mode": "created",
        "fine_tuned_model": "ft:gpt-4o-mini-2024-07-18:org-test:tfpredict:0001",
        "trained_tokens": TRAINED_TOKENS,
        "events": 10,
        "file_ids": {"train": "file-0001", "val": "file-0002"},
        "result_path": str(out / "result.json"),
    }


def test_failed_job_exits_nonzero_with_its_error_then_a_rerun_retries_on_the_same_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    dataset(tmp_path, n_val=None)
    with FakeOpenAI(scripts=[FAIL, OK]) as fake:
        argv = [f"output_dir={tmp_path}", f"base_url={fake.url}", "poll_interval_s=0.01"]
        with pytest.raises(SystemExit) as failed:
            main(argv)
        assert isinstance(failed.value.code, str)  # SystemExit(str): message on stderr, exit status 1
        assert failed.value.code.startswith(
            "fine-tuning job ftjob-0001 failed: invalid_training_file: The job failed due to an invalid training "
            "file. Expected file to have JSONL format. (param training_file)"
        )
        out = tmp_path / "openai_finetune" / "default"
        assert not (out / "result.json").exists()
        state = json.loads((out / "job.json").read_text())
        assert (state["job_id"], state["status"], state["n_events"]) == ("ftjob-0001", "failed", 4)
        assert logged_events(caplog)[-1] == f"error: {JOB_ERROR['message']}"
        assert fake.created == [{"model": BASE_MODEL, "training_file": "file-0001"}]  # no val, no hyperparameters

        # a rerun starts a new job on the files already uploaded
        assert main(argv) == 0
        assert len(fake.sent("POST", "/v1/files")) == 1
        assert [c["training_file"] for c in fake.created] == ["file-0001", "file-0001"]
        assert json.loads((out / "result.json").read_text())["job_id"] == "ftjob-0002"
        printed = capsys.readouterr().out
        assert "ftjob-0002 succeeded (created)" in printed
        assert f"wrote {out / 'result.json'}" in printed


@pytest.mark.parametrize(
    ("train_rows", "val_rows", "expected"),
    [
        ([chat(0), chat(1), "{not json", *[chat(i) for i in range(2, 12)]], None, "train.jsonl:3: invalid_json:"),
        (
            [*[chat(i) for i in range(12)], {"messages": chat(99)["messages"][:2]}],
            None,
            "train.jsonl:13: no_assistant: no assistant message",
        ),
        ([chat(i) for i in range(5)], None, "5 examples; OpenAI needs at least 10 to fine-tune"),
        ([chat(i) for i in range(12)], [chat(50), {"messages": []}], "val.jsonl:2: bad_messages:"),
        (None, None, "train.jsonl does not exist: build the dataset first"),
    ],
    ids=["bad-json", "no-assistant", "too-few", "bad-val", "missing"],
)
def test_invalid_files_are_refused_before_any_request(
    tmp_path: Path, fake: FakeOpenAI, train_rows: list[Any] | None, val_rows: list[Any] | None, expected: str
) -> None:
    ds = tmp_path / "datasets" / "default"
    if train_rows is not None:
        write_jsonl(ds / "train.jsonl", train_rows)
    if val_rows is not None:
        write_jsonl(ds / "val.jsonl", val_rows)
    with pytest.raises(SystemExit) as refused:
        run(config(tmp_path, fake))
    message = str(refused.value.code)
    assert expected in message
    if train_rows is not None:
        assert "nothing was uploaded" in message
        assert "fix: rebuild it with `python -m ray_jobs.build_dataset`" in message
    assert fake.requests == []
    assert not (tmp_path / "openai_finetune").exists()


def test_missing_api_key_is_refused_before_any_request(
    tmp_path: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset(tmp_path)
    monkeypatch.delenv("TFP_OPENAI_KEY", raising=False)
    with pytest.raises(SystemExit) as refused:
        run(config(tmp_path, fake, api_key_env="TFP_OPENAI_KEY"))
    assert "the environment variable TFP_OPENAI_KEY is not set" in str(refused.value.code)
    assert fake.requests == []


def test_wrong_api_key_names_the_variable(tmp_path: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    with pytest.raises(SystemExit) as refused:
        run(config(tmp_path, fake))
    assert str(refused.value.code) == (
        f"OpenAI API: uploading {tmp_path / 'datasets/default/train.jsonl'} failed: HTTP 401: "
        "Incorrect API key provided. (check the API key in $OPENAI_API_KEY)"
    )
    assert [r.status for r in fake.requests] == [401]  # not retried


def test_rerun_reattaches_to_the_job_without_uploading_again(
    tmp_path: Path, fake: FakeOpenAI, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, _ = dataset(tmp_path, n_val=None)
    out = tmp_path / "openai_finetune" / "default"

    # first run: gives up waiting after the first poll; the job goes on at "OpenAI"
    with pytest.raises(SystemExit) as waited:
        run(config(tmp_path, fake, timeout_s=0))
    assert "timed out after timeout_s=0.0 waiting for fine-tuning job ftjob-0001 (status queued)" in str(
        waited.value.code
    )
    assert "rerun to re-attach" in str(waited.value.code)
    state = json.loads((out / "job.json").read_text())
    assert (state["job_id"], state["status"], state["files"]["train"]["file_id"]) == (
        "ftjob-0001",
        "queued",
        "file-0001",
    )
    first = logged_events(caplog)
    assert first == fake.events("ftjob-0001")[:2]

    # second run: re-attaches, prints only the new events
    summary = run(config(tmp_path, fake))
    assert (summary["mode"], summary["status"], summary["job_id"]) == ("re-attached", "succeeded", "ftjob-0001")
    assert len(fake.sent("POST", "/v1/files")) == 1
    assert len(fake.created) == 1
    assert logged_events(caplog) == fake.events("ftjob-0001")  # every event once, across both runs
    assert summary["events"] == len(fake.events("ftjob-0001")) == 9
    assert fake.files["file-0001"]["content"] == train

    # third run: result.json matches: nothing to do, not a single request (no key needed)
    monkeypatch.delenv("OPENAI_API_KEY")
    n = len(fake.requests)
    again = run(config(tmp_path, fake))
    assert (again["mode"], again["job_id"], again["fine_tuned_model"]) == (
        "already done",
        "ftjob-0001",
        summary["fine_tuned_model"],
    )
    assert len(fake.requests) == n

    # changed training data: a new upload and a new job
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    changed = write_jsonl(tmp_path / "datasets" / "default" / "train.jsonl", [chat(i) for i in range(20, 32)])
    fresh = run(config(tmp_path, fake))
    assert (fresh["mode"], fresh["job_id"], fresh["file_ids"]) == ("created", "ftjob-0002", {"train": "file-0002"})
    assert fake.files["file-0002"]["content"] == changed


def test_a_job_unknown_to_the_api_is_reported_with_the_way_out(tmp_path: Path) -> None:
    dataset(tmp_path, n_val=None)
    with FakeOpenAI() as first, pytest.raises(SystemExit):
        run(config(tmp_path, first, timeout_s=0))  # job.json now names ftjob-0001 of the first fake
    job_path = tmp_path / "openai_finetune" / "default" / "job.json"
    with FakeOpenAI() as other:
        with pytest.raises(SystemExit) as unknown:
            run(config(tmp_path, other))
        sent = [(r.method, r.path, r.status) for r in other.requests]
        assert sent == [("GET", "/v1/fine_tuning/jobs/ftjob-0001", 404)]  # no upload: the stale state is reported
    message = str(unknown.value.code)
    assert message.startswith(f"fine-tuning job ftjob-0001 (from {job_path}) is unknown to the API")
    assert message.endswith(f"or delete {job_path} to start a new job")
