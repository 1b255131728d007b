"""The evaluation report: one self-contained ``report.html`` (plots as embedded PNG, no script, no fetches).

What it shows, for every predictor on the same examples: the headline table with 95% intervals and deltas against
the reference (the fine-tuned model), valid-JSON rate and F1 with and without the constrained decoder, F1 by
provider, by complexity bucket and by slice, error categories, the action confusion matrix of the reference, input
length against F1, and the reference's worst examples beside their ground truth. Every text that came from a
model or a collected repository is HTML-escaped, and a Content-Security-Policy forbids the page any request but
its own ``data:`` images, so even a hostile prediction cannot make the report fetch or run anything.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
COMPLEXITY_ORDER = ("low", "medium", "high")  # pipelines.collect.analyze
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}tr.ref td{font-weight:600}
.pos{color:#067d17}.neg{color:#b00020}img{max-width:100%;display:block;margin:.5em 0}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:1em}pre{background:#f7f7f7;padding:.6em;overflow:auto;
max-height:24em;font-size:12px;white-space:pre-wrap;word-break:break-all}.muted{color:#666}
"""


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _img(src: str, alt: str) -> str:
    return f'<img src="{src}" alt="{html.escape(alt)}">'


def _grouped_bars(groups: Mapping[str, Mapping[str, float]], title: str, ylabel: str, order: Sequence[str]) -> str:
    """groups: predictor → {group → value}; one cluster of bars per group."""
    import matplotlib.pyplot as plt

    preds = list(groups)
    keys = list(order)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(keys) * max(1, len(preds)) / 2.5), 3.6))
    width = 0.8 / max(len(preds), 1)
    for i, p in enumerate(preds):
        xs = [k + (i - (len(preds) - 1) / 2) * width for k in range(len(keys))]
        ax.bar(xs, [groups[p].get(k, 0.0) for k in keys], width, label=p)
    ax.set_xticks(range(len(keys)), keys)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8, ncols=min(4, len(preds)), loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def _headline_plot(m: Mapping[str, Any]) -> str:
    import matplotlib.pyplot as plt

    names = list(m["predictors"])
    vals = [m["predictors"][n]["micro_f1"] for n in names]
    ci = [m["predictors"][n]["intervals"].get("micro_f1") or [v, v] for n, v in zip(names, vals, strict=True)]
    err = [[max(v - lo, 0) for v, (lo, _) in zip(vals, ci, strict=True)],
           [max(hi - v, 0) for v, (_, hi) in zip(vals, ci, strict=True)]]  # fmt: skip
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.2))
    ax.barh(range(len(names)), vals, xerr=err, color="#4c72b0", capsize=3)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.05)
    ax.set_xlabel("micro F1 over (address, actions), 95% bootstrap interval")
    for i, v in enumerate(vals):
        ax.text(min(v + 0.01, 0.9), i, f"{v:.3f}", va="center", fontsize=8)
    return _png(fig)


def _confusion_plot(conf: Mapping[str, Mapping[str, int]], name: str) -> str:
    import matplotlib.pyplot as plt

    order = ["create", "update", "delete", "replace", "absent"]
    labels = [k for k in order if k in conf or any(k in r for r in conf.values())]
    labels += sorted({*conf, *(k for r in conf.values() for k in r)} - set(labels))
    grid = [[conf.get(t, {}).get(p, 0) for p in labels] for t in labels]
    fig, ax = plt.subplots(figsize=(1.0 * len(labels) + 2, 0.9 * len(labels) + 1.2))
    ax.imshow(grid, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("terraform plan")
    ax.set_title(f"action confusion: {name}")
    top = max((v for r in grid for v in r), default=0)
    for i, r in enumerate(grid):
        for j, v in enumerate(r):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > top / 2 else "black", fontsize=9)
    return _png(fig)


def _errors_plot(m: Mapping[str, Any], categories: Sequence[str]) -> str:
    import matplotlib.pyplot as plt

    names = list(m["predictors"])
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(names) + 1.4))
    left = [0.0] * len(names)
    for c in categories:
        vals = [float(m["predictors"][n]["errors"].get(c, 0)) for n in names]
        ax.barh(range(len(names)), vals, left=left, label=c)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel("errors (addresses; an answer that is not valid counts once)")
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def _length_plot(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8))
    markers = "os^vD<>p*h"
    for i, n in enumerate(names):
        rs = [r for r in rows if r["predictor"] == n]
        ax.scatter([r["n_tokens"] for r in rs], [r["f1"] for r in rs], s=18, alpha=0.6, label=n,
                   marker=markers[i % len(markers)])  # fmt: skip
    ax.set_xlabel("example length (tokens)")
    ax.set_ylabel("F1")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=8, ncols=2)
    ax.grid(alpha=0.3)
    return _png(fig)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _delta(x: float | None) -> str:
    if x is None:
        return '<td class="muted">ref</td>'
    cls = "pos" if x > 0 else "neg" if x < 0 else ""
    return f'<td class="{cls}">{x:+.3f}</td>'


def _headline_table(m: Mapping[str, Any]) -> str:
    ref = m.get("reference")
    head = ("predictor", "micro F1", "95% CI", "macro F1", "address F1", "exact", "valid JSON", "closed", "cut",
            "errors",
            "Δ micro F1 (ref − this)", "s / example")  # fmt: skip
    out = ["<table><tr>" + "".join(f'<th class="{"l" if i == 0 else ""}">{h}</th>' for i, h in enumerate(head))]
    for n, p in m["predictors"].items():
        ci = p["intervals"].get("micro_f1")
        d = None if n == ref else m.get("deltas", {}).get(n, {}).get("micro_f1")
        out.append(
            f'<tr class="{"ref" if n == ref else ""}"><td class="l">{html.escape(n)}</td><td>{p["micro_f1"]:.3f}</td>'
            f"<td>{f'{ci[0]:.3f}–{ci[1]:.3f}' if ci else '–'}</td><td>{p['macro_f1']:.3f}</td>"
            f"<td>{p['address_micro_f1']:.3f}</td><td>{_pct(p['exact_match'])}</td><td>{_pct(p['valid_rate'])}</td>"
            f"<td>{_pct(p['closed_rate'])}</td><td>{_pct(p['cut_rate'])}</td><td>{_pct(p['error_rate'])}</td>"
            + (_delta(d) if ref else "<td>–</td>")
            + f"<td>{p['latency_s_mean']:.2f}</td></tr>"
        )
    return "\n".join(out) + "</table>"


def _constrained_table(m: Mapping[str, Any]) -> str:
    """Models evaluated both ways: valid-JSON rate and micro F1 with and without the constrained decoder."""
    rows = []
    for n, p in m["predictors"].items():
        if n.endswith(" (constrained)") and n.removesuffix(" (constrained)") in m["predictors"]:
            free = m["predictors"][n.removesuffix(" (constrained)")]
            rows.append(
                f'<tr><td class="l">{html.escape(n.removesuffix(" (constrained)"))}</td>'
                f"<td>{_pct(free['valid_rate'])}</td><td>{_pct(p['valid_rate'])}</td>"
                f"<td>{free['micro_f1']:.3f}</td><td>{p['micro_f1']:.3f}</td></tr>"
            )
    if not rows:
        return '<p class="muted">No model was evaluated both with and without the constrained decoder.</p>'
    return (
        '<table><tr><th class="l">model</th><th>valid JSON, free</th><th>valid JSON, constrained</th>'
        "<th>micro F1, free</th><th>micro F1, constrained</th></tr>" + "".join(rows) + "</table>"
    )


def _tasks_table(m: Mapping[str, Any]) -> str:
    """The other tasks: mean score, pass rate and valid rate per predictor (pipelines.evaluate.tasks)."""
    tasks = m.get("tasks") or {}
    if not tasks:
        return '<p class="muted">No other task in this split (or none asked for).</p>'
    out = ['<table><tr><th class="l">task</th><th class="l">predictor</th><th>n</th><th>score</th><th>pass</th>'
           '<th>valid</th><th class="l">status</th></tr>']  # fmt: skip
    for task, preds in tasks.items():
        for name, p in preds.items():
            status = ", ".join(f"{k} {v}" for k, v in p["status"].items())
            valid = _pct(p["valid_rate"]) if p["valid_rate"] is not None else "–"
            out.append(f'<tr><td class="l">{html.escape(task)}</td><td class="l">{html.escape(name)}</td>'
                       f"<td>{p['n']}</td><td>{p['score']:.3f}</td><td>{_pct(p['pass_rate'])}</td><td>{valid}</td>"
                       f'<td class="l">{html.escape(status)}</td></tr>')  # fmt: skip
    return (
        "\n".join(out)
        + "</table>"
        + (
            '<p class="muted">rego_policy: the query compiles and passes its tests (score 1) or not; terminal_report: '
            "schema-valid, then field-level token overlap with the reference; records: reference overlap "
            f"({html.escape(str(m.get('records_metric', 'rouge_l')))}).</p>"
        )
    )


def _pretty(text: str) -> str:
    """A plan answer with one change per line (easy to compare side by side); any other text as it is."""
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return text
    changes = doc.get("resource_changes") if isinstance(doc, dict) else None
    if not isinstance(changes, list):
        return json.dumps(doc, indent=1, sort_keys=True)
    lines = [json.dumps(c, sort_keys=True) for c in changes]
    return '{"resource_changes": [\n' + ",\n".join(f"  {x}" for x in lines) + "\n]}"


def _worst(rows: Sequence[Mapping[str, Any]], name: str, k: int, max_chars: int = 6000) -> str:
    rs = sorted((r for r in rows if r["predictor"] == name and not r["exact_match"]),
                key=lambda r: (r["f1"], -r["n_tokens"], r["example_id"]))  # fmt: skip
    out = []
    for r in rs[:k]:
        pred = _pretty(r["text"] or "")
        if r["error"]:
            pred = f"(no answer: {r['error']})"
        cut = "…(cut here)" if len(pred) > max_chars else ""
        out.append(
            f"<h3>{html.escape(r['example_id'])} · {html.escape(r['provider'])} · {html.escape(r['complexity_bucket'])}"
            f" · {html.escape(r['subtask'])} · F1 {r['f1']:.3f} · {html.escape(r['status'])}</h3>"
            + (f'<p class="muted">{html.escape(r["parse_error"])}</p>' if r["parse_error"] else "")
            + f'<div class="pair"><div><b>{html.escape(name)}</b><pre>{html.escape(pred[:max_chars])}{cut}</pre></div>'
            f"<div><b>terraform plan</b><pre>{html.escape(_pretty(r['truth']))}</pre></div></div>"
        )
    return "\n".join(out) or '<p class="muted">Every answer matched its plan exactly.</p>'


def render(m: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], *, title: str, worst: int = 8) -> str:
    """The whole page. ``m``: metrics.json's content; ``rows``: predictions.parquet's rows."""
    import matplotlib

    matplotlib.use("Agg")
    from pipelines.evaluate.metrics import ERRORS

    if not m["predictors"]:
        none = '<p class="muted">No plan-prediction example in this split.</p>'
        return _page(m, title, "", [("Plan prediction", none), ("Other tasks", _tasks_table(m))])
    names = list(m["predictors"])
    ref = m.get("reference") or next((n for n in names if n not in ("trivial", "static")), names[0] if names else "")
    providers = sorted({k for p in m["predictors"].values() for k in p["by_provider"]})
    buckets = {k for p in m["predictors"].values() for k in p["by_complexity"]}
    buckets_order = [b for b in COMPLEXITY_ORDER if b in buckets] + sorted(buckets - set(COMPLEXITY_ORDER))
    slices = sorted({k for p in m["predictors"].values() for k in p["by_slice"]}, key=lambda s: (s != "all", s))
    used = [c for c in ERRORS if any(p["errors"].get(c) for p in m["predictors"].values())]

    def per(key: str) -> dict[str, dict[str, float]]:
        return {n: {k: v["micro_f1"] for k, v in m["predictors"][n][key].items()} for n in names}

    sections = [
        ("Headline", _headline_table(m) + _img(_headline_plot(m), "micro F1 per predictor")),
        ("Valid JSON by construction", _constrained_table(m)),
        ("By provider", _img(_grouped_bars(per("by_provider"), "micro F1 by provider", "micro F1", providers),
                             "F1 by provider")),
        ("By complexity", _img(_grouped_bars(per("by_complexity"), "micro F1 by complexity bucket", "micro F1",
                                             buckets_order), "F1 by complexity")),
        ("By slice", _img(_grouped_bars(per("by_slice"), "micro F1 by slice (an example is in every slice it fits)",
                                        "micro F1", slices), "F1 by slice")),
        ("Error categories", (_img(_errors_plot(m, used), "error categories") if used else "<p>No errors.</p>")),
        ("Action confusion", _img(_confusion_plot(m["predictors"][ref]["confusion"], ref), "action confusion")
         if ref in m["predictors"] and m["predictors"][ref]["confusion"] else "<p>No valid answers.</p>"),
        ("Input length vs F1", _img(_length_plot(rows, names), "input length vs F1")),
        (f"Worst examples of {ref}", _worst(rows, ref, worst)),
        ("Other tasks", _tasks_table(m)),
    ]  # fmt: skip
    return _page(m, title, ref, sections)


def _page(m: Mapping[str, Any], title: str, ref: str, sections: Sequence[tuple[str, str]]) -> str:
    body = "\n".join(f"<h2>{html.escape(h)}</h2>\n{c}" for h, c in sections)
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f'<h1>{html.escape(title)}</h1><p class="muted">{m["n_examples"]} {html.escape(m["task"])} examples of the '
        f"{html.escape(m['split'])} split; reference: {html.escape(ref or '–')}. Ground truth: terraform plan.</p>"
        f"{body}</body></html>\n"
    )


def write(path: Path, m: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], *, title: str) -> Path:
    path.write_text(render(m, rows, title=title), encoding="utf-8")
    return path
