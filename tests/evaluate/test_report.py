"""report.html in a real headless Chromium (Debian's, installed by setup; driven by Playwright, which downloads
nothing): every plot decodes, the page requests nothing outside itself, and hostile prediction or repository text
stays text. Metrics come from the evaluate job's own functions on hand-made prediction rows (no Ray, no model).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from pipelines.evaluate import metrics as M
from pipelines.evaluate import report
from pipelines.evaluate.metrics import status_of
from ray_jobs.evaluate import PREDICTIONS, EvaluateConfig, compute_metrics


def chromium() -> str:
    path = os.environ.get("TFPREDICT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("no chromium on PATH: run scripts/setup.sh (it installs Debian's chromium), or "
                    "`sudo apt-get install chromium`, or set TFPREDICT_CHROMIUM=/path/to/chrome")  # fmt: skip
    return path


def answer(*pairs: tuple[str, list[str]]) -> str:
    return json.dumps({"resource_changes": [{"address": a, "actions": x} for a, x in pairs]})


class Hits(BaseHTTPRequestHandler):
    count = 0

    def do_GET(self) -> None:
        type(self).count += 1
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def trap() -> Any:
    """A loopback server that counts every request: the page must never reach it."""
    Hits.count = 0
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Hits)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()


def rows(evil_url: str) -> list[dict[str, Any]]:
    hostile = (f'</pre><img src="{evil_url}/img"><script>fetch("{evil_url}/js")</script>'
               f'<link rel="stylesheet" href="{evil_url}/css"><iframe src="{evil_url}/frame"></iframe>')  # fmt: skip
    truths = {
        "e1": answer(("aws_s3_bucket.logs", ["create"]), ("aws_s3_bucket.data", ["create"])),
        "e2": answer(("aws_instance.web[0]", ["create"]), ("aws_instance.web[1]", ["create"])),
        "e3": answer(("module.net.aws_vpc.this", ["update"])),
        # a collected repository's address may carry anything; the report shows it as text
        "e4": answer((f'null_resource.x["{hostile}"]', ["delete"])),
    }
    answers = {
        "trivial": {k: answer() for k in truths},
        "static": {
            "e1": truths["e1"],
            "e2": answer(("aws_instance.web", ["create"])),
            "e3": answer(),
            "e4": truths["e4"],
        },
        "fine-tuned (constrained)": {
            "e1": truths["e1"],
            "e2": truths["e2"],
            "e3": answer(("module.net.aws_vpc.this", ["delete", "create"])),
            "e4": answer(("null_resource.y", ["create"])),
        },
        "fine-tuned": {
            "e1": truths["e1"],
            "e2": '{"resource_changes":[{"address":"aws_inst',
            "e3": hostile,
            "e4": truths["e4"],
        },
    }
    meta = {"e1": ("aws", "low", "fresh", 120), "e2": ("aws", "medium", "fresh", 300),
            "e3": ("azurerm", "high", "change", 900), "e4": ("null", "low", "change", 200)}  # fmt: skip
    out = []
    for pred, texts in answers.items():
        for eid, text in texts.items():
            parsed, parse_error = M.parse_prediction(text)
            truth, _ = M.parse_prediction(truths[eid])
            finished = not (pred == "fine-tuned" and eid == "e2")
            provider, bucket, variant, n = meta[eid]
            out.append({
                "example_id": eid, "predictor": pred, "provider": provider, "complexity_bucket": bucket,
                "subtask": variant, "n_tokens": n, "truth": truths[eid], "text": text, "answer": text,
                "finished": finished,
                "error": None, "parse_error": parse_error, "status": status_of(None, finished, parse_error),
                "latency_s": 0.1, "prompt_tokens": n, "completion_tokens": 10,
                **M.score_example(parsed, truth or []).as_row(),
            })  # fmt: skip
    return out


@pytest.fixture
def page_html(tmp_path: Path, trap: Any) -> tuple[Path, dict[str, Any], list[dict[str, Any]], str]:
    evil = f"http://127.0.0.1:{trap.server_address[1]}"
    rs = rows(evil)
    table = pa.Table.from_pylist(rs, schema=PREDICTIONS)
    order = ["trivial", "static", "fine-tuned (constrained)", "fine-tuned"]
    m = compute_metrics(table, EvaluateConfig(bootstrap=200), order)
    path = report.write(tmp_path / "report.html", m, rs, title="t")
    return path, m, rs, evil


def test_metrics_carry_what_the_report_plots(page_html: tuple[Path, dict[str, Any], list, str]) -> None:
    _, m, _, _ = page_html
    ft = m["predictors"]["fine-tuned (constrained)"]
    # e1, e2 exact; e3 update→replace: wrong action; e4 y created, x's delete missed → 1 FP and 1 FN
    assert ft["errors"] == {"wrong_action": 1, "missed_resource": 1, "hallucinated_resource": 1}
    assert ft["confusion"] == {"absent": {"create": 1}, "create": {"create": 4}, "delete": {"absent": 1},
                               "update": {"replace": 1}}  # fmt: skip
    assert m["predictors"]["static"]["errors"] == {"expansion": 3, "missed_resource": 1}
    assert m["predictors"]["fine-tuned"]["errors"] == {"cut": 1, "invalid_json": 1}
    assert m["predictors"]["trivial"]["errors"] == {"missed_resource": 6}
    assert ft["by_slice"]["count_for_each"]["micro_f1"] == 1.0 and ft["by_slice"]["module"]["micro_f1"] == 0.0
    assert sorted(ft["by_slice"]) == ["all", "change", "count_for_each", "fresh", "module"]
    assert m["reference"] == "fine-tuned (constrained)"


def test_report_opens_in_headless_chromium_with_every_plot_decoded_and_nothing_fetched(
    page_html: tuple[Path, dict[str, Any], list, str],
) -> None:
    from playwright.sync_api import sync_playwright

    path, _, _, evil = page_html
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium(),
            args=[
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
            ],
        )
        try:
            page = browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.goto(path.as_uri(), wait_until="load")
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => ({src: e.src.slice(0, 22), ok: e.complete && e.naturalWidth > 0,"
                " w: e.naturalWidth, alt: e.alt}))",
            )  # fmt: skip
            text = page.inner_text("body")
            scripts = page.eval_on_selector_all("script, iframe, link", "els => els.length")
            shot = page.screenshot(full_page=True)
        finally:
            browser.close()
    alts = [i["alt"] for i in images]
    assert alts == [
        "micro F1 per predictor",
        "F1 by provider",
        "F1 by complexity",
        "F1 by slice",
        "error categories",
        "action confusion",
        "input length vs F1",
    ]  # fmt: skip  (no injected <img>)
    assert all(i["ok"] and i["w"] > 100 and i["src"] == "data:image/png;base64," for i in images), images
    assert scripts == 0
    assert [u for u in requests if not u.startswith("data:")] == [path.as_uri()]
    assert Hits.count == 0
    assert f'<img src=\\"{evil}/img\\">' in text  # the hostile address is shown, as (JSON) text
    assert "fine-tuned (constrained)" in text and "Worst examples of fine-tuned (constrained)" in text
    assert len(shot) > 10_000


def test_the_policy_alone_blocks_fetches_even_from_unescaped_markup(tmp_path: Path, trap: Any) -> None:
    """Defence in depth: were a future change to forget an escape, the page's CSP would still block the fetch."""
    from playwright.sync_api import sync_playwright

    evil = f"http://127.0.0.1:{trap.server_address[1]}"
    page_src = (f'<!doctype html><html><head><meta http-equiv="Content-Security-Policy" content="{report.CSP}">'
                f'</head><body><img src="{evil}/img"><script>fetch("{evil}/js")</script></body></html>')  # fmt: skip
    path = tmp_path / "p.html"
    path.write_text(page_src)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--disable-background-networking"])
        try:
            page = browser.new_page()
            page.goto(path.as_uri(), wait_until="load")
            page.wait_for_timeout(300)
        finally:
            browser.close()
    assert Hits.count == 0
