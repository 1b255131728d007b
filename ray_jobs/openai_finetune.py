"""Fine-tune an OpenAI model on the dataset stage's JSONL → openai_finetune/<dataset>/result.json.

    OPENAI_API_KEY=... python -m ray_jobs.openai_finetune dataset=default base_model=gpt-4o-mini-2024-07-18
    python -m ray_jobs.openai_finetune n_epochs=3 suffix=tfpredict validation=false
    ray job submit --working-dir . -- python -m ray_jobs.openai_finetune --config my_finetune.yaml

Reads <output_dir>/datasets/<dataset>/train.jsonl (and val.jsonl with ``validation=true``, when present and
not empty), validates them with ``pipelines.dataset.validate`` and refuses invalid files before anything is
sent. Then uploads them (purpose ``fine-tune``), creates a supervised fine-tuning job, polls it until it
succeeds, fails or is cancelled (or ``timeout_s`` passes), and logs every job event once, oldest first.
On success it writes <output_dir>/openai_finetune/<dataset>/result.json; a failed job exits non-zero with
the job's error.

Resumable: ``job.json`` (next to result.json) is written as soon as the files are uploaded and the job is
created; a rerun with the same files (SHA-256) and job settings re-attaches to that job, printing only the
events it has not printed yet, instead of uploading again. With a matching result.json there is nothing to do.
Nothing here needs Ray workers: the job only talks to the API, from the driver.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import openai
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from pydantic import Field

from pipelines.dataset.validate import format_report, validate_file
from ray_jobs.common import parse_args, setup_logging
from schemas.config import Strict

logger = logging.getLogger("tfpredict.openai_finetune")
event_logger = logging.getLogger("tfpredict.openai_finetune.events")  # one record per job event: "level: message"

TERMINAL = ("succeeded", "failed", "cancelled")
MIN_TRAIN_EXAMPLES = 10  # OpenAI rejects a training file with fewer examples
EVENTS_PAGE = 100  # events per list request
MAX_REPORTED_PROBLEMS = 20  # problem lines quoted per invalid file


class OpenAIFinetuneConfig(Strict):
    output_dir: str = "data"  # reads <output_dir>/datasets/<dataset>/, writes <output_dir>/openai_finetune/<dataset>/
    dataset: str = "default"
    base_model: str = "gpt-4o-mini-2024-07-18"  # a fine-tunable OpenAI model snapshot
    suffix: str | None = Field(default=None, max_length=64)  # added to the fine-tuned model's name
    # supervised hyperparameters; None: the API's default ("auto")
    n_epochs: int | None = Field(default=None, ge=1)
    batch_size: int | None = Field(default=None, ge=1)
    learning_rate_multiplier: float | None = Field(default=None, gt=0)
    seed: int | None = None  # None: the API picks one
    base_url: str | None = None  # None: $OPENAI_BASE_URL, else OpenAI's default endpoint
    api_key_env: str = "OPENAI_API_KEY"  # the environment variable that holds the API key
    poll_interval_s: float = Field(default=10.0, gt=0)
    timeout_s: float | None = Field(default=86400.0, ge=0)  # stop waiting (the job keeps running); None: no limit
    request_timeout_s: float = Field(default=120.0, gt=0)  # per HTTP request
    max_retries: int = Field(default=5, ge=0)  # the client's retries of 408/409/429/5xx and connection errors
    validation: bool = True  # upload val.jsonl as the validation file when it exists and has examples


# ---------------------------------------------------------------- local checks (before any request)
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_file(path: Path, min_examples: int) -> int:
    """Validate one chat JSONL file; its number of examples, or SystemExit listing the problems and the fix."""
    report = validate_file(path)
    for w in report.warnings:
        logger.warning("%s:%d: %s: %s", path, w.line_no, w.code, w.message)
    problems = [] if report.ok else format_report(str(path), report)[: len(report.errors)]
    if not problems and report.n_examples < min_examples:
        problems = [f"{path}: {report.n_examples} examples; OpenAI needs at least {min_examples} to fine-tune"]
    if problems:
        shown = problems[:MAX_REPORTED_PROBLEMS]
        more = len(problems) - len(shown)
        raise SystemExit(
            f"{path} is not a valid OpenAI chat fine-tuning file ({len(problems)} problem(s)); nothing was uploaded:\n"
            + "\n".join(f"  {p}" for p in shown)
            + (f"\n  ... and {more} more" if more else "")
            + "\nfix: rebuild it with `python -m ray_jobs.build_dataset`, or correct the lines above; "
            f"`tfpredict-validate {path}` checks a file"
        )
    return report.n_examples


def dataset_files(cfg: OpenAIFinetuneConfig) -> dict[str, Path]:
    """``{"train": path[, "val": path]}``: the validated files to upload."""
    ds = Path(cfg.output_dir) / "datasets" / cfg.dataset
    train, val = ds / "train.jsonl", ds / "val.jsonl"
    if not train.exists():
        raise SystemExit(
            f"{train} does not exist: build the dataset first (`python -m ray_jobs.build_dataset name={cfg.dataset}`)"
            " or set output_dir=/dataset="
        )
    files = {"train": train}
    check_file(train, MIN_TRAIN_EXAMPLES)
    if cfg.validation and val.exists():
        if check_file(val, 0):
            files["val"] = val
        else:
            logger.warning("%s has no examples: fine-tuning without a validation file", val)
    elif cfg.validation:
        logger.info("no %s: fine-tuning without a validation file", val)
    return files


def hyperparameters(cfg: OpenAIFinetuneConfig) -> dict[str, Any]:
    """The hyperparameters that are set (the rest stay the API's defaults)."""
    values = {
        "n_epochs": cfg.n_epochs,
        "batch_size": cfg.batch_size,
        "learning_rate_multiplier": cfg.learning_rate_multiplier,
    }
    return {k: v for k, v in values.items() if v is not None}


def job_spec(cfg: OpenAIFinetuneConfig, hashes: Mapping[str, str]) -> dict[str, Any]:
    """What defines the job: a saved job is re-attached only when its spec is equal."""
    return {
        "base_model": cfg.base_model,
        "suffix": cfg.suffix,
        "seed": cfg.seed,
        "hyperparameters": hyperparameters(cfg),
        "files_sha256": dict(hashes),
    }


# ---------------------------------------------------------------- state files
def write_json_atomic(path: Path, obj: Any) -> None:
    """Readers see the old or the new file, never a partial one: temp file in the same directory, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "w") as f:
            f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        logger.warning("ignoring unreadable %s: %s", path, e)
        return None
    return data if isinstance(data, dict) else None


# ---------------------------------------------------------------- API
@contextlib.contextmanager
def api_call(what: str, cfg: OpenAIFinetuneConfig, after: str = "") -> Iterator[None]:
    """Turn an API error (after the client's retries) into SystemExit saying what failed and what to do."""
    try:
        yield
    except openai.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        detail = body.get("message") or e.message
        hint = f" (check the API key in ${cfg.api_key_env})" if e.status_code in (401, 403) else ""
        raise SystemExit(f"OpenAI API: {what} failed: HTTP {e.status_code}: {detail}{hint}{after}") from e
    except openai.APIConnectionError as e:  # includes timeouts
        where = cfg.base_url or os.environ.get("OPENAI_BASE_URL") or "the OpenAI API"
        raise SystemExit(f"OpenAI API: {what} failed: cannot reach {where}: {e}{after}") from e


def make_client(cfg: OpenAIFinetuneConfig) -> openai.OpenAI:
    key = os.environ.get(cfg.api_key_env, "").strip()
    if not key:
        raise SystemExit(
            f"the environment variable {cfg.api_key_env} is not set: export {cfg.api_key_env}=<an OpenAI API key "
            "with fine-tuning access>, or name another variable with api_key_env=<NAME>"
        )
    return openai.OpenAI(api_key=key, base_url=cfg.base_url, timeout=cfg.request_timeout_s, max_retries=cfg.max_retries)


def new_events(client: openai.OpenAI, job_id: str, last_seen: str | None) -> list[FineTuningJobEvent]:
    """The job's events newer than ``last_seen`` (all when None), oldest first.

    The API lists events newest first; ``after`` is the pagination cursor (the last event of the previous
    page, so the next page holds older events). Pages are read until ``last_seen`` turns up."""
    fresh: list[FineTuningJobEvent] = []
    after: str | None = None
    while True:
        kwargs: dict[str, Any] = {"limit": EVENTS_PAGE} | ({"after": after} if after else {})
        page = client.fine_tuning.jobs.list_events(job_id, **kwargs)
        for ev in page.data:
            if ev.id == last_seen:
                return fresh[::-1]
            fresh.append(ev)
        if not page.data or page.has_more is False:
            return fresh[::-1]
        after = page.data[-1].id


def upload(client: openai.OpenAI, cfg: OpenAIFinetuneConfig, path: Path) -> str:
    data = path.read_bytes()
    with api_call(f"uploading {path}", cfg):
        f = client.files.create(file=(path.name, data), purpose="fine-tune")
    logger.info("uploaded %s (%d bytes) as %s", path, len(data), f.id)
    return f.id


def create_job(client: openai.OpenAI, cfg: OpenAIFinetuneConfig, file_ids: Mapping[str, str]) -> FineTuningJob:
    kwargs: dict[str, Any] = {"model": cfg.base_model, "training_file": file_ids["train"]}
    if "val" in file_ids:
        kwargs["validation_file"] = file_ids["val"]
    if cfg.suffix is not None:
        kwargs["suffix"] = cfg.suffix
    if cfg.seed is not None:
        kwargs["seed"] = cfg.seed
    hp = hyperparameters(cfg)
    if hp:  # `method` (the plain `hyperparameters` argument is deprecated)
        kwargs["method"] = {"type": "supervised", "supervised": {"hyperparameters": hp}}
    with api_call("creating the fine-tuning job", cfg):
        job = client.fine_tuning.jobs.create(**kwargs)
    logger.info("created fine-tuning job %s (%s on %s): %s", job.id, cfg.base_model, file_ids, job.status)
    return job


def _job_error(job: FineTuningJob) -> str:
    err = job.error
    if err is None or not (err.message or err.code):
        return "no error message from the API"
    param = f" (param {err.param})" if err.param else ""
    return f"{err.code}: {err.message}{param}" if err.code else f"{err.message}{param}"


# ---------------------------------------------------------------- driver
def run(cfg: OpenAIFinetuneConfig) -> dict[str, Any]:
    start = time.monotonic()
    root = Path(cfg.output_dir).resolve()
    cfg.output_dir = str(root)
    files = dataset_files(cfg)
    hashes = {name: _sha256(p) for name, p in files.items()}
    spec = job_spec(cfg, hashes)
    out = root / "openai_finetune" / cfg.dataset
    job_path, result_path = out / "job.json", out / "result.json"

    done = _read_json(result_path)
    if done is not None and done.get("spec") == spec and done.get("status") == "succeeded":
        logger.info("%s already holds job %s for these files and settings: nothing to do", result_path, done["job_id"])
        return _summary(done, result_path, "already done", start)
    if done is not None:
        logger.info("%s is for other files or settings: fine-tuning again", result_path)

    client = make_client(cfg)
    state = _read_json(job_path)
    if state is None or state.get("spec") != spec:
        if state is not None:
            logger.info("%s is for other files or settings: starting a new job", job_path)
        state = {"spec": spec, "files": {n: {"path": str(p), "sha256": hashes[n]} for n, p in files.items()}}
    mode = "re-attached"
    if state.get("status") in ("failed", "cancelled"):  # the files are uploaded already: a new job on them
        logger.info("job %s in %s was %s: starting a new job", state.get("job_id"), job_path, state["status"])
        state.update(job_id=None, status=None, error=None, last_event_id=None, n_events=0)
    for name, p in files.items():
        if not state["files"][name].get("file_id"):
            state["files"][name]["file_id"] = upload(client, cfg, p)
            write_json_atomic(job_path, state)  # a crash before the job exists re-uses the uploads
    if not state.get("job_id"):
        job = create_job(client, cfg, {n: f["file_id"] for n, f in state["files"].items()})
        state.update(job_id=job.id, status=job.status, last_event_id=None, n_events=0)
        write_json_atomic(job_path, state)
        mode = "created"
    else:
        logger.info("re-attaching to fine-tuning job %s (%s)", state["job_id"], job_path)

    job = poll(client, cfg, state, job_path)
    if job.status != "succeeded":
        raise SystemExit(
            f"fine-tuning job {job.id} {job.status}: {_job_error(job)} (files: {state['files']}; state in {job_path})"
        )
    result = {
        "job_id": job.id,
        "status": job.status,
        "base_model": job.model,
        "fine_tuned_model": job.fine_tuned_model,
        "trained_tokens": job.trained_tokens,
        "hyperparameters": job.hyperparameters.model_dump(exclude_none=True) if job.hyperparameters else None,
        "files": state["files"],
        "events": state["n_events"],
        "finished_at": job.finished_at,
        "spec": spec,
    }
    write_json_atomic(result_path, result)
    return _summary(result, result_path, mode, start)


def poll(client: openai.OpenAI, cfg: OpenAIFinetuneConfig, state: dict[str, Any], job_path: Path) -> FineTuningJob:
    """Poll the job until a terminal status (or the timeout), logging each new event once, oldest first;
    ``state`` (status, last event) is saved to ``job_path`` whenever it changes."""
    job_id = state["job_id"]
    again = f"; job {job_id} may still be running at OpenAI: rerun to re-attach ({job_path})"
    deadline = None if cfg.timeout_s is None else time.monotonic() + cfg.timeout_s
    while True:
        with api_call(f"reading fine-tuning job {job_id}", cfg, again):
            try:
                job = client.fine_tuning.jobs.retrieve(job_id)
            except openai.NotFoundError as e:  # another account or endpoint, or the job was deleted
                raise SystemExit(
                    f"fine-tuning job {job_id} (from {job_path}) is unknown to the API ({e.message}): check "
                    f"base_url and the key in ${cfg.api_key_env}, or delete {job_path} to start a new job"
                ) from e
            events = new_events(client, job_id, state.get("last_event_id"))
        for ev in events:
            event_logger.info("%s: %s", ev.level, ev.message)
        if job.status != state.get("status"):
            logger.info("job %s: %s", job_id, job.status)
        if events or job.status != state.get("status"):
            state.update(status=job.status, n_events=state.get("n_events", 0) + len(events))
            if events:
                state["last_event_id"] = events[-1].id
            if job.status in TERMINAL and job.status != "succeeded":
                state["error"] = _job_error(job)
            write_json_atomic(job_path, state)
        if job.status in TERMINAL:
            return job
        if deadline is not None and time.monotonic() >= deadline:
            raise SystemExit(
                f"timed out after timeout_s={cfg.timeout_s} waiting for fine-tuning job {job_id} "
                f"(status {job.status}){again}, or raise timeout_s"
            )
        time.sleep(cfg.poll_interval_s)


def _summary(result: Mapping[str, Any], result_path: Path, mode: str, start: float) -> dict[str, Any]:
    return {
        "status": result["status"],
        "job_id": result["job_id"],
        "mode": mode,  # created | re-attached | already done
        "fine_tuned_model": result["fine_tuned_model"],
        "trained_tokens": result["trained_tokens"],
        "events": result["events"],
        "file_ids": {n: f["file_id"] for n, f in result["files"].items()},
        "result_path": str(result_path),
        "total_s": round(time.monotonic() - start, 2),
    }


def format_summary(s: Mapping[str, Any]) -> str:
    lines = [
        "",
        "openai_finetune summary",
        f"  job       {s['job_id']} {s['status']} ({s['mode']})",
        f"  model     {s['fine_tuned_model']}",
        f"  trained   {s['trained_tokens']} tokens, {s['events']} events",
        f"  files     {s['file_ids']}",
        f"  {s['total_s']} s",
        f"  wrote {s['result_path']}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    setup_logging()
    cfg = parse_args(OpenAIFinetuneConfig, argv, __doc__ or "", None)
    print(format_summary(run(cfg)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
