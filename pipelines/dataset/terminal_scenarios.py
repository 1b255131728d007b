"""Scenario families for the synthetic terminal-report generator (see :mod:`pipelines.dataset.terminal`).

Each family is a function of a seeded ``random.Random`` that draws its parameters once (names, ports,
versions, hosts, which outcome) and renders from them BOTH a realistic terminal transcript (prompts,
ANSI colours, timestamps, ``\\r`` progress bars) and the exact structured report. The report is never
parsed from the transcript, so it is right by construction.

Report rules every family follows (the schema's descriptions say the same):
- ``key_successes``: what worked, in the order it happened; a problem hit and fixed within the session is
  a success ("Resolved ...") whose ``adjacent_context`` names the original error.
- ``blockers``: only problems still unresolved when the transcript ends; a fully successful session has none.
- ``resources``: every file, URL, host, port, package/image and command line the session worked with, in
  order of first appearance, each spelled exactly as in the transcript (navigation such as ``cd`` excluded).
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

Report = dict[str, Any]
Family = Callable[[random.Random], tuple[str, Report]]

EPOCH = datetime(2023, 6, 1, 8, 0, 0)

# prompt styles; POSIX for unix-only sessions, ANY adds PowerShell, SERVER for ops work on a box
POSIX = ("bash", "bash", "zsh", "fish", "fedora")
ANY = (*POSIX, "pwsh")
SERVER = ("bash", "bash", "fedora", "zsh")

PROJECTS = (
    "billing-api", "web-frontend", "auth-service", "inventory-svc", "data-pipeline", "ml-platform", "payments",
    "notifier", "search-indexer", "user-portal", "orders-api", "metrics-agent", "gateway", "catalog",
    "checkout-web", "reporting", "scheduler", "ledger",
)  # fmt: skip
USERS = ("alice", "bob", "dev", "ubuntu", "jmartin", "priya", "kwame", "sofia", "tchen", "ops", "lena", "marco")
HOSTS = ("devbox", "ip-10-0-3-17", "build-runner-02", "mbp-sam", "ws-lena", "laptop", "ci-agent-7", "dev-vm", "tp-x1")
BRANCHES = (
    "main", "develop", "feature/invoice-export", "fix/login-timeout", "feat/rate-limit", "chore/deps",
    "release/2.4", "hotfix/null-check",
)  # fmt: skip
ORGS = ("acme", "globex", "initech", "umbrella", "hooli", "stark-ind", "wayne-ent")
NAMESPACES = ("prod", "staging", "payments", "platform", "data", "web", "default", "batch")
DOMAINS = ("example.com", "example.net", "example.org", "shop.example.com", "acme-demo.dev")
SERVICES = ("orders-api", "billing-worker", "auth-gateway", "report-builder", "event-relay", "search-api", "notifier")

STYLES = {
    "bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "blue": "34", "magenta": "35",
    "cyan": "36", "gray": "90", "bred": "1;31", "bgreen": "1;32", "byellow": "1;33", "bblue": "1;34",
    "bmagenta": "1;35", "bcyan": "1;36",
}  # fmt: skip


# ---------------------------------------------------------------- small random helpers


def hexid(rng: random.Random, n: int) -> str:
    """n lowercase hex digits (container ids, commit shas, digests)."""
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def b64(rng: random.Random, n: int) -> str:
    """n base64 characters (key fingerprints)."""
    return "".join(rng.choice(string.ascii_letters + string.digits + "+/") for _ in range(n))


def ver(rng: random.Random, major: tuple[int, int] = (1, 5), minor: int = 30, patch: int = 20) -> str:
    """A semantic version like ``3.12.4``."""
    return f"{rng.randint(*major)}.{rng.randint(0, minor)}.{rng.randint(0, patch)}"


def dur(seconds: float) -> str:
    """Starship-style duration: ``42s`` or ``3m12s``."""
    s = int(seconds)
    return f"{s // 60}m{s % 60}s" if s >= 60 else f"{s}s"


def uniq(items: Sequence[str]) -> list[str]:
    """Items in first-seen order without repeats (resources lists)."""
    seen: dict[str, None] = {}
    for it in items:
        seen.setdefault(it, None)
    return list(seen)


def plural(n: int, word: str) -> str:
    """``1 test`` / ``3 tests``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# ---------------------------------------------------------------- the report shape


def success(desc: str, specifics: str, context: str) -> dict[str, str]:
    """One key success: what worked, the exact numbers/names, and what surrounded it."""
    return {"desc": desc, "specifics": specifics, "adjacent_context": context}


def blocker(desc: str, impact: str, owner: str, fix: str) -> dict[str, str]:
    """One unresolved blocker: what is wrong, what it stops, who likely owns it, the next step."""
    return {"desc": desc, "impact": impact, "owner_hint": owner, "resolution_hint": fix}


def report(summary: str, successes: list[dict[str, str]], blockers: list[dict[str, str]], res: Sequence[str]) -> Report:
    """The structured report (matches ``schemas/terminal_report.schema.json``)."""
    return {"summary": summary, "key_successes": successes, "blockers": blockers, "resources": uniq(res)}


# ---------------------------------------------------------------- the fake terminal


class Term:
    """A fake terminal session: a prompt style, colours on or off, a clock, and the lines printed so far."""

    def __init__(self, rng: random.Random, project: str, *, shells: Sequence[str] = POSIX, cwd: str | None = None):
        self.rng = rng
        self.color = rng.random() < 0.85
        self.shell = rng.choice(list(shells))
        self.user = rng.choice(USERS)
        self.host = rng.choice(HOSTS)
        self.project = project
        self.cwd = cwd or f"~/{project}"
        self.branch = rng.choice(BRANCHES)
        self.now = EPOCH + timedelta(seconds=rng.randrange(0, 600 * 86400))
        self.last = 0.0
        self.lines: list[str] = []

    @property
    def home(self) -> str:
        """The user's home directory as the session's OS spells it."""
        return f"C:\\Users\\{self.user}" if self.shell == "pwsh" else f"/home/{self.user}"

    def abspath(self, path: str | None = None) -> str:
        """Absolute form of ``path`` (default: the working directory)."""
        path = path or self.cwd
        if not path.startswith("~"):
            return path
        rest = path[2:]
        return f"{self.home}\\{rest.replace('/', chr(92))}" if self.shell == "pwsh" else f"{self.home}/{rest}"

    def c(self, text: str, style: str) -> str:
        """``text`` wrapped in an ANSI SGR sequence when this session has colours on."""
        return f"\x1b[{STYLES[style]}m{text}\x1b[0m" if self.color else text

    def prompt(self) -> str:
        """The prompt string for the current shell style (zsh/starship adds a status line above)."""
        cwd, c, s = self.cwd, self.c, self.shell
        if s == "pwsh":
            return f"PS {self.abspath()}> "
        if s == "fedora":
            return f"[{self.user}@{self.host} {cwd.rstrip('/').rsplit('/', 1)[-1] or '/'}]$ "
        if s == "fish":
            return f"{self.user}@{self.host} {c(cwd, 'green')}> "
        if s == "zsh":
            head = c(cwd, "bcyan") + (" on " + c(f"\ue0a0 {self.branch}", "bmagenta") if cwd.startswith("~") else "")
            if self.last >= 2:
                head += " took " + c(dur(self.last), "byellow")
            return f"\n{head}\n{c('❯', 'bgreen')} "
        return f"{c(f'{self.user}@{self.host}', 'bgreen')}:{c(cwd, 'bblue')}$ "

    def cmd(self, line: str) -> None:
        """Print a prompt and the typed command line."""
        self.lines.append(self.prompt() + line)
        self.last = 0.0

    def out(self, *lines: str) -> None:
        """Print output lines."""
        self.lines.extend(lines)

    def tick(self, lo: float, hi: float) -> float:
        """Let time pass (a command running); returns the seconds, rounded to ms."""
        s = round(self.rng.uniform(lo, hi), 3)
        self.now += timedelta(seconds=s)
        self.last += s
        return s

    def stamp(self, kind: str = "iso") -> str:
        """The current time in one of the formats tools print."""
        n, ms = self.now, self.rng.randrange(1000)
        return {
            "iso": n.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms:03d}Z",
            "log": n.strftime("%Y-%m-%d %H:%M:%S,") + f"{ms:03d}",
            "syslog": n.strftime("%b %d %H:%M:%S"),
            "clock": n.strftime("%H:%M:%S"),
            "systemd": n.strftime("%a %Y-%m-%d %H:%M:%S UTC"),
            "helm": n.strftime("%a %b %d %H:%M:%S %Y"),
        }[kind]

    def frames(self, render: Callable[[float], str], n: int | None = None) -> str:
        """A progress line redrawn with ``\\r``: ``render(fraction)`` for rising fractions ending at 1.0."""
        k = n or self.rng.randint(2, 5)
        fracs = sorted(self.rng.uniform(0.02, 0.97) for _ in range(k))
        return "\r".join(render(f) for f in [*fracs, 1.0])

    def text(self) -> str:
        """The whole transcript, ending with a fresh prompt as a real scrollback would."""
        return "\n".join([*self.lines, self.prompt().rstrip(" ")]) + "\n"


def bar(frac: float, width: int = 30, full: str = "#", empty: str = ".") -> str:
    """``[#####.....]`` for a fraction."""
    k = int(frac * width)
    return f"[{full * k}{empty * (width - k)}]"


# ================================================================ families


def pytest_failures(rng: random.Random) -> tuple[str, Report]:
    """pytest run: all green, some failures, or a collection error (optionally fixed by installing a package)."""
    proj = rng.choice(PROJECTS)
    t = Term(rng, proj, shells=ANY)
    outcome = rng.choice(["pass", "fail", "fail", "collect"])
    py, pt = (
        f"3.{rng.randint(9, 12)}.{rng.randint(0, 9)}",
        f"{rng.randint(7, 8)}.{rng.randint(0, 4)}.{rng.randint(0, 3)}",
    )
    command = rng.choice(["pytest", "python -m pytest", "pytest tests/"])
    mods = rng.sample(["api", "models", "auth", "billing", "utils", "tasks", "cli", "db", "cache", "webhooks"], 4)
    files = [f"tests/test_{m}.py" for m in mods]
    verbs = ["create", "update", "delete", "parse", "validate", "render", "refund", "retry", "export", "sync"]
    nouns = ["invoice", "user", "order", "token", "payload", "config", "report", "session", "customer", "batch"]
    tests = {f: [f"test_{rng.choice(verbs)}_{rng.choice(nouns)}_{i}" for i in range(rng.randint(3, 11))] for f in files}
    res: list[str] = []
    succ: list[dict[str, str]] = []
    blk: list[dict[str, str]] = []

    platform = f"platform {'win32' if t.shell == 'pwsh' else 'linux'} -- Python {py}, pytest-{pt}, pluggy-1.4.0"
    config = f"configfile: {rng.choice(['pyproject.toml', 'pytest.ini', 'setup.cfg'])}"
    plugins = f"plugins: cov-{ver(rng, (4, 5), 2, 3)}, mock-3.{rng.randint(10, 14)}.0"

    def header(n: int) -> None:
        t.out(
            t.c("=" * 29 + " test session starts " + "=" * 30, "bold"),
            platform,
            f"rootdir: {t.abspath()}",
            config,
            plugins,
            t.c(f"collected {n} items", "bold") if n >= 0 else "collecting ... ",
            "",
        )

    def run_suite(failing: set[str]) -> tuple[int, int, int, float]:
        total = sum(len(v) for v in tests.values())
        header(total)
        done, passed, skipped, fails = 0, 0, 0, []
        for f in files:
            marks = ""
            for name in tests[f]:
                if f"{f}::{name}" in failing:
                    marks += t.c("F", "red")
                    fails.append((f, name))
                elif rng.random() < 0.06:
                    marks += t.c("s", "yellow")
                    skipped += 1
                else:
                    marks += t.c(".", "green")
                    passed += 1
            done += len(tests[f])
            t.out(f"{f} {marks}" + " " * max(1, 72 - len(f) - len(tests[f])) + f"[{100 * done // total:3d}%]")
        secs = t.tick(0.8, 40)
        summary_lines = []
        if fails:
            t.out("", t.c("=" * 33 + " FAILURES " + "=" * 33, "bold"))
            for f, name in fails:
                line, msg, exc, body = _pytest_failure(rng, name)
                t.out(t.c(f"{'_' * 20} {name} {'_' * 20}", "bred"), "", *body, "", f"{f}:{line}: {exc}")
                summary_lines.append(f"FAILED {f}::{name} - {msg}")
                blk.append(
                    blocker(
                        f"{f}::{name} fails: {msg}",
                        f"pytest exits non-zero: {len(failing)} of {total} tests fail",
                        "application developer",
                        f"inspect {f}:{line} and the code it exercises; rerun just this test with `pytest {f}::{name}`",
                    )
                )
            t.out(t.c("=" * 29 + " short test summary info " + "=" * 26, "bold"), *summary_lines)
        parts = ([f"{len(fails)} failed"] if fails else []) + [f"{passed} passed"]
        parts += [f"{skipped} skipped"] if skipped else []
        t.out(t.c(f"{'=' * 20} {', '.join(parts)} in {secs:.2f}s {'=' * 20}", "bred" if fails else "bgreen"))
        return total, passed, skipped, secs

    if outcome == "collect":
        imp, pipname = rng.choice(
            [
                ("freezegun", "freezegun"),
                ("responses", "responses"),
                ("factory", "factory-boy"),
                ("moto", "moto"),
                ("hypothesis", "hypothesis"),
                ("respx", "respx"),
            ]
        )
        bad = files[rng.randrange(len(files))]
        t.cmd(command)
        header(-1)
        t.tick(0.3, 2)
        err = f"ModuleNotFoundError: No module named '{imp}'"
        t.out(
            t.c("=" * 30 + " ERRORS " + "=" * 30, "bold"),
            t.c(f"{'_' * 15} ERROR collecting {bad} {'_' * 15}", "bred"),
            f"ImportError while importing test module '{t.abspath(f'~/{proj}/{bad}')}'.",
            "Hint: make sure your test modules/packages have valid Python names.",
            "Traceback:",
            f"{bad}:{rng.randint(2, 9)}: in <module>",
            f"    import {imp}",
            f"E   {err}",
            t.c("=" * 24 + " short test summary info " + "=" * 24, "bold"),
            f"ERROR {bad}",
            t.c("!" * 20 + " Interrupted: 1 error during collection " + "!" * 20, "bred"),
            t.c(f"{'=' * 30} 1 error in {t.tick(0.2, 3):.2f}s {'=' * 30}", "bred"),
        )
        res += [command, bad]
        if rng.random() < 0.5:
            pv = ver(rng, (1, 4), 20, 9)
            t.cmd(f"pip install {pipname}")
            t.out(
                f"Collecting {pipname}",
                f"  Downloading {pipname.replace('-', '_')}-{pv}-py3-none-any.whl ({rng.randint(20, 900)} kB)",
            )
            t.out(f"Installing collected packages: {pipname}", f"Successfully installed {pipname}-{pv}")
            t.cmd(command)
            total, passed, skipped, secs = run_suite(set())
            res += [f"pip install {pipname}", *files]
            succ.append(
                success(
                    f"Resolved the collection error by installing {pipname} {pv}",
                    f"pip install {pipname} -> Successfully installed {pipname}-{pv}",
                    f"collecting {bad} had failed with {err}",
                )
            )
            succ.append(
                success(
                    f"Test suite passes: {passed} passed",
                    f"{passed} passed, {skipped} skipped of {total} collected in {secs:.2f}s",
                    f"pytest {pt} on Python {py}, rootdir {t.abspath()}",
                )
            )
            summary = (
                f"pytest first failed to collect {bad} ({err}); after `pip install {pipname}` the suite "
                f"passed with {passed} passed and {skipped} skipped."
            )
        else:
            blk.append(
                blocker(
                    f"Test collection fails: {bad} cannot import {imp} ({err})",
                    "pytest was interrupted during collection, so no tests ran",
                    "application developer",
                    (
                        f"install the missing package (`pip install {pipname}`) or add it to the dev requirements, "
                        f"then rerun `{command}`"
                    ),
                )
            )
            summary = (
                f"`{command}` stopped during collection: {bad} imports {imp}, which is not installed "
                f"({err}); no tests ran."
            )
        return t.text(), report(summary, succ, blk, res)

    failing: set[str] = set()
    if outcome == "fail":
        pool = [f"{f}::{n}" for f in files for n in tests[f]]
        failing = set(rng.sample(pool, rng.randint(1, min(3, len(pool) - 1))))
    t.cmd(command)
    total, passed, skipped, secs = run_suite(failing)
    res += [command, *files]
    ctx = f"pytest {pt} on Python {py}, rootdir {t.abspath()}"
    if failing:
        succ.append(
            success(f"{passed} of {total} tests passed", f"{passed} passed, {skipped} skipped in {secs:.2f}s", ctx)
        )
        summary = (
            f"`{command}` ran {total} tests: {len(failing)} failed, {passed} passed, {skipped} skipped in {secs:.2f}s."
        )
    else:
        succ.append(
            success(
                f"All {passed} runnable tests passed",
                f"{passed} passed, {skipped} skipped of {total} in {secs:.2f}s",
                ctx,
            )
        )
        summary = (
            f"`{command}` passed: {passed} passed, {skipped} skipped of {total} tests in {secs:.2f}s; no failures."
        )
    return t.text(), report(summary, succ, blk, res)


def _pytest_failure(rng: random.Random, name: str) -> tuple[int, str, str, list[str]]:
    """One failing test's (line, short message, exception class, long-format body)."""
    line = rng.randint(12, 240)
    kind = rng.randrange(4)
    head = [f"    def {name}(client):", f"        resp = client.post('/api/v1/{name.split('_')[2]}s', json=payload)"]
    if kind == 0:
        got, want = rng.choice([(500, 200), (402, 200), (404, 201), (422, 200), (401, 200)])
        msg = f"assert {got} == {want}"
        body = [
            *head,
            f">       assert resp.status_code == {want}",
            f"E       {msg}",
            f"E        +  where {got} = <Response [{got}]>.status_code",
        ]
    elif kind == 1:
        got, want = rng.choice([("pending", "paid"), ("draft", "sent"), ("failed", "succeeded"), ("open", "closed")])
        msg = f"AssertionError: assert '{got}' == '{want}'"
        body = [
            *head,
            f'>       assert resp.json()["status"] == "{want}"',
            f"E       {msg}",
            f"E         - {want}",
            f"E         + {got}",
        ]
    elif kind == 2:
        key = rng.choice(["customer_id", "total", "currency", "created_at", "items"])
        msg = f"KeyError: '{key}'"
        body = [*head, f'>       assert resp.json()["{key}"]', f"E       {msg}"]
    else:
        want = round(rng.uniform(10, 500), 2)
        got = round(want * rng.choice([1.1, 0.9, 1.21, 0.8]), 2)
        msg = f"assert {got} == {want} ± {want * 1e-6:.1e}"
        body = [*head, f">       assert resp.json()['total'] == pytest.approx({want})", f"E       {msg}"]
    return line, msg, ("KeyError" if kind == 2 else "AssertionError"), body


def docker_build(rng: random.Random) -> tuple[str, Report]:
    """docker build (BuildKit output): success (optionally pushed), a failing RUN step, or a missing COPY source."""
    proj = rng.choice(PROJECTS)
    t = Term(rng, proj, shells=ANY)
    registry = rng.choice(
        ["ghcr.io", "registry.gitlab.com", f"{rng.randint(10**11, 10**12 - 1)}.dkr.ecr.eu-west-1.amazonaws.com"]
    )
    image = f"{registry}/{rng.choice(ORGS)}/{proj}:{ver(rng, (0, 3), 20, 15)}"
    outcome = rng.choice(["ok", "push", "run_fail", "copy_missing"])
    node = rng.random() < 0.5
    if node:
        base = f"node:{rng.choice(['18', '20', '22'])}-alpine"
        manifest = "package.json package-lock.json"
        install = "RUN npm ci --omit=dev"
        steps = ["WORKDIR /app", f"COPY {manifest} ./", install, "COPY . .", "RUN npm run build"]
    else:
        base = f"python:3.{rng.randint(10, 12)}-slim"
        manifest = "requirements.txt"
        install = "RUN pip install --no-cache-dir -r requirements.txt"
        steps = ["WORKDIR /app", f"COPY {manifest} .", install, "COPY . .", "RUN python -m compileall -q src"]
    cfg = f"config/{rng.choice(['settings', 'app', 'logging'])}.{rng.choice(['prod', 'production'])}.yaml"
    if outcome == "copy_missing" or rng.random() < 0.4:
        steps.insert(3, f"COPY {cfg} ./config/")
    fail_at = {"run_fail": steps.index(install), "copy_missing": 3}.get(outcome)
    n = len(steps) + 1
    command = f"docker build -t {image} ."
    t.cmd(command)
    lines: list[tuple[Any, ...]] = [
        (" => [internal] load build definition from Dockerfile", 0.0),
        (f" => => transferring dockerfile: {rng.randint(300, 1400)}B", 0.0),
        (f" => [internal] load metadata for docker.io/library/{base}", t.tick(0.4, 3)),
        (" => [internal] load .dockerignore", 0.0),
        (f" => [1/{n}] FROM docker.io/library/{base}@sha256:{hexid(rng, 64)}", t.tick(0.5, 12)),
        (" => [internal] load build context", 0.1),
        (f" => => transferring context: {rng.uniform(0.1, 40):.2f}MB", 0.1),
    ]
    dockerfile_lines, lineno = [(1, f"FROM {base}")], 1
    for i, step in enumerate(steps):
        if rng.random() < 0.3:  # a blank line between instructions
            lineno += 1
            dockerfile_lines.append((lineno, ""))
        lineno += 1
        dockerfile_lines.append((lineno, step))
        if i == fail_at:
            lines.append(
                (f" => ERROR [{i + 2}/{n}] {step}", t.tick(0.0, 0.1) if "COPY" in step else t.tick(3, 40), "red")
            )
            break
        took = t.tick(8, 120) if step.startswith("RUN") else t.tick(0.0, 0.4)
        lines.append((f" => [{i + 2}/{n}] {step}", took, "blue"))
    digest = hexid(rng, 64)
    if fail_at is None:
        lines += [
            (" => exporting to image", t.tick(0.5, 6)),
            (" => => exporting layers", 0.2),
            (f" => => writing image sha256:{digest}", 0.0),
            (f" => => naming to {image}", 0.0),
        ]
    total = sum(x[1] for x in lines)
    done = len(lines) if fail_at is None else len(lines) - 1
    status = " FINISHED" if fail_at is None else ""
    t.out(f"[+] Building {total:.1f}s ({done}/{len(lines)}){status}" + " " * 30 + "docker:default")
    t.out(*[t.c(f"{x[0]:<78}{x[1]:>5.1f}s", x[2]) if len(x) > 2 else f"{x[0]:<78}{x[1]:>5.1f}s" for x in lines])
    res = [command, image, f"docker.io/library/{base}", "Dockerfile"]
    succ, blk = [], []
    if fail_at is not None:
        step = steps[fail_at]
        ln = dockerfile_lines[-1][0]
        t.out("------", f" > [{fail_at + 2}/{n}] {step}:")
        if outcome == "run_fail" and node:
            pkg, bad = rng.choice(
                [("express", "5.9.1"), ("react", "19.8.0"), ("typescript", "6.9.2"), ("axios", "2.7.0")]
            )
            err = f"npm error notarget No matching version found for {pkg}@{bad}."
            t.out(f"{rng.uniform(2, 9):.3f} npm error code ETARGET", f"{rng.uniform(9, 12):.3f} {err}")
            cause, where = f"{pkg}@{bad} does not exist on the npm registry ({err})", "package.json"
        elif outcome == "run_fail":
            pkg, bad = rng.choice(
                [("numpy", "3.0.4"), ("django", "6.9.1"), ("requests", "2.99.0"), ("pydantic", "3.1.0")]
            )
            err = f"ERROR: No matching distribution found for {pkg}=={bad}"
            t.out(
                f"{rng.uniform(2, 9):.3f} ERROR: Could not find a version that satisfies the requirement {pkg}=={bad}",
                f"{rng.uniform(9, 12):.3f} {err}",
            )
            cause, where = f"{pkg}=={bad} is not available from PyPI ({err})", "requirements.txt"
        else:
            err = f'"/{cfg}": not found'
            cause, where = f"the build context has no {cfg} ({err})", ".dockerignore"
        t.out("------", "Dockerfile:" + str(ln), "-" * 20)
        t.out(*[f"{a:>4} | {'>>> ' if a == ln else '    '}{b}".rstrip() for a, b in dockerfile_lines[-3:]], "-" * 20)
        if outcome == "copy_missing":
            final = (
                "ERROR: failed to solve: failed to compute cache key: failed to calculate checksum of ref "
                f"{hexid(rng, 12)}::{hexid(rng, 25)}: {err}"
            )
            res += [cfg]
            fix = (
                f"add {cfg} to the build context (check it exists and is not excluded by {where}) or drop the "
                f"COPY on Dockerfile line {ln}"
            )
        else:
            final = (
                f'ERROR: failed to solve: process "/bin/sh -c {step[4:]}" did not complete successfully: exit code: 1'
            )
            res += [where, pkg]
            fix = f"pin {pkg} to a published version in {where} and rebuild"
        t.out(t.c(final, "red"))
        blk.append(
            blocker(
                f"docker build fails at step [{fail_at + 2}/{n}] `{step}` (Dockerfile line {ln}): {cause}",
                f"no image {image} was produced",
                "application developer",
                fix,
            )
        )
        summary = f"`{command}` failed at step {fail_at + 2}/{n} ({step}) after {total:.1f}s: {cause}."
        return t.text(), report(summary, succ, blk, res)
    succ.append(
        success(
            f"Built image {image}",
            f"{n} steps in {total:.1f}s; image sha256:{digest[:12]}",
            f"BuildKit build from base docker.io/library/{base}",
        )
    )
    summary = f"Built {image} from {base} in {total:.1f}s ({n} steps)"
    if outcome == "push":
        t.cmd(f"docker push {image}")
        repo, tag = image.rsplit(":", 1)
        t.out(f"The push refers to repository [{repo}]")
        pushed = 0
        for _ in range(rng.randint(3, 6)):
            layer, size = hexid(rng, 12), rng.uniform(0.5, 90)
            if rng.random() < 0.5:
                t.out(f"{layer}: Layer already exists")
                continue
            pushed += 1
            t.out(
                t.frames(
                    lambda f, layer=layer, size=size: (
                        f"{layer}: Pushing  {bar(f, 50, '=', ' ')}  {f * size:.1f}MB/{size:.1f}MB"
                    )
                )
                + f"\r{layer}: Pushed"
            )
            t.tick(1, 15)
        pdigest = hexid(rng, 64)
        t.out(f"{tag}: digest: sha256:{pdigest} size: {rng.randint(900, 3000)}")
        res.append(f"docker push {image}")
        succ.append(
            success(
                f"Pushed {image} to {registry}",
                f"digest sha256:{pdigest}; {pushed} layers pushed",
                "pushed right after the successful build",
            )
        )
        summary += f" and pushed it (digest sha256:{pdigest[:12]})"
    return t.text(), report(summary + ".", succ, blk, res)


def git_merge_conflict(rng: random.Random) -> tuple[str, Report]:
    """git fetch + merge of the base branch: clean merge and push, conflicts left open, or conflicts resolved."""
    proj = rng.choice(PROJECTS)
    t = Term(rng, proj, shells=ANY)
    feature = rng.choice([b for b in BRANCHES if b not in ("main", "develop")])
    t.branch, base = feature, rng.choice(["main", "develop"])
    host, org = rng.choice(["github.com", "gitlab.com", "bitbucket.org"]), rng.choice(ORGS)
    outcome = rng.choice(["clean", "conflict", "resolved"])
    pool = [
        "src/app.py",
        "src/api/routes.ts",
        "package.json",
        "README.md",
        "config/settings.yaml",
        "Makefile",
        "internal/billing/invoice.go",
        ".github/workflows/ci.yml",
        "docker-compose.yml",
        "src/components/Header.tsx",
    ]
    touched = rng.sample(pool, rng.randint(2, 5))
    conflicted = [] if outcome == "clean" else touched[: rng.randint(1, min(3, len(touched) - 1))]
    old, new = hexid(rng, 7), hexid(rng, 7)
    objs = rng.randint(8, 120)
    t.cmd("git fetch origin")
    t.out(f"remote: Enumerating objects: {objs}, done.")
    t.out(t.frames(lambda f: f"remote: Counting objects: {int(f * 100):3d}% ({int(f * objs)}/{objs})") + ", done.")
    t.out(f"remote: Total {objs - 3} (delta {objs // 3}), reused {objs // 2} (delta {objs // 5}), pack-reused 0")
    t.out(f"From {host}:{org}/{proj}", f"   {old}..{new}  {base:<10} -> origin/{base}")
    t.tick(0.5, 4)
    t.cmd(f"git merge origin/{base}")
    res = ["git fetch origin", f"{host}:{org}/{proj}", f"origin/{base}", f"git merge origin/{base}", *touched]
    succ, blk = [], []
    ins, dels = rng.randint(3, 400), rng.randint(0, 150)

    def push(sha: str) -> str:
        """Push the feature branch; returns the ``prev..sha`` range printed."""
        rng_range = f"{hexid(rng, 7)}..{sha}"
        t.cmd("git push")
        t.out(
            f"Enumerating objects: {objs // 2}, done.",
            f"To {host}:{org}/{proj}.git",
            f"   {rng_range}  {feature} -> {feature}",
        )
        res.append("git push")
        return rng_range

    if outcome == "clean":
        t.out("Merge made by the 'ort' strategy.")
        for f in touched:
            k = rng.randint(1, 60)
            t.out(f" {f:<30} | {k:>3} {t.c('+' * min(k, 20), 'green')}{t.c('-' * rng.randint(0, 5), 'red')}")
        t.out(f" {len(touched)} files changed, {ins} insertions(+), {dels} deletions(-)")
        pushed = push(hexid(rng, 7))
        succ.append(
            success(
                f"Merged origin/{base} into {feature} without conflicts",
                f"{len(touched)} files changed, {ins} insertions(+), {dels} deletions(-)",
                f"after fetching {old}..{new} on origin/{base}",
            )
        )
        succ.append(success(f"Pushed {feature}", f"{pushed} {feature} -> {feature}", f"remote {host}:{org}/{proj}"))
        summary = f"Merged origin/{base} ({old}..{new}) into {feature} cleanly ({len(touched)} files) and pushed it."
        return t.text(), report(summary, succ, blk, res)
    for f in touched:
        t.out(f"Auto-merging {f}")
        if f in conflicted:
            t.out(t.c(f"CONFLICT (content): Merge conflict in {f}", "red"))
    t.out("Automatic merge failed; fix conflicts and then commit the result.")
    t.cmd("git status --short")
    t.out(*[t.c(f"UU {f}", "red") if f in conflicted else t.c(f"M  {f}", "green") for f in touched])
    res.append("git status --short")
    files = ", ".join(conflicted)
    if outcome == "conflict":
        blk.append(
            blocker(
                (
                    f"Merge of origin/{base} into {feature} stopped with conflicts in "
                    f"{plural(len(conflicted), 'file')}: {files}"
                ),
                "the working tree is mid-merge; nothing can be committed or pushed until the conflicts are resolved",
                f"developer working on {feature}",
                f"edit the conflict markers in {files}, `git add` them and `git commit`, or `git merge --abort`",
            )
        )
        summary = (
            f"Fetched origin/{base} ({old}..{new}); `git merge origin/{base}` left {feature} with "
            f"unresolved conflicts in {files}."
        )
        return t.text(), report(summary, succ, blk, res)
    t.cmd(f"git add {' '.join(conflicted)}")
    sha = hexid(rng, 7)
    t.cmd("git commit --no-edit")
    t.out(f"[{feature} {sha}] Merge remote-tracking branch 'origin/{base}' into {feature}")
    res += [f"git add {' '.join(conflicted)}", "git commit --no-edit"]
    succ.append(
        success(
            f"Resolved merge conflicts in {files} and committed the merge",
            f"merge commit {sha} on {feature}",
            f"`git merge origin/{base}` had stopped with conflicts in {plural(len(conflicted), 'file')}",
        )
    )
    pushed = push(sha)
    succ.append(success(f"Pushed {feature}", f"{pushed} {feature} -> {feature}", f"remote {host}:{org}/{proj}"))
    summary = (
        f"Merging origin/{base} into {feature} conflicted in {files}; the conflicts were resolved, "
        f"committed as {sha} and pushed."
    )
    return t.text(), report(summary, succ, blk, res)


ADVISORIES = (
    ("lodash", "<4.17.21", "high", "Prototype Pollution in lodash", "GHSA-p6mc-m468-83gw"),
    ("minimist", "<1.2.6", "critical", "Prototype Pollution in minimist", "GHSA-xvch-5gv4-984h"),
    (
        "semver",
        "<5.7.2",
        "moderate",
        "semver vulnerable to Regular Expression Denial of Service",
        "GHSA-c2qf-rxjj-qqgw",
    ),
    ("json5", "<1.0.2", "high", "Prototype Pollution in JSON5 via Parse Method", "GHSA-9c47-m6qq-7p4h"),
    (
        "word-wrap",
        "<1.2.4",
        "moderate",
        "word-wrap vulnerable to Regular Expression Denial of Service",
        "GHSA-j8xg-fqg3-53r7",
    ),
    ("tough-cookie", "<4.1.3", "moderate", "tough-cookie Prototype Pollution vulnerability", "GHSA-72xf-g2v4-qvf3"),
    (
        "ws",
        "8.0.0 - 8.17.0",
        "high",
        "ws affected by a DoS when handling a request with many HTTP headers",
        "GHSA-3h5v-q93c-6h6q",
    ),
    ("postcss", "<8.4.31", "moderate", "PostCSS line return parsing error", "GHSA-7fh5-64p2-3v2j"),
    ("nth-check", "<2.0.1", "high", "Inefficient Regular Expression Complexity in nth-check", "GHSA-rp65-9cf3-cjxr"),
    ("braces", "<3.0.3", "high", "Uncontrolled resource consumption in braces", "GHSA-grv7-fg5c-xmjg"),
)
SEVERITIES = ("low", "moderate", "high", "critical")


def _sev_counts(advs: Sequence[tuple[str, ...]]) -> str:
    """npm's ``9 vulnerabilities (2 low, 4 moderate, ...)`` phrase."""
    parts = [f"{sum(a[2] == s for a in advs)} {s}" for s in SEVERITIES if any(a[2] == s for a in advs)]
    return f"{plural(len(advs), 'vulnerability').replace('vulnerabilitys', 'vulnerabilities')} ({', '.join(parts)})"


def npm_audit(rng: random.Random) -> tuple[str, Report]:
    """npm install + audit: clean, fully fixed by ``npm audit fix``, or leftovers that need a breaking upgrade."""
    proj = rng.choice(PROJECTS)
    t = Term(rng, proj, shells=ANY)
    outcome = rng.choice(["clean", "fixed", "remaining", "remaining"])
    n_pkgs = rng.randint(180, 1900)
    advs = [] if outcome == "clean" else rng.sample(ADVISORIES, rng.randint(2, 6))
    t.cmd("npm install")
    spin = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
    phase = rng.choice(["fsevents", "esbuild", "typescript"])
    spinner = t.frames(lambda f: f"{spin[int(f * 9)]} reify:{phase}: timing reifyNode")
    secs = int(t.tick(4, 90))
    t.out(
        f"{spinner}\radded {n_pkgs} packages, and audited {n_pkgs + 1} packages in {secs}s",
        "",
        f"{rng.randint(20, 250)} packages are looking for funding",
        "  run `npm fund` for details",
        "",
    )
    res = ["npm install"]
    succ = [
        success(
            f"Installed {n_pkgs} npm packages",
            f"added {n_pkgs} packages, audited {n_pkgs + 1} in {secs}s",
            f"npm install; npm then reported {'0 vulnerabilities' if not advs else _sev_counts(advs)}",
        )
    ]
    blk = []
    if not advs:
        t.out(f"found {t.c('0', 'bgreen')} vulnerabilities")
        summary = f"`npm install` added {n_pkgs} packages in {secs}s and found 0 vulnerabilities."
        return t.text(), report(summary, succ, blk, res)
    t.out(
        t.c(_sev_counts(advs), "bred"), "", "To address issues that do not require attention, run:", "  npm audit fix"
    )
    left = [] if outcome == "fixed" else rng.sample(advs, rng.randint(1, max(1, len(advs) - 1)))
    parent, pver = rng.choice(
        [
            ("react-scripts", "3.0.1"),
            ("webpack-dev-server", "5.0.4"),
            ("jest", "29.7.0"),
            ("@vue/cli-service", "5.0.8"),
            ("nodemon", "3.1.0"),
        ]
    )
    t.cmd("npm audit fix")
    changed = len(advs) - len(left) + rng.randint(0, 12)
    t.tick(3, 30)
    t.out(f"changed {changed} packages, and audited {n_pkgs + 1} packages in {rng.randint(2, 20)}s", "")
    res += ["npm audit fix"]
    fixed = len(advs) - len(left)
    if not left:
        t.out(f"found {t.c('0', 'bgreen')} vulnerabilities")
        succ.append(
            success(
                f"npm audit fix resolved all {len(advs)} vulnerabilities",
                f"changed {changed} packages; found 0 vulnerabilities",
                f"npm install had reported {_sev_counts(advs)}",
            )
        )
        summary = f"`npm install` reported {_sev_counts(advs)}; `npm audit fix` changed {changed} packages and left 0."
        return t.text(), report(summary, succ, blk, res)
    t.out("# npm audit report", "")
    for name, rng_, sev, title, ghsa in left:
        t.out(
            f"{t.c(name, 'bold')}  {rng_}",
            f"Severity: {t.c(sev, 'red' if sev in ('high', 'critical') else 'yellow')}",
            f"{title} - https://github.com/advisories/{ghsa}",
            "fix available via `npm audit fix --force`",
            f"Will install {parent}@{pver}, which is a breaking change",
            f"node_modules/{name}",
            "",
        )
    t.out(
        t.c(_sev_counts(left), "bred"),
        "",
        "To address all issues (including breaking changes), run:",
        "  npm audit fix --force",
    )
    if fixed:
        succ.append(
            success(
                f"npm audit fix resolved {fixed} of {len(advs)} vulnerabilities",
                f"changed {changed} packages",
                f"npm install had reported {_sev_counts(advs)}",
            )
        )
    res += [x for a in left for x in (a[0], f"https://github.com/advisories/{a[4]}")] + [f"{parent}@{pver}"]
    listing = "; ".join(f"{a[0]} {a[1]} ({a[2]}, {a[4]})" for a in left)
    blk.append(
        blocker(
            f"{_sev_counts(left)} remain after npm audit fix: {listing}",
            f"the remaining fixes need `npm audit fix --force`, which installs {parent}@{pver} (a breaking change)",
            "frontend developer owning the dependencies",
            (
                "try `npm audit fix --force` on a branch and run the tests, or add package.json overrides for "
                f"{', '.join(a[0] for a in left)}"
            ),
        )
    )
    summary = (
        f"`npm install` added {n_pkgs} packages and reported {_sev_counts(advs)}; `npm audit fix` fixed {fixed}, "
        f"leaving {_sev_counts(left)} that need a breaking upgrade of {parent}."
    )
    return t.text(), report(summary, succ, blk, res)


MIGRATIONS = (
    ("add invoices table", None),
    ("add email_verified to users", ("users", "email_verified", "BOOLEAN NOT NULL DEFAULT false")),
    ("add index on orders created_at", None),
    ("add currency to payments", ("payments", "currency", "VARCHAR(3) NOT NULL DEFAULT 'EUR'")),
    ("add retries to jobs", ("jobs", "retries", "INTEGER NOT NULL DEFAULT 0")),
    ("drop legacy sessions", None),
    ("add tenant_id to accounts", ("accounts", "tenant_id", "UUID")),
)


def db_migration(rng: random.Random) -> tuple[str, Report]:
    """alembic or flyway migrations: applied, failed on an existing column / checksum mismatch, or DB unreachable."""
    proj = rng.choice(PROJECTS)
    t = Term(rng, proj, shells=POSIX)
    tool = rng.choice(["alembic", "flyway"])
    host = rng.choice(["localhost", "db.internal", "postgres", f"{proj}-db.cluster-c9xk2.eu-west-1.rds.amazonaws.com"])
    dbname = proj.split("-")[0]
    outcome = rng.choice(["ok", "ok", "conflict", "conn"])
    pending = rng.sample(MIGRATIONS, rng.randint(1, 4))
    if outcome == "conflict" and tool == "alembic" and not any(m[1] for m in pending):
        pending[-1] = MIGRATIONS[1]
    res, succ, blk = [], [], []
    if tool == "alembic":
        revs = [hexid(rng, 12) for _ in range(len(pending) + 1)]
        ctx = [
            "INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.",
            "INFO  [alembic.runtime.migration] Will assume transactional DDL.",
        ]
        if outcome == "conn":
            t.cmd("alembic upgrade head")
            ip = f"10.0.{rng.randint(0, 9)}.{rng.randint(2, 250)}"
            err = f'connection to server at "{host}" ({ip}), port 5432 failed: Connection refused'
            t.out(
                "Traceback (most recent call last):",
                '  File "/usr/local/bin/alembic", line 8, in <module>',
                "    sys.exit(main())",
                "  ...",
                f"sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) {err}",
                "\tIs the server running on that host and accepting TCP/IP connections?",
                "",
                "(Background on this error at: https://sqlalche.me/e/20/e3q8)",
            )
            res += ["alembic upgrade head", host, "port 5432"]
            blk.append(
                blocker(
                    f"alembic cannot reach PostgreSQL at {host}:5432 ({err})",
                    "no migration could run, so the schema is unchanged",
                    "platform/DBA team",
                    (
                        f"check that PostgreSQL is running and reachable at {host}:5432 and that sqlalchemy.url in "
                        "alembic.ini is right"
                    ),
                )
            )
            summary = (
                f"`alembic upgrade head` could not connect to PostgreSQL at {host}:5432 (connection "
                "refused); no migrations ran."
            )
            return t.text(), report(summary, succ, blk, res)
        t.cmd("alembic current")
        t.out(*ctx, f"{revs[0]}")
        t.cmd("alembic upgrade head")
        t.out(*ctx)
        res += ["alembic current", "alembic upgrade head"]
        for i, (msg, col) in enumerate(pending):
            t.out(f"INFO  [alembic.runtime.migration] Running upgrade {revs[i]} -> {revs[i + 1]}, {msg}")
            t.tick(0.05, 3)
            if outcome == "conflict" and col and (i == len(pending) - 1 or rng.random() < 0.5):
                table, column, typ = col
                err = f'column "{column}" of relation "{table}" already exists'
                t.out(
                    "Traceback (most recent call last):",
                    "  ...",
                    f"psycopg2.errors.DuplicateColumn: {err}",
                    "",
                    "The above exception was the direct cause of the following exception:",
                    "",
                    "Traceback (most recent call last):",
                    "  ...",
                    f"sqlalchemy.exc.ProgrammingError: (psycopg2.errors.DuplicateColumn) {err}",
                    "",
                    f"[SQL: ALTER TABLE {table} ADD COLUMN {column} {typ}]",
                    "(Background on this error at: https://sqlalche.me/e/20/f405)",
                )
                blk.append(
                    blocker(
                        f"migration {revs[i + 1]} ({msg}) fails: {err}",
                        f"the upgrade ran in one transaction and rolled back; the database stays at {revs[0]}",
                        "backend developer owning the migrations",
                        (
                            f"make revision {revs[i + 1]} skip the existing {table}.{column} (or reconcile the schema "
                            "drift), then rerun `alembic upgrade head`"
                        ),
                    )
                )
                summary = (
                    f"`alembic upgrade head` from {revs[0]} failed in revision {revs[i + 1]} ({msg}): "
                    f"{err}; nothing was applied."
                )
                return t.text(), report(summary, succ, blk, res)
        succ.append(
            success(
                f"Applied {plural(len(pending), 'alembic migration')} to head",
                f"{revs[0]} -> {revs[-1]}: " + "; ".join(m[0] for m in pending),
                f"PostgreSQL via alembic, starting from revision {revs[0]}",
            )
        )
        summary = f"`alembic upgrade head` applied {plural(len(pending), 'migration')} ({revs[0]} -> {revs[-1]})."
        return t.text(), report(summary, succ, blk, res)
    url = f"jdbc:postgresql://{host}:5432/{dbname}"
    command = f"flyway -url={url} -user={dbname} -locations=filesystem:sql migrate"
    t.cmd(command)
    t.out(f"Flyway Community Edition {rng.choice(['9.22.3', '10.10.0', '10.17.1'])} by Redgate", "")
    res += [command, url]
    if outcome == "conn":
        err = (
            f"Connection to {host}:5432 refused. Check that the hostname and port are correct and that the "
            "postmaster is accepting TCP/IP connections."
        )
        t.out(t.c(f"ERROR: Unable to obtain connection from database ({url}) for user '{dbname}': {err}", "red"))
        blk.append(
            blocker(
                f"flyway cannot connect to {url} (connection to {host}:5432 refused)",
                "no migrations were validated or applied",
                "platform/DBA team",
                f"check that PostgreSQL is up and reachable at {host}:5432 from this host",
            )
        )
        return t.text(), report(
            f"`flyway migrate` could not connect to {url}: connection refused; nothing ran.", succ, blk, res
        )
    cur = rng.randint(3, 40)
    total = cur + len(pending)
    t.out(f"Database: {url} (PostgreSQL {rng.choice(['14.11', '15.6', '16.2'])})")
    if outcome == "conflict":
        v = rng.randint(1, cur)
        a, b = rng.randint(-(2**31), 2**31 - 1), rng.randint(-(2**31), 2**31 - 1)
        t.out(
            t.c("ERROR: Validate failed: Migrations have failed validation", "red"),
            f"Migration checksum mismatch for migration version {v}",
            f"-> Applied to database : {a}",
            f"-> Resolved locally    : {b}",
            "Either revert the changes to the migration, or run repair to update the schema history.",
        )
        blk.append(
            blocker(
                (
                    f"flyway validation failed: checksum mismatch for already-applied migration version {v} (database "
                    f"{a}, local {b})"
                ),
                "validation failed before migrate, so no pending migration was applied",
                "backend developer who edited the migration",
                (
                    f"revert the local edit to migration V{v}, or run `flyway repair` only if the change is "
                    "intentional and already reflected in the database"
                ),
            )
        )
        summary = (
            f"`flyway migrate` against {url} failed validation: migration version {v} was changed after it "
            "was applied; nothing was applied."
        )
        return t.text(), report(summary, succ, blk, res)
    t.out(
        f"Successfully validated {total} migrations (execution time 00:00.{rng.randint(10, 400):03d}s)",
        f'Current version of schema "public": {cur}',
    )
    for i, (msg, _) in enumerate(pending):
        t.out(f'Migrating schema "public" to version "{cur + i + 1} - {msg}"')
    ms = rng.randint(30, 4000)
    t.out(
        t.c(
            (
                f'Successfully applied {plural(len(pending), "migration")} to schema "public", now at version '
                f"v{total} (execution time 00:{ms // 1000:02d}.{ms % 1000:03d}s)"
            ),
            "green",
        )
    )
    succ.append(
        success(
            f"Applied {plural(len(pending), 'flyway migration')}",
            f"schema public {cur} -> v{total}: " + "; ".join(m[0] for m in pending),
            f"validated {total} migrations against {url} first",
        )
    )
    return t.text(), report(
        f"`flyway migrate` applied {plural(len(pending), 'migration')} to {url}; schema now at v{total}.",
        succ,
        blk,
        res,
    )


def _pod(rng: random.Random, app: str) -> str:
    """A Deployment pod name like ``orders-api-7d9f8b6c5-x2k4p``."""
    return f"{app}-{hexid(rng, 9)}-{''.join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(5))}"


def k8s_rbac_forbidden(rng: random.Random) -> tuple[str, Report]:
    """kubectl session: a deploy that works, or an RBAC ``Forbidden`` on one verb/resource (confirmed by auth can-i)."""
    app, ns = rng.choice(SERVICES), rng.choice(NAMESPACES)
    t = Term(rng, app, shells=ANY)
    ctx = rng.choice(["prod-eu-1", "staging-us-east-2", "gke_acme_europe-west1_main", "aks-platform-weu", "kind-dev"])
    subject = rng.choice(
        [
            f"system:serviceaccount:ci:{rng.choice(['deployer', 'github-actions', 'argo'])}",
            f"{t.user}@{rng.choice(ORGS)}.com",
            f"oidc:{t.user}",
        ]
    )
    outcome = rng.choice(["ok", "forbidden", "forbidden"])
    t.cmd("kubectl config current-context")
    t.out(ctx)
    pods = [_pod(rng, app) for _ in range(rng.randint(2, 4))]
    t.cmd(f"kubectl get pods -n {ns}")
    t.out(f"{'NAME':<34}READY   STATUS    RESTARTS   AGE")
    t.out(*[f"{p:<34}1/1     Running   {rng.randint(0, 2)}          {rng.randint(1, 20)}d" for p in pods])
    res = ["kubectl config current-context", ctx, f"kubectl get pods -n {ns}"]
    succ = [success(f"Listed pods in namespace {ns}", f"{len(pods)} {app} pods Running", f"kubectl context {ctx}")]
    manifest = rng.choice(["k8s/deployment.yaml", "deploy/app.yaml", "manifests/deployment.yaml"])
    if outcome == "ok":
        t.cmd(f"kubectl auth can-i create deployments -n {ns}")
        t.out("yes")
        t.cmd(f"kubectl apply -f {manifest} -n {ns}")
        t.out(f"deployment.apps/{app} configured", f"service/{app} unchanged")
        t.cmd(f"kubectl rollout status deployment/{app} -n {ns}")
        reps = rng.randint(2, 5)
        t.out(
            *[
                f'Waiting for deployment "{app}" rollout to finish: {i} of {reps} updated replicas are available...'
                for i in range(1, reps)
            ]
        )
        t.tick(10, 120)
        t.out(f'deployment "{app}" successfully rolled out')
        res += [
            f"kubectl auth can-i create deployments -n {ns}",
            f"kubectl apply -f {manifest} -n {ns}",
            manifest,
            f"kubectl rollout status deployment/{app} -n {ns}",
        ]
        succ.append(
            success(
                f"Applied {manifest} and rolled out deployment/{app}",
                f"deployment.apps/{app} configured; {reps} replicas rolled out",
                f"namespace {ns}, context {ctx}",
            )
        )
        summary = (
            f"In context {ctx}, applied {manifest} to namespace {ns}; deployment/{app} rolled out ({reps} replicas)."
        )
        return t.text(), report(summary, succ, [], res)
    verb, resource, group, command, err = rng.choice(
        [
            ("list", "secrets", "", f"kubectl get secrets -n {ns}", "secrets is forbidden"),
            (
                "create",
                "deployments",
                "apps",
                f"kubectl apply -f {manifest} -n {ns}",
                f'error when creating "{manifest}": deployments.apps is forbidden',
            ),
            ("delete", "pods", "", f"kubectl delete pod {pods[0]} -n {ns}", f'pods "{pods[0]}" is forbidden'),
            ("list", "nodes", "", "kubectl get nodes", "nodes is forbidden"),
        ]
    )
    scope = "at the cluster scope" if resource == "nodes" else f'in the namespace "{ns}"'
    msg = f'{err}: User "{subject}" cannot {verb} resource "{resource}" in API group "{group}" {scope}'
    t.cmd(command)
    t.out(t.c(f"Error from server (Forbidden): {msg}", "red"))
    can = f"kubectl auth can-i {verb} {resource}" + ("" if resource == "nodes" else f" -n {ns}")
    t.cmd(can)
    t.out("no")
    res += [command, can] + ([manifest] if resource == "deployments" else [])
    role = "ClusterRole + ClusterRoleBinding" if resource == "nodes" else f"Role + RoleBinding in {ns}"
    blk = [
        blocker(
            f'RBAC denies {subject} "{verb}" on {resource} ({scope.replace("the namespace ", "namespace ")})',
            f"`{command}` is refused with Forbidden; `{can}` answers no",
            "cluster admin / platform team (RBAC owners)",
            (
                f'ask for a {role} granting "{verb}" on {resource}{f" (API group {group})" if group else ""} to '
                f"{subject}, or use a context that has it"
            ),
        )
    ]
    summary = (
        f"In context {ctx}, listing pods in {ns} worked but `{command}` was Forbidden: {subject} cannot "
        f"{verb} {resource}."
    )
    return t.text(), report(summary, succ, blk, res)


def port_conflict(rng: random.Random) -> tuple[str, Report]:
    """A dev server that cannot bind (EADDRINUSE / Errno 98 / port allocated): freed, moved, or stuck."""
    proj = rng.choice(PROJECTS)
    t = Term(rng, proj, shells=POSIX)
    kind = rng.choice(["node", "uvicorn", "docker"])
    port = rng.choice([3000, 3001, 4200, 5000, 5173, 8000, 8080, 8081, 8888, 9000])
    alt = port + rng.choice([1, 2, 10])
    outcome = rng.choice(["killed", "alt_port", "stuck"])
    pid = rng.randint(1200, 99999)

    def start(p: int) -> tuple[str, list[str], list[str]]:
        """(command, failure lines, success lines) for starting the server on port p."""
        if kind == "node":
            c = f"PORT={p} npm run dev" if p != port else "npm run dev"
            fail = [
                f"> {proj}@{ver(rng, (0, 2))} dev",
                "> node server.js",
                "",
                "node:events:497",
                "      throw er; // Unhandled 'error' event",
                "      ^",
                "",
                f"Error: listen EADDRINUSE: address already in use :::{p}",
                "    at Server.setupListenHandle [as _listen2] (node:net:1872:16)",
                "    at listenInCluster (node:net:1920:12)",
                f"    at Object.<anonymous> ({t.abspath()}/server.js:{rng.randint(20, 90)}:8)",
                "  code: 'EADDRINUSE',",
                "  errno: -98,",
                "  syscall: 'listen',",
                f"  port: {p}",
                "}",
                "",
                "Node.js v20.11.1",
            ]
            ok = [f"> {proj} dev", "> node server.js", "", f"Server listening on http://localhost:{p}"]
        elif kind == "uvicorn":
            c = f"uvicorn app.main:app --reload --port {p}"
            fail = [
                f"INFO:     Will watch for changes in these directories: ['{t.abspath()}']",
                t.c("ERROR", "red") + ":    [Errno 98] Address already in use",
            ]
            ok = [
                f"INFO:     Will watch for changes in these directories: ['{t.abspath()}']",
                f"INFO:     Uvicorn running on http://127.0.0.1:{p} (Press CTRL+C to quit)",
                f"INFO:     Started reloader process [{rng.randint(1000, 99999)}] using WatchFiles",
            ]
        else:
            c = f"docker run -d -p {p}:80 --name {proj}-web nginx:1.25"
            fail = [
                f"{hexid(rng, 64)}",
                (
                    "docker: Error response from daemon: driver failed programming external connectivity on endpoint "
                    f"{proj}-web ({hexid(rng, 64)}): Bind for 0.0.0.0:{p} failed: port is already allocated."
                ),
            ]
            ok = [hexid(rng, 64)]
        return c, fail, ok

    cmd0, fail, _ = start(port)
    t.cmd(cmd0)
    t.out(*fail)
    holder = (
        rng.choice(["node", "python3", "java", "ruby"])
        if outcome != "stuck"
        else rng.choice(["nginx", "docker-pr", "httpd"])
    )
    owner = "root" if outcome == "stuck" else t.user
    lsof = f"lsof -iTCP:{port} -sTCP:LISTEN"
    t.cmd(lsof)
    t.out(
        "COMMAND     PID  USER   FD   TYPE  DEVICE SIZE/OFF NODE NAME",
        f"{holder:<9}{pid:>6} {owner:<6} 23u  IPv4 {rng.randint(10**5, 10**6)}      0t0  TCP *:{port} (LISTEN)",
    )
    res = [cmd0, f"port {port}", lsof]
    succ, blk = [], []
    what = {
        "node": "EADDRINUSE",
        "uvicorn": "[Errno 98] Address already in use",
        "docker": "port is already allocated",
    }[kind]
    if outcome == "stuck":
        t.cmd(f"kill {pid}")
        t.out(f"bash: kill: ({pid}) - Operation not permitted")
        res.append(f"kill {pid}")
        blk.append(
            blocker(
                f"port {port} is held by {holder} (PID {pid}, owned by root), so `{cmd0}` fails with {what}",
                f"the {kind} server cannot start on port {port}",
                "whoever administers this host (root-owned process)",
                f"stop the root {holder} service listening on {port} (needs sudo) or start the server on another port",
            )
        )
        summary = (
            f"`{cmd0}` failed because port {port} is in use ({what}); the holder is root-owned {holder} PID "
            f"{pid} and `kill {pid}` was not permitted."
        )
        return t.text(), report(summary, succ, blk, res)
    if outcome == "killed":
        t.cmd(f"kill {pid}")
        res.append(f"kill {pid}")
        if kind == "docker":
            t.cmd(f"docker rm {proj}-web")
            t.out(f"{proj}-web")
            res.append(f"docker rm {proj}-web")
        cmd1, _, ok = start(port)
        used = port
        ctx = f"port {port} had been held by a stale {holder} process (PID {pid}), which was killed"
    else:
        cmd1, _, ok = start(alt)
        if kind == "docker":
            t.cmd(f"docker rm {proj}-web")
            t.out(f"{proj}-web")
            res.append(f"docker rm {proj}-web")
        used = alt
        ctx = f"port {port} stays held by {holder} (PID {pid}); moved to {alt} instead"
    t.tick(1, 8)
    t.cmd(cmd1)
    t.out(*ok)
    res += [cmd1, f"port {used}"] if cmd1 != cmd0 else [f"port {used}"]
    succ.append(
        success(
            f"Started the {kind} server on port {used}",
            ok[-1] if kind != "docker" else f"container {proj}-web started, publishing {used}:80",
            ctx,
        )
    )
    summary = f"`{cmd0}` first failed with {what} on port {port} (held by {holder} PID {pid}); " + (
        f"after `kill {pid}` the server started on {port}."
        if outcome == "killed"
        else f"the server was started on port {alt} instead."
    )
    return t.text(), report(summary, succ, blk, res)


TF_RESOURCES = (
    ("aws_s3_bucket", "logs"), ("aws_instance", "web"), ("aws_security_group", "web"), ("aws_iam_role", "lambda_exec"),
    ("aws_lambda_function", "ingest"), ("aws_db_instance", "main"), ("aws_route53_record", "api"),
    ("aws_cloudwatch_log_group", "app"), ("aws_sqs_queue", "jobs"), ("aws_ecs_service", "api"),
)  # fmt: skip


def terraform_plan(rng: random.Random) -> tuple[str, Report]:
    """terraform init + plan: a plan with adds/changes/destroys, an unsupported argument, or a held state lock."""
    proj = rng.choice(PROJECTS)
    t = Term(rng, proj, shells=ANY, cwd=f"~/{proj}/infra/{rng.choice(['prod', 'staging', 'dev'])}")
    aws = f"5.{rng.randint(10, 80)}.{rng.randint(0, 3)}"
    tfv = f"1.{rng.randint(5, 11)}.{rng.randint(0, 6)}"
    outcome = rng.choice(["plan", "plan", "invalid", "lock"])
    t.cmd("terraform init")
    t.out(
        t.c("Initializing the backend...", "bold"),
        "",
        t.c("Initializing provider plugins...", "bold"),
        '- Finding hashicorp/aws versions matching "~> 5.0"...',
        f"- Installing hashicorp/aws v{aws}...",
        f"- Installed hashicorp/aws v{aws} (signed by HashiCorp)",
        "",
        t.c("Terraform has been successfully initialized!", "bgreen"),
    )
    t.tick(3, 40)
    res = ["terraform init", f"hashicorp/aws v{aws}"]
    succ = [
        success(
            "terraform init succeeded",
            f"installed hashicorp/aws v{aws}",
            f"backend and provider plugins initialized for {t.project}",
        )
    ]
    blk = []
    if outcome == "invalid":
        t.cmd("terraform plan")
        line = rng.randint(5, 120)
        rtype, name = rng.choice([("aws_s3_bucket", "logs"), ("aws_instance", "web"), ("aws_db_instance", "main")])
        arg = {"aws_s3_bucket": "acl", "aws_instance": "cpu_core_count", "aws_db_instance": "name"}[rtype]
        file = rng.choice(["main.tf", f"{rtype.split('_')[1]}.tf"])
        t.out(
            "",
            t.c("│ Error: ", "bred") + t.c("Unsupported argument", "bold"),
            "│",
            f'│   on {file} line {line}, in resource "{rtype}" "{name}":',
            f'│  {line}:   {arg} = "{rng.choice(["private", "2", "app"])}"',
            "│",
            f'│ An argument named "{arg}" is not expected here.',
            "╵",
        )
        res += ["terraform plan", file]
        blk.append(
            blocker(
                f'terraform plan fails: unsupported argument "{arg}" in {rtype}.{name} ({file} line {line})',
                "no plan could be produced, so nothing can be reviewed or applied",
                "infrastructure engineer owning this configuration",
                (
                    f'remove or rename "{arg}" at {file}:{line} per the hashicorp/aws v{aws} docs for {rtype}, then '
                    "rerun terraform plan"
                ),
            )
        )
        summary = (
            f"terraform init installed hashicorp/aws v{aws}, but `terraform plan` failed: {file} line "
            f'{line} sets unsupported argument "{arg}" on {rtype}.{name}.'
        )
        return t.text(), report(summary, succ, blk, res)
    if outcome == "lock":
        lock_id = f"{hexid(rng, 8)}-{hexid(rng, 4)}-{hexid(rng, 4)}-{hexid(rng, 4)}-{hexid(rng, 12)}"
        who = f"{rng.choice(USERS)}@{rng.choice(HOSTS)}"
        bucket = f"{rng.choice(ORGS)}-tfstate"
        t.cmd("terraform plan")
        t.out(
            "",
            t.c("│ Error: ", "bred") + t.c("Error acquiring the state lock", "bold"),
            "│",
            "│ Error message: ConditionalCheckFailedException: The conditional request failed",
            "│ Lock Info:",
            f"│   ID:        {lock_id}",
            f"│   Path:      {bucket}/{proj}/terraform.tfstate",
            "│   Operation: OperationTypeApply",
            f"│   Who:       {who}",
            f"│   Version:   {tfv}",
            f"│   Created:   {t.stamp('iso')}",
            "│",
            "│ Terraform acquires a state lock to protect the state from being written",
            "│ by multiple users at the same time.",
            "╵",
        )
        res += ["terraform plan", f"{bucket}/{proj}/terraform.tfstate"]
        blk.append(
            blocker(
                f"state is locked by {who} (lock {lock_id}, an apply)",
                "terraform plan cannot read the state until the lock is released",
                f"{who.split('@', maxsplit=1)[0]} (holder of the lock)",
                (
                    f"wait for or ask {who} about the running apply; only if it is dead run `terraform force-unlock "
                    f"{lock_id}`"
                ),
            )
        )
        summary = (
            f"terraform init succeeded, but `terraform plan` could not acquire the state lock held by {who} "
            f"(ID {lock_id})."
        )
        return t.text(), report(summary, succ, blk, res)
    picked = rng.sample(TF_RESOURCES, rng.randint(2, 6))
    acts = {a: rng.choice(["create", "create", "update", "destroy"]) for a in [f"{r}.{n}" for r, n in picked]}
    t.cmd("terraform plan -out=tfplan")
    for a, act in acts.items():
        if act != "create":
            t.out(f"{a}: Refreshing state... [id={hexid(rng, 8)}]")
    t.out("", "Terraform will perform the following actions:", "")
    sym = {
        "create": ("+", "green", "will be created"),
        "update": ("~", "yellow", "will be updated in-place"),
        "destroy": ("-", "red", "will be destroyed"),
    }
    for a, act in acts.items():
        s, col, words = sym[act]
        t.out(
            t.c(f"  # {a}", "bold") + f" {words}",
            f'  {t.c(s, col)} resource "{a.split(".")[0]}" "{a.split(".")[1]}" {{',
            "      ...",
            "    }",
            "",
        )
    add, chg, dst = (sum(v == k for v in acts.values()) for k in ("create", "update", "destroy"))
    t.out(t.c("Plan:", "bold") + f" {add} to add, {chg} to change, {dst} to destroy.", "", "Saved the plan to: tfplan")
    res += ["terraform plan -out=tfplan", "tfplan"]
    detail = "; ".join(
        f"{k}: {', '.join(a for a, v in acts.items() if v == k)}"
        for k in ("create", "update", "destroy")
        if k in acts.values()
    )
    destroyed = [a for a, v in acts.items() if v == "destroy"]
    note = f"; includes destroying {', '.join(destroyed)}: review before apply" if destroyed else ""
    succ.append(
        success(
            f"terraform plan produced a saved plan: {add} to add, {chg} to change, {dst} to destroy",
            detail,
            f"plan saved to tfplan in {t.cwd}{note}",
        )
    )
    summary = (
        f"terraform init (hashicorp/aws v{aws}) and `terraform plan -out=tfplan` succeeded: {add} to add, "
        f"{chg} to change, {dst} to destroy{note}."
    )
    return t.text(), report(summary, succ, blk, res)


def redis_refused(rng: random.Random) -> tuple[str, Report]:
    """A worker cannot reach Redis (connection refused): restarted locally, or a remote Redis left down."""
    proj = rng.choice(PROJECTS)
    t = Term(rng, proj, shells=POSIX)
    remote = rng.random() < 0.4
    host = (
        rng.choice(["redis.internal", "cache-01.prod.lan", "10.0.4.21"])
        if remote
        else rng.choice(["localhost", "127.0.0.1"])
    )
    port = rng.choice([6379, 6379, 6380])
    py = rng.random() < 0.5
    command = f"celery -A {proj.replace('-', '_')} worker -l info" if py else "node worker.js"
    t.cmd(command)
    if py:
        t.out(
            (
                f"[{t.stamp('log')}: ERROR/MainProcess] consumer: Cannot connect to redis://{host}:{port}/0: Error "
                f"111 connecting to {host}:{port}. Connection refused.."
            ),
            f"Trying again in {rng.choice([2, 4, 6])}.00 seconds... (1/100)",
        )
        err = f"Error 111 connecting to {host}:{port}. Connection refused."
    else:
        t.out(
            f"[ioredis] Unhandled error event: Error: connect ECONNREFUSED {host}:{port}",
            "    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1595:16)",
        )
        err = f"connect ECONNREFUSED {host}:{port}"
    t.tick(2, 10)
    t.out("^C")
    ping = f"redis-cli -h {host} -p {port} ping"
    t.cmd(ping)
    t.out(f"Could not connect to Redis at {host}:{port}: Connection refused")
    res = [command, f"{host}:{port}", ping]
    succ, blk = [], []
    if remote:
        nc = f"nc -zv {host} {port}"
        t.cmd(nc)
        t.out(f"nc: connect to {host} port {port} (tcp) failed: Connection refused")
        res.append(nc)
        blk.append(
            blocker(
                f"Redis at {host}:{port} refuses connections ({err})",
                f"the worker (`{command}`) cannot start consuming",
                "ops/platform team running the shared Redis",
                f"check the Redis service on {host} is running and listening on {port}",
            )
        )
        summary = (
            f"`{command}` could not reach Redis at {host}:{port} (connection refused); redis-cli and nc "
            "confirm the port is closed."
        )
        return t.text(), report(summary, succ, blk, res)
    name, image = (
        rng.choice(["redis", "dev-redis", f"{proj}-redis-1"]),
        f"redis:{rng.choice(['7.2-alpine', '7.0', '6.2'])}",
    )
    t.cmd("docker ps -a --filter name=redis")
    t.out(
        "CONTAINER ID   IMAGE              STATUS                      PORTS   NAMES",
        f"{hexid(rng, 12)}   {image:<18} Exited (255) {rng.randint(2, 9)} hours ago           {name}",
    )
    t.cmd(f"docker start {name}")
    t.out(name)
    t.cmd(ping)
    t.out("PONG")
    t.cmd(command)
    if py:
        t.out(
            f"[{t.stamp('log')}: INFO/MainProcess] Connected to redis://{host}:{port}/0",
            f"[{t.stamp('log')}: INFO/MainProcess] celery@{t.host} ready.",
        )
    else:
        t.out(f"worker connected to redis {host}:{port}, waiting for jobs")
    res += ["docker ps -a --filter name=redis", image, f"docker start {name}"]
    succ.append(
        success(
            f"Restarted the Redis container {name}",
            f"docker start {name}; redis-cli ping -> PONG on {host}:{port}",
            f"the container ({image}) had exited; the worker was failing with {err}",
        )
    )
    succ.append(
        success(
            "Worker connected to Redis",
            f"{command} connected to {host}:{port}",
            "after the Redis container was restarted",
        )
    )
    summary = (
        f"`{command}` failed with connection refused to Redis at {host}:{port}; the exited container {name} "
        "was started, ping returned PONG and the worker connected."
    )
    return t.text(), report(summary, succ, blk, res)


def nginx_config_test(rng: random.Random) -> tuple[str, Report]:
    """``nginx -t`` before a reload: passes, fails and gets fixed, or fails with the error left in place."""
    site = rng.choice(SERVICES)
    t = Term(rng, site, shells=SERVER, cwd="/etc/nginx")
    domain = f"{site.split('-')[0]}.{rng.choice(DOMAINS)}"
    conf = f"/etc/nginx/sites-enabled/{site}.conf"
    line = rng.randint(8, 80)
    outcome = rng.choice(["ok", "fixed", "broken", "broken"])
    kind = rng.randrange(3)
    upstream = f"{site}:{rng.choice([8000, 8080, 3000])}"
    cert = f"/etc/letsencrypt/live/{domain}/fullchain.pem"
    if kind == 0:
        bad = rng.choice(["proxy_passs", "proxy_set_heder", "client_max_body"])
        good = {
            "proxy_passs": "proxy_pass",
            "proxy_set_heder": "proxy_set_header",
            "client_max_body": "client_max_body_size",
        }[bad]
        err = f'unknown directive "{bad}" in {conf}:{line}'
        fix_cmd = f"sudo sed -i 's/{bad} /{good} /' {conf}"
        fix_desc = f'corrected the misspelt directive "{bad}" to "{good}"'
    elif kind == 1:
        err = f'host not found in upstream "{upstream}" in {conf}:{line}'
        fix_cmd = f"sudo sed -i 's/{upstream}/127.0.0.1:{upstream.split(':')[1]}/' {conf}"
        fix_desc = f"pointed the upstream {upstream} at 127.0.0.1:{upstream.split(':')[1]}"
    else:
        err = (
            f'cannot load certificate "{cert}": BIO_new_file() failed (SSL: error:80000002:system library::No '
            "such file or directory)"
        )
        fix_cmd = f"sudo certbot certonly --nginx -d {domain}"
        fix_desc = f"issued the missing certificate for {domain}"
    test = "sudo nginx -t"
    t.cmd(test)
    res = [test, "/etc/nginx/nginx.conf"]
    succ, blk = [], []
    ok_lines = [
        "nginx: the configuration file /etc/nginx/nginx.conf syntax is ok",
        "nginx: configuration file /etc/nginx/nginx.conf test is successful",
    ]
    if outcome != "ok":
        t.out(t.c(f"nginx: [emerg] {err}", "red"), "nginx: configuration file /etc/nginx/nginx.conf test failed")
        res.append(conf if kind != 2 else cert)
    if outcome == "broken":
        look = f"sudo sed -n '{line}p' {conf}" if kind != 2 else "sudo ls /etc/letsencrypt/live/"
        t.cmd(look)
        if kind == 2:
            t.out("README", *sorted(f"{n}.{rng.choice(DOMAINS)}" for n in rng.sample(["www", "mail", "old"], 2)))
            fix = (
                f"issue the certificate (`{fix_cmd}`) or point ssl_certificate at an existing one, rerun "
                f"`{test}`, then reload"
            )
        else:
            t.out(f"        {'proxy_pass http://' + upstream if kind != 0 else bad + ' http://' + upstream};")
            fix = f"fix {conf} line {line} (e.g. `{fix_cmd}`), rerun `{test}`, then reload"
        res.append(look)
        blk.append(
            blocker(
                f"nginx config test fails: {err}",
                "nginx cannot be reloaded with the new config; the running config stays in place",
                "ops engineer owning the nginx config",
                fix,
            )
        )
        summary = f"`{test}` failed: [emerg] {err}; nginx was not reloaded."
        return t.text(), report(summary, succ, blk, res)
    if outcome == "fixed":
        t.cmd(fix_cmd)
        if kind == 2:
            t.out(
                "Saving debug log to /var/log/letsencrypt/letsencrypt.log",
                f"Requesting a certificate for {domain}",
                "",
                "Successfully received certificate.",
                f"Certificate is saved at: /etc/letsencrypt/live/{domain}/fullchain.pem",
            )
        t.cmd(test)
        res.append(fix_cmd)
        succ.append(success(f"Fixed the nginx config error in {conf}", fix_desc, f"nginx -t had failed with: {err}"))
    t.out(*ok_lines)
    t.cmd("sudo systemctl reload nginx")
    curl = f"curl -sI https://{domain}"
    t.cmd(curl)
    code = rng.choice([200, 200, 301, 302])
    t.out(f"HTTP/2 {code}", "server: nginx", f"date: {t.now.strftime('%a, %d %b %Y %H:%M:%S GMT')}")
    res += ["sudo systemctl reload nginx", curl, f"https://{domain}"]
    succ.append(
        success(
            "nginx config test passed and nginx was reloaded",
            "syntax is ok; test is successful; systemctl reload nginx",
            f"{curl} answered HTTP/2 {code}",
        )
    )
    summary = (
        "`sudo nginx -t` passed"
        if outcome == "ok"
        else f"`sudo nginx -t` first failed ({err}); after the fix it passed"
    ) + (f"; nginx was reloaded and https://{domain} answers HTTP/2 {code}.")
    return t.text(), report(summary, succ, blk, res)


def maven_test_failures(rng: random.Random) -> tuple[str, Report]:
    """``mvn test`` with surefire: BUILD SUCCESS, or assertion failures with the BUILD FAILURE summary."""
    proj = rng.choice(PROJECTS)
    t = Term(rng, proj, shells=ANY)
    org = rng.choice(ORGS).replace("-", "")
    pkg = f"com.{org}.{proj.split('-')[0]}"
    version = f"{ver(rng, (1, 4), 12, 5)}-SNAPSHOT"
    surefire = rng.choice(["3.2.5", "3.1.2", "3.0.0"])
    batch = rng.random() < 0.5
    command = "mvn -B test" if batch else "./mvnw test"
    info = (lambda s: f"[INFO] {s}") if batch else (lambda s: f"[{t.c('INFO', 'bblue')}] {s}")
    error = (lambda s: f"[ERROR] {s}") if batch else (lambda s: f"[{t.c('ERROR', 'bred')}] {s}")
    classes = rng.sample(
        [
            "OrderServiceTest",
            "PricingTest",
            "InvoiceMapperTest",
            "AuthFilterTest",
            "RepositoryIT",
            "CartTest",
            "TaxCalculatorTest",
        ],
        4,
    )
    outcome = rng.choice(["ok", "fail", "fail"])
    failing = set(rng.sample(classes, rng.randint(1, 2))) if outcome == "fail" else set()
    t.cmd(command)
    t.out(
        info("Scanning for projects..."),
        info(""),
        info(f"{'-' * 21}< {pkg}:{proj} >{'-' * 21}"),
        info(f"Building {proj} {version}"),
    )
    for art in rng.sample(
        ["junit-jupiter-api/5.10.2", "mockito-core/5.11.0", "assertj-core/3.25.3", "jackson-databind/2.17.0"], 2
    ):
        name, v = art.split("/")
        size = rng.randint(80, 1800)
        t.out(
            t.frames(lambda f, size=size, jar=f"{name}-{v}.jar": f"Progress (1): {jar} ({int(f * size)}/{size} kB)")
            + (
                f"\rDownloaded from central: https://repo.maven.apache.org/maven2/{name}/{v}/{name}-{v}.jar ({size} "
                f"kB at {rng.uniform(0.5, 9):.1f} MB/s)"
            )
        )
    t.out(
        info(f"--- maven-surefire-plugin:{surefire}:test (default-test) @ {proj} ---"),
        info(""),
        info("-" * 55),
        info(" T E S T S"),
        info("-" * 55),
    )
    total = fails = 0
    fail_lines, blk = [], []
    for cls in classes:
        n = rng.randint(3, 25)
        total += n
        secs = rng.uniform(0.05, 4)
        t.out(info(f"Running {pkg}.{cls}"))
        if cls in failing:
            k = rng.randint(1, min(3, n))
            fails += k
            t.out(
                error(
                    f"Tests run: {n}, Failures: {k}, Errors: 0, Skipped: 0, Time elapsed: {secs:.3f} s <<< "
                    f"FAILURE! -- in {pkg}.{cls}"
                )
            )
            methods = [
                "appliesDiscount",
                "rejectsExpiredToken",
                "mapsLineItems",
                "roundsHalfUp",
                "savesOrder",
                "computesVat",
            ]
            for meth in rng.sample(methods, k):
                want, got = rng.choice(
                    [("90.00", "100.00"), ("401", "200"), ("3", "2"), ("true", "false"), ("EUR", "USD")]
                )
                lineno = rng.randint(20, 200)
                msg = f"expected: <{want}> but was: <{got}>"
                t.out(
                    error(f"{pkg}.{cls}.{meth} -- Time elapsed: {rng.uniform(0.001, 0.5):.3f} s <<< FAILURE!"),
                    f"org.opentest4j.AssertionFailedError: {msg}",
                    f"\tat {pkg}.{cls}.{meth}({cls}.java:{lineno})",
                )
                fail_lines.append(f"  {cls}.{meth}:{lineno} {msg}")
                blk.append(
                    blocker(
                        f"{pkg}.{cls}.{meth} fails: {msg}",
                        "mvn test ends in BUILD FAILURE, so the module cannot be packaged",
                        "Java developer owning the tested code",
                        (
                            f"check {cls}.java line {lineno} against the implementation; rerun with `mvn test "
                            f"-Dtest={cls}#{meth}`"
                        ),
                    )
                )
        else:
            t.out(
                info(
                    f"Tests run: {n}, Failures: 0, Errors: 0, Skipped: 0, Time elapsed: {secs:.3f} s -- in {pkg}.{cls}"
                )
            )
    took = t.tick(6, 180)
    t.out(info(""), info("Results:"), info(""))
    if fail_lines:
        t.out(
            error("Failures: "),
            *[error(x) for x in fail_lines],
            info(""),
            error(f"Tests run: {total}, Failures: {fails}, Errors: 0, Skipped: 0"),
        )
    else:
        t.out(info(f"Tests run: {total}, Failures: 0, Errors: 0, Skipped: 0"))
    verdict = t.c("BUILD FAILURE", "bred") if fails else t.c("BUILD SUCCESS", "bgreen")
    t.out(
        info("-" * 72),
        info(verdict),
        info("-" * 72),
        info(f"Total time:  {took:.3f} s"),
        info(f"Finished at: {t.stamp('iso')}"),
    )
    res = [command, f"{pkg}:{proj}", *[f"{pkg}.{c}" for c in classes]]
    if fails:
        t.out(
            error(
                f"Failed to execute goal org.apache.maven.plugins:maven-surefire-plugin:{surefire}:test "
                f"(default-test) on project {proj}: There are test failures."
            )
        )
        succ = [
            success(
                f"{total - fails} of {total} tests passed",
                f"{len(classes) - len(failing)} of {len(classes)} test classes green",
                f"{proj} {version}, surefire {surefire}",
            )
        ]
        summary = (
            f"`{command}` on {proj} {version}: BUILD FAILURE, {fails} of {total} tests failed in "
            f"{', '.join(sorted(failing))} ({took:.1f}s)."
        )
    else:
        succ = [
            success(
                f"All {total} tests passed (BUILD SUCCESS)",
                f"Tests run: {total}, Failures: 0, Errors: 0, Skipped: 0; {took:.3f} s",
                f"{proj} {version}, surefire {surefire}",
            )
        ]
        summary = f"`{command}` on {proj} {version}: BUILD SUCCESS, all {total} tests passed in {took:.1f}s."
    return t.text(), report(summary, succ, blk, res)


def certbot_renewal(rng: random.Random) -> tuple[str, Report]:
    """``certbot renew`` over several certificates: all renewed / not due, or some fail the HTTP-01 challenge."""
    t = Term(rng, "letsencrypt", shells=SERVER, cwd="~")
    names = rng.sample(["www", "api", "shop", "status", "admin", "mail", "grafana"], rng.randint(1, 3))
    base = rng.choice(DOMAINS)
    certs = [f"{n}.{base}" for n in names]
    outcome = rng.choice(["ok", "partial", "fail"])
    failed = (
        [] if outcome == "ok" else certs if outcome == "fail" or len(certs) == 1 else rng.sample(certs, len(certs) - 1)
    )
    due = {c: (c in failed or rng.random() < 0.7) for c in certs}
    t.cmd("sudo certbot renew")
    t.out("Saving debug log to /var/log/letsencrypt/letsencrypt.log", "")
    res = ["sudo certbot renew", "/var/log/letsencrypt/letsencrypt.log"]
    renewed, skipped, problems = [], [], []
    for c in certs:
        t.out("- " * 40, f"Processing /etc/letsencrypt/renewal/{c}.conf", "- " * 40)
        res.append(f"/etc/letsencrypt/renewal/{c}.conf")
        if not due[c]:
            t.out("Certificate not yet due for renewal", "")
            skipped.append(c)
            continue
        t.out(f"Renewing an existing certificate for {c}")
        t.tick(2, 15)
        if c in failed:
            ip = f"203.0.113.{rng.randint(2, 250)}"
            detail = rng.choice(
                [
                    (
                        f"{ip}: Fetching "
                        f"http://{c}/.well-known/acme-challenge/{b64(rng, 43).replace('+', '-').replace('/', '_')}: "
                        "Timeout during connect (likely firewall problem)"
                    ),
                    f"DNS problem: NXDOMAIN looking up A for {c} - check that a DNS record exists for this domain",
                ]
            )
            t.out(
                "",
                (
                    "Certbot failed to authenticate some domains (authenticator: nginx). The Certificate Authority "
                    "reported these problems:"
                ),
                f"  Domain: {c}",
                f"  Type:   {'connection' if 'Timeout' in detail else 'dns'}",
                f"  Detail: {detail}",
                "",
                (
                    "Hint: The Certificate Authority failed to verify the temporary nginx configuration changes made "
                    "by Certbot."
                ),
                "",
                t.c(f"Failed to renew certificate {c} with error: Some challenges have failed.", "red"),
                "",
            )
            problems.append((c, detail))
        else:
            renewed.append(c)
    t.out("- " * 40)
    if renewed:
        t.out(
            "Congratulations, all renewals succeeded: " if not problems else "The following renewals succeeded:",
            *[f"  /etc/letsencrypt/live/{c}/fullchain.pem (success)" for c in renewed],
        )
    if skipped:
        t.out(
            "The following certificates are not due for renewal yet:",
            *[
                (
                    f"  /etc/letsencrypt/live/{c}/fullchain.pem expires on "
                    f"{(t.now + timedelta(days=rng.randint(31, 80))).strftime('%Y-%m-%d')} (skipped)"
                )
                for c in skipped
            ],
        )
    if problems:
        t.out(
            ("All renewals failed. " if not renewed else "") + "The following certificates could not be renewed:",
            *[f"  /etc/letsencrypt/live/{c}/fullchain.pem (failure)" for c, _ in problems],
            "- " * 40,
            f"{len(problems)} renew failure(s), 0 parse failure(s)",
        )
    res += [f"/etc/letsencrypt/live/{c}/fullchain.pem" for c in certs]
    succ = []
    if renewed:
        succ.append(
            success(
                f"Renewed {plural(len(renewed), 'certificate')}",
                ", ".join(renewed),
                "certbot renew with the nginx authenticator",
            )
        )
    if skipped:
        succ.append(
            success(
                f"{plural(len(skipped), 'certificate')} not yet due", ", ".join(skipped), "skipped by certbot renew"
            )
        )
    blk = [
        blocker(
            f"certificate {c} failed to renew: {d}",
            f"{c} keeps its current certificate, which will expire if this is not fixed",
            "ops engineer owning DNS/firewall for the domain",
            (
                "open port 80 to this server for the HTTP-01 challenge"
                if "Timeout" in d
                else f"create the DNS A record for {c}"
            )
            + ", then rerun `sudo certbot renew`",
        )
        for c, d in problems
    ]
    summary = (
        f"`sudo certbot renew` processed {plural(len(certs), 'certificate')}: {len(renewed)} renewed, "
        f"{len(skipped)} not due, {len(problems)} failed"
    ) + (f" ({', '.join(c for c, _ in problems)})." if problems else ".")
    return t.text(), report(summary, succ, blk, res)


PIP_CONFLICTS = (
    ("fastapi", "0.110.0", "starlette", "<0.37.0 and >=0.36.3", "0.35.1", "0.36.3"),
    ("boto3", "1.34.50", "botocore", "<1.35.0 and >=1.34.50", "1.33.13", "1.34.50"),
    ("celery", "5.3.6", "kombu", "<6.0 and >=5.3.4", "5.2.4", "5.3.4"),
    ("pandas", "2.2.1", "numpy", ">=1.23.2", "1.21.6", "1.26.4"),
    ("langchain", "0.1.16", "pydantic", "<3 and >=1", "0.32.2", "2.7.1"),
    ("sentry-sdk", "2.1.1", "urllib3", ">=1.26.11", "1.25.11", "2.2.1"),
)


def pip_dependency_conflict(rng: random.Random) -> tuple[str, Report]:
    """``pip install -r requirements.txt``: installs, ResolutionImpossible, or conflict fixed by bumping a pin."""
    proj = rng.choice(PROJECTS)
    t = Term(rng, proj, shells=ANY)
    top, top_v, dep, spec, pinned, good = rng.choice(PIP_CONFLICTS)
    outcome = rng.choice(["ok", "conflict", "fixed"])
    req = rng.choice(["requirements.txt", "requirements/prod.txt"])
    command = f"pip install -r {req}"
    extra = rng.sample(
        [
            ("httpx", "0.27.0"),
            ("redis", "5.0.3"),
            ("SQLAlchemy", "2.0.29"),
            ("structlog", "24.1.0"),
            ("orjson", "3.10.1"),
        ],
        3,
    )
    line = rng.randint(1, 9)

    def collect(dep_v: str) -> None:
        """Pip's download lines for the requirement set, with \\r progress bars."""
        for name, v in [(top, top_v), (dep, dep_v), *extra]:
            size = rng.uniform(0.05, 12)
            t.out(
                f"Collecting {name}=={v} (from -r {req} (line {rng.randint(1, 12)}))",
                f"  Downloading {name.replace('-', '_')}-{v}-py3-none-any.whl.metadata ({rng.randint(2, 30)} kB)",
            )
            t.out(
                t.frames(
                    lambda f, size=size: (
                        f"     {'━' * int(f * 40)}{' ' * (40 - int(f * 40))} {f * size:.1f}/{size:.1f} MB "
                        f"{rng.uniform(1, 40):.1f} MB/s eta 0:00:0{0 if f == 1.0 else rng.randint(1, 9)}"
                    )
                )
            )
            t.tick(0.1, 3)

    def installed(dep_v: str) -> str:
        t.out("Installing collected packages: " + ", ".join(n for n, _ in [*extra, (dep, dep_v), (top, top_v)]))
        line_ = "Successfully installed " + " ".join(f"{n}-{v}" for n, v in [*extra, (dep, dep_v), (top, top_v)])
        t.out(line_)
        return line_

    t.cmd(command)
    res = [command, req, f"{top}=={top_v}", f"{dep}=={pinned}" if outcome != "ok" else f"{dep}=={good}"]
    if outcome == "ok":
        collect(good)
        done = installed(good)
        succ = [
            success(
                f"Installed {len(extra) + 2} pinned packages from {req}",
                done.removeprefix("Successfully installed "),
                f"run from the {proj} project root",
            )
        ]
        return t.text(), report(
            f"`{command}` succeeded: {len(extra) + 2} packages installed including {top}=={top_v} and {dep}=={good}.",
            succ,
            [],
            res,
        )
    collect(pinned)
    conflict = f"{top} {top_v} depends on {dep}{spec}"
    t.out(
        (
            f"INFO: pip is looking at multiple versions of {top} to determine which version is compatible with other "
            "requirements. This could take a while."
        ),
        t.c(
            (
                f"ERROR: Cannot install -r {req} (line {line}) and {dep}=={pinned} because these package versions "
                "have conflicting dependencies."
            ),
            "red",
        ),
        "",
        "The conflict is caused by:",
        f"    The user requested {dep}=={pinned}",
        f"    {conflict}",
        "",
        "To fix this you could try to:",
        "1. loosen the range of package versions you've specified",
        "2. remove package versions to allow pip to attempt to solve the dependency conflict",
        "",
        t.c(
            "ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/dependency-resolution/#dealing-with-dependency-conflicts",
            "red",
        ),
    )
    if outcome == "conflict":
        blk = [
            blocker(
                f"pip cannot resolve {req}: {dep}=={pinned} is pinned but {conflict}",
                "nothing from the requirements was installed (ResolutionImpossible)",
                "developer maintaining the requirements",
                (
                    f"change the {dep} pin in {req} to a version matching {spec.replace(' and ', ',')} (e.g. "
                    f"{dep}=={good}) or pin an older {top}"
                ),
            )
        ]
        return t.text(), report(
            (
                f"`{command}` failed with ResolutionImpossible: {dep}=={pinned} conflicts with {conflict}; nothing "
                "was installed."
            ),
            [],
            blk,
            res,
        )
    sed = f"sed -i 's/^{dep}=={pinned}/{dep}=={good}/' {req}"
    t.cmd(sed)
    t.cmd(command)
    collect(good)
    done = installed(good)
    res += [sed, f"{dep}=={good}"]
    succ = [
        success(
            f"Resolved the dependency conflict by pinning {dep}=={good}",
            f"{req}: {dep} {pinned} -> {good}",
            f"pip had failed: {conflict} (ResolutionImpossible)",
        ),
        success(
            f"Installed {len(extra) + 2} packages from {req}",
            done.removeprefix("Successfully installed "),
            "second pip install after the pin change",
        ),
    ]
    summary = (
        f"`{command}` first failed ({dep}=={pinned} vs {conflict}); after changing the pin to {dep}=={good} "
        "the install succeeded."
    )
    return t.text(), report(summary, succ, [], res)


def disk_full(rng: random.Random) -> tuple[str, Report]:
    """ENOSPC during a build/write, diagnosed with df/du; space reclaimed or still full."""
    proj = rng.choice(PROJECTS)
    t = Term(rng, proj, shells=SERVER)
    size = rng.choice([20, 30, 50, 80, 100])
    dev = rng.choice(["/dev/nvme0n1p1", "/dev/sda1", "/dev/xvda1", "/dev/root"])
    trig, err = rng.choice(
        [
            (
                f"docker build -t {proj}:dev .",
                (
                    "ERROR: failed to solve: failed to copy files: write "
                    "/var/lib/docker/overlay2/{h}/diff/app/node_modules/.cache: no space left on device"
                ),
            ),
            (
                f"tar -czf /var/backups/{proj}.tar.gz .",
                (
                    f"tar: /var/backups/{proj}.tar.gz: Wrote only 4096 of 10240 bytes\ntar: Error is not recoverable: "
                    "exiting now"
                ),
            ),
            (
                "npm ci",
                (
                    "npm error code ENOSPC\nnpm error syscall write\nnpm error errno -28\nnpm error nospc ENOSPC: no "
                    "space left on device, write"
                ),
            ),
        ]
    )
    err = err.replace("{h}", hexid(rng, 24))
    outcome = rng.choice(["freed", "freed", "still_full"])
    t.cmd(trig)
    t.tick(5, 60)
    t.out(*[t.c(x, "red") for x in err.split("\n")])
    t.cmd("df -h /")
    avail_mb = rng.randint(0, 300)
    t.out("Filesystem      Size  Used Avail Use% Mounted on", f"{dev:<15} {size:>3}G  {size}G  {avail_mb:>3}M 100% /")
    docker_gb = round(rng.uniform(0.3, 0.7) * size, 1)
    logs_gb = round(rng.uniform(0.05, 0.2) * size, 1)
    t.cmd("sudo du -xh --max-depth=2 /var | sort -rh | head -4")
    t.out(
        f"{docker_gb + logs_gb + 1.1:.1f}G\t/var",
        f"{docker_gb}G\t/var/lib/docker",
        f"{logs_gb}G\t/var/log/journal",
        "1.1G\t/var/cache",
    )
    res = [
        trig,
        "df -h /",
        dev,
        "sudo du -xh --max-depth=2 /var | sort -rh | head -4",
        "/var/lib/docker",
        "/var/log/journal",
    ]
    succ, blk = [], []
    if outcome == "still_full":
        t.cmd("docker system prune -f")
        freed = round(rng.uniform(0.05, 0.6), 2)
        t.out("Deleted build cache objects:", hexid(rng, 25), "", f"Total reclaimed space: {freed}GB")
        t.cmd("df -h /")
        t.out(
            "Filesystem      Size  Used Avail Use% Mounted on",
            f"{dev:<15} {size:>3}G  {size - 1}G  {int(freed * 1000) + avail_mb:>3}M  99% /",
        )
        res += ["docker system prune -f"]
        blk.append(
            blocker(
                f"root filesystem {dev} ({size}G) is still 99% full after pruning only {freed}GB",
                f"`{trig}` fails with no space left on device",
                "ops engineer owning the host",
                (
                    f"remove unused images/volumes under /var/lib/docker ({docker_gb}G), vacuum /var/log/journal "
                    f"({logs_gb}G) or grow the {size}G volume"
                ),
            )
        )
        return t.text(), report(
            (
                f"`{trig}` failed with no space left on device: {dev} is 100% full ({size}G); `docker system prune "
                f"-f` reclaimed only {freed}GB."
            ),
            succ,
            blk,
            res,
        )
    freed = round(docker_gb * rng.uniform(0.4, 0.9), 1)
    vac = round(logs_gb * rng.uniform(0.5, 0.9), 1)
    t.cmd("docker system prune -af")
    t.out(
        "Deleted Images:",
        f"untagged: {proj}:old-{rng.randint(1, 99)}",
        f"deleted: sha256:{hexid(rng, 64)}",
        "",
        f"Total reclaimed space: {freed}GB",
    )
    t.cmd("sudo journalctl --vacuum-size=500M")
    t.out(f"Vacuuming done, freed {vac}G of archived journals from /var/log/journal/{hexid(rng, 32)}.")
    used = max(1, int(size - freed - vac))
    t.cmd("df -h /")
    t.out(
        "Filesystem      Size  Used Avail Use% Mounted on",
        f"{dev:<15} {size:>3}G  {used:>2}G  {size - used:>3}G {100 * used // size:>3}% /",
    )
    t.cmd(trig)
    t.tick(10, 90)
    if trig == "npm ci":
        t.out(f"added {rng.randint(300, 1500)} packages in {rng.randint(20, 90)}s")
    elif trig.startswith("docker"):
        t.out(f" => => naming to docker.io/library/{proj}:dev")
    res += ["docker system prune -af", "sudo journalctl --vacuum-size=500M"]
    succ += [
        success(
            f"Freed disk space on {dev}",
            f"docker prune reclaimed {freed}GB, journal vacuum freed {vac}G; / now {100 * used // size}% used",
            f"{dev} had been 100% full ({size}G)",
        ),
        success(f"Reran `{trig}` successfully", "completed without ENOSPC", "after freeing space"),
    ]
    summary = (
        f"`{trig}` hit no space left on device ({dev} 100% of {size}G); pruning Docker ({freed}GB) and the "
        f"journal ({vac}G) brought / to {100 * used // size}% and the rerun succeeded."
    )
    return t.text(), report(summary, succ, blk, res)


def oom_killed(rng: random.Random) -> tuple[str, Report]:
    """A Kubernetes pod in OOMKilled/CrashLoopBackOff: the memory limit raised and rolled out, or still dying."""
    app, ns = rng.choice(SERVICES), rng.choice(NAMESPACES)
    t = Term(rng, app, shells=ANY)
    limit = rng.choice([256, 512, 768, 1024])
    new = limit * 2
    outcome = rng.choice(["raised", "raised", "still"])
    pod = _pod(rng, app)
    restarts = rng.randint(3, 40)
    t.cmd(f"kubectl get pods -n {ns} -l app={app}")
    t.out(
        f"{'NAME':<34}READY   STATUS             RESTARTS        AGE",
        f"{pod:<34}0/1     CrashLoopBackOff   {restarts} ({rng.randint(10, 59)}s ago)   {rng.randint(5, 90)}m",
    )
    desc = f"kubectl describe pod {pod} -n {ns}"
    t.cmd(desc + " | grep -A6 'Last State'")
    t.out(
        "    Last State:     Terminated",
        "      Reason:       OOMKilled",
        "      Exit Code:    137",
        f"      Started:      {t.stamp('systemd')}",
        f"      Finished:     {t.stamp('systemd')}",
        "    Ready:          False",
        f"    Restart Count:  {restarts}",
    )
    t.cmd(f"kubectl top pod -n {ns} -l app={app}")
    peak = limit - rng.randint(1, 12)
    t.out(
        "NAME                                 CPU(cores)   MEMORY(bytes)",
        f"{pod:<37}{rng.randint(50, 900)}m         {peak}Mi",
    )
    setres = f"kubectl set resources deployment/{app} -n {ns} --limits=memory={new}Mi"
    t.cmd(setres)
    t.out(f"deployment.apps/{app} resource requirements updated")
    rollout = f"kubectl rollout status deployment/{app} -n {ns} --timeout=180s"
    t.cmd(rollout)
    res = [
        f"kubectl get pods -n {ns} -l app={app}",
        pod,
        desc + " | grep -A6 'Last State'",
        f"kubectl top pod -n {ns} -l app={app}",
        setres,
        rollout,
        f"deployment/{app}",
    ]
    first = success(
        f"Diagnosed {pod} as OOMKilled",
        f"exit code 137, {restarts} restarts, memory {peak}Mi against a {limit}Mi limit",
        f"namespace {ns}",
    )
    if outcome == "still":
        t.tick(170, 181)
        t.out(
            f'Waiting for deployment "{app}" rollout to finish: 0 of 1 updated replicas are available...',
            t.c(f'error: deployment "{app}" exceeded its progress deadline', "red"),
        )
        t.cmd(f"kubectl get pods -n {ns} -l app={app}")
        pod2 = _pod(rng, app)
        t.out(
            f"{'NAME':<34}READY   STATUS      RESTARTS     AGE",
            f"{pod2:<34}0/1     OOMKilled   2 (8s ago)   {rng.randint(2, 3)}m",
        )
        res.append(pod2)
        blk = [
            blocker(
                f"{app} is still OOMKilled after raising its memory limit from {limit}Mi to {new}Mi",
                f"deployment/{app} in {ns} has no ready replicas; the rollout exceeded its progress deadline",
                f"developers of {app} (memory growth) with the platform team",
                (
                    f"profile {app}'s memory use (a leak or unbounded cache is likely since doubling to {new}Mi did "
                    "not help) before raising the limit again"
                ),
            )
        ]
        summary = (
            f"Pod {pod} of {app} in {ns} was OOMKilled (exit 137, {limit}Mi limit); raising the limit to "
            f"{new}Mi did not help: the new pod {pod2} is OOMKilled too."
        )
        return t.text(), report(summary, [first], blk, res)
    t.tick(20, 120)
    t.out(
        f'Waiting for deployment "{app}" rollout to finish: 0 of 1 updated replicas are available...',
        f'deployment "{app}" successfully rolled out',
    )
    succ = [
        first,
        success(
            f"Raised {app}'s memory limit to {new}Mi and the rollout succeeded",
            f'limits memory {limit}Mi -> {new}Mi; deployment "{app}" successfully rolled out',
            f"the pod had peaked at {peak}Mi of {limit}Mi before being killed",
        ),
    ]
    summary = (
        f"{app} in {ns} was crash-looping with OOMKilled (exit 137) at a {limit}Mi limit; the limit was "
        f"raised to {new}Mi and the deployment rolled out."
    )
    return t.text(), report(summary, succ, [], res)


def ssh_host_key_mismatch(rng: random.Random) -> tuple[str, Report]:
    """ssh refuses a changed host key: verified and re-trusted, or left blocked pending verification."""
    t = Term(rng, "ops", shells=POSIX, cwd="~")
    role, zone = (
        rng.choice(["web", "db", "bastion", "worker", "app"]),
        rng.choice(["internal", "prod.lan", rng.choice(DOMAINS)]),
    )
    target = f"{role}-{rng.randint(1, 12):02d}.{zone}"
    user = rng.choice(["deploy", "ubuntu", "ec2-user", "admin", t.user])
    kt = rng.choice(["ED25519", "ECDSA", "RSA"])
    fp = f"SHA256:{b64(rng, 43)}"
    kh = f"{t.home}/.ssh/known_hosts"
    line = rng.randint(3, 80)
    outcome = rng.choice(["verified", "blocked"])
    t.cmd(f"ssh {user}@{target}")
    t.out(
        t.c("@" * 59, "red"),
        t.c("@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @", "red"),
        t.c("@" * 59, "red"),
        "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!",
        "Someone could be eavesdropping on you right now (man-in-the-middle attack)!",
        "It is also possible that a host key has just been changed.",
        f"The fingerprint for the {kt} key sent by the remote host is",
        f"{fp}.",
        "Please contact your system administrator.",
        f"Add correct host key in {kh} to get rid of this message.",
        f"Offending {kt} key in {kh}:{line}",
        "  remove with:",
        f'  ssh-keygen -f "{kh}" -R "{target}"',
        f"Host key for {target} has changed and you have requested strict checking.",
        "Host key verification failed.",
    )
    res = [f"ssh {user}@{target}", target, f"{kh}:{line}"]
    if outcome == "blocked":
        blk = [
            blocker(
                f"ssh to {target} refused: the {kt} host key changed (now {fp}; old key at {kh}:{line})",
                f"no SSH access to {target} until the new key is verified",
                f"administrator of {target}",
                (
                    f"confirm {fp} with the host's owner (e.g. a rebuild); only then run `ssh-keygen -R {target}` and "
                    "reconnect"
                ),
            )
        ]
        summary = (
            f"`ssh {user}@{target}` failed with REMOTE HOST IDENTIFICATION HAS CHANGED ({kt} {fp}); the key "
            "was not verified, so no connection was made."
        )
        return t.text(), report(summary, [], blk, res)
    ticket = f"{rng.choice(['INFRA', 'OPS', 'PLAT'])}-{rng.randint(100, 9999)}"
    t.cmd(f"# {target} was rebuilt in {ticket}; new key {fp} confirmed with the infra team")
    t.cmd(f"ssh-keygen -R {target}")
    t.out(f"# Host {target} found: line {line}", f"{kh} updated.", f"Original contents retained as {kh}.old")
    t.cmd(f"ssh {user}@{target}")
    t.out(
        f"The authenticity of host '{target}' can't be established.",
        f"{kt} key fingerprint is {fp}.",
        "This key is not known by any other names.",
        "Are you sure you want to continue connecting (yes/no/[fingerprint])? yes",
        f"Warning: Permanently added '{target}' ({kt}) to the list of known hosts.",
        (
            f"Welcome to Ubuntu {rng.choice(['22.04.4', '24.04.1'])} LTS (GNU/Linux "
            f"6.8.0-{rng.randint(30, 50)}-generic x86_64)"
        ),
        "",
    )
    t.lines.append(f"{user}@{target.split('.', maxsplit=1)[0]}:~$ uptime")
    t.out(
        f" {t.stamp('clock')} up {rng.randint(0, 3)} days,  {rng.randint(1, 23)}:{rng.randint(10, 59)},  1 user,  "
        f"load average: 0.{rng.randint(0, 99):02d}, 0.0{rng.randint(1, 9)}, 0.00"
    )
    t.out("logout", f"Connection to {target} closed.")
    res += [f"ssh-keygen -R {target}", kh]
    succ = [
        success(
            f"Re-trusted the new host key of {target} and logged in",
            f"ssh-keygen -R removed line {line} of known_hosts; new {kt} key {fp} added",
            f"the host was rebuilt ({ticket}) and the fingerprint was confirmed first",
        )
    ]
    summary = (
        f"ssh to {target} first failed on a changed {kt} host key; after confirming the rebuild ({ticket}) "
        f"the old entry was removed and {user}@{target} logged in."
    )
    return t.text(), report(summary, succ, [], res)


RUST_ERRORS = (
    (
        "E0308",
        "mismatched types",
        "expected `u16`, found `String`",
        '    let port: u16 = env::var("PORT").unwrap_or_default();',
    ),
    (
        "E0425",
        "cannot find value `cfg` in this scope",
        "not found in this scope",
        "    let pool = Pool::connect(&cfg.database_url).await?;",
    ),
    (
        "E0599",
        "no method named `into_inner` found for struct `Config` in the current scope",
        "method not found in `Config`",
        "    let inner = config.into_inner();",
    ),
    (
        "E0382",
        "borrow of moved value: `req`",
        "value borrowed here after move",
        '    log::info!("handled {}", req.path());',
    ),
)


def cargo_build_error(rng: random.Random) -> tuple[str, Report]:
    """``cargo build``: compiles (with a warning), or fails with a rustc error code at file:line:col."""
    crate = rng.choice(["mytool", "ingestd", "ratelimit", "tfsync", "logship", "kvcache"])
    t = Term(rng, crate, shells=ANY)
    release = rng.random() < 0.5
    command = "cargo build --release" if release else "cargo build"
    deps = rng.sample(
        [
            ("serde", "1.0.197"),
            ("tokio", "1.37.0"),
            ("anyhow", "1.0.82"),
            ("clap", "4.5.4"),
            ("reqwest", "0.12.3"),
            ("tracing", "0.1.40"),
            ("sqlx", "0.7.4"),
            ("serde_json", "1.0.116"),
        ],
        5,
    )
    cver = ver(rng, (0, 1), 9, 9)
    outcome = rng.choice(["ok", "error", "error"])
    t.cmd(command)
    t.out(f"    {t.c('Updating', 'bgreen')} crates.io index")
    for name, v in deps:
        t.out(f"  {t.c('Downloaded', 'bgreen')} {name} v{v}")
    n = rng.randint(60, 300)
    building = t.frames(
        lambda f: f"    {t.c('Building', 'bcyan')} {bar(f, 25, '=', ' ')} {int(f * n)}/{n}: {deps[0][0]}"
    )
    for i, (name, v) in enumerate(deps):
        t.out((f"{building}\r" if i == 0 else "") + f"   {t.c('Compiling', 'bgreen')} {name} v{v}")
    t.out(f"   {t.c('Compiling', 'bgreen')} {crate} v{cver} ({t.abspath()})")
    secs = t.tick(5, 180)
    res = [command, *[f"{d} v{v}" for d, v in deps]]
    if outcome == "ok":
        t.out(
            f"{t.c('warning', 'byellow')}: unused variable: `retries`",
            f"  --> src/main.rs:{rng.randint(10, 90)}:9",
            f'{t.c("warning", "byellow")}: `{crate}` (bin "{crate}") generated 1 warning',
        )
        prof = "`release` profile [optimized]" if release else "`dev` profile [unoptimized + debuginfo]"
        t.out(f"    {t.c('Finished', 'bgreen')} {prof} target(s) in {secs:.2f}s")
        res.append("src/main.rs")
        succ = [
            success(
                f"Built {crate} v{cver}",
                f"Finished {prof} target(s) in {secs:.2f}s; 1 warning (unused variable `retries`)",
                f"{len(deps)} dependencies downloaded and compiled",
            )
        ]
        return t.text(), report(
            f"`{command}` built {crate} v{cver} in {secs:.2f}s with 1 warning (unused variable).", succ, [], res
        )
    code, title, label, src = rng.choice(RUST_ERRORS)
    file = rng.choice(["src/config.rs", "src/main.rs", "src/server.rs", "src/db.rs"])
    line, col = rng.randint(10, 300), rng.randint(5, 30)
    t.out(
        f"{t.c(f'error[{code}]', 'bred')}: {t.c(title, 'bold')}",
        f"  --> {file}:{line}:{col}",
        "   |",
        f"{line:<3}|{src}",
        f"   |{' ' * col}{'^' * 8} {label}",
        "",
        f"For more information about this error, try `rustc --explain {code}`.",
        t.c("error", "bred") + f': could not compile `{crate}` (bin "{crate}") due to 1 previous error',
    )
    res += [file]
    blk = [
        blocker(
            f"rustc error[{code}] in {file}:{line}:{col}: {title}",
            f"{crate} v{cver} does not compile, so no binary was produced",
            f"Rust developer working on {file}",
            f"fix {file} line {line} ({label}); `rustc --explain {code}` describes the error",
        )
    ]
    succ = [
        success(
            f"All {len(deps)} dependencies compiled",
            ", ".join(f"{d} v{v}" for d, v in deps),
            f"only the {crate} crate itself failed",
        )
    ]
    summary = f"`{command}` failed compiling {crate} v{cver}: error[{code}] {title} at {file}:{line}:{col}."
    return t.text(), report(summary, succ, blk, res)


def go_test_failure(rng: random.Random) -> tuple[str, Report]:
    """``go test ./...``: all ok, failing tests in a package, or a package that does not build."""
    proj = rng.choice(PROJECTS)
    t = Term(rng, proj, shells=ANY)
    mod = f"github.com/{rng.choice(ORGS)}/{proj}"
    pkgs = rng.sample(
        [
            "internal/auth",
            "internal/config",
            "internal/store",
            "internal/api",
            "pkg/retry",
            "internal/billing",
            "pkg/ratelimit",
        ],
        4,
    )
    outcome = rng.choice(["ok", "fail", "fail", "build"])
    bad = pkgs[rng.randrange(len(pkgs))]
    command = rng.choice(["go test ./...", "go test -race ./...", "go test -count=1 ./..."])
    t.cmd(command)
    t.out(f"?   \t{mod}/cmd/server\t[no test files]")
    res = [command, mod]
    blk, fails = [], []
    oks = 0
    for p in pkgs:
        secs = rng.uniform(0.005, 3)
        if p == bad and outcome == "fail":
            for _ in range(rng.randint(1, 2)):
                verb = rng.choice(["Parse", "Load", "Validate", "Retry", "Charge", "Limit"])
                name = f"Test{verb}{rng.choice(['Config', 'Token', 'Backoff', 'Invoice', 'Window'])}"
                fn = f"{p.split('/')[-1]}_test.go"
                line = rng.randint(15, 200)
                want, got = rng.choice(
                    [("30s", "0s"), ("3", "2"), ('"EUR"', '""'), ("nil", "context deadline exceeded")]
                )
                t.out(
                    t.c(f"--- FAIL: {name} ({rng.uniform(0, 0.5):.2f}s)", "red"),
                    f"    {fn}:{line}: expected {want}, got {got}",
                )
                fails.append((name, fn, line, want, got))
                res.append(fn)
            t.out("FAIL", t.c(f"FAIL\t{mod}/{p}\t{secs:.3f}s", "red"))
        elif p == bad and outcome == "build":
            file = f"{p}/{rng.choice(['pg.go', 'client.go', 'handler.go'])}"
            line, col = rng.randint(10, 300), rng.randint(2, 30)
            sym = rng.choice(["sqlx.Connect2", "cfg.Timeout", "retry.WithJitter", "api.NewServerV2"])
            t.out(
                f"# {mod}/{p}", f"{file}:{line}:{col}: undefined: {sym}", t.c(f"FAIL\t{mod}/{p} [build failed]", "red")
            )
            res.append(file)
            blk.append(
                blocker(
                    f"package {mod}/{p} does not compile: {file}:{line}:{col}: undefined: {sym}",
                    "its tests cannot run and `go test` fails",
                    f"Go developer working on {p}",
                    f"define or import {sym} (or update the call at {file}:{line}) and rerun `{command}`",
                )
            )
        else:
            oks += 1
            t.out(f"ok  \t{mod}/{p}\t{secs:.3f}s")
    if fails:
        t.out("FAIL")
        for name, fn, line, want, got in fails:
            blk.append(
                blocker(
                    f"{name} fails in {mod}/{bad}: {fn}:{line}: expected {want}, got {got}",
                    f"`{command}` exits non-zero",
                    f"Go developer working on {bad}",
                    f"check {bad}/{fn}:{line}; rerun with `go test -run '^{name}$' ./{bad}`",
                )
            )
    succ = (
        [
            success(
                f"{oks} of {len(pkgs)} tested packages pass",
                ", ".join(f"{mod}/{p}" for p in pkgs if p != bad or outcome == "ok"),
                f"{command} in module {mod}",
            )
        ]
        if oks
        else []
    )
    if outcome == "ok":
        summary = f"`{command}` passed: all {len(pkgs)} packages with tests are ok in module {mod}."
    elif outcome == "fail":
        summary = (
            f"`{command}`: {len(fails)} failing test(s) in {mod}/{bad} ({', '.join(f[0] for f in fails)}); "
            f"{oks} other packages ok."
        )
    else:
        summary = f"`{command}`: {mod}/{bad} failed to build (undefined symbol); {oks} other packages ok."
    return t.text(), report(summary, succ, blk, res)


def helm_upgrade_failure(rng: random.Random) -> tuple[str, Report]:
    """``helm upgrade --install``: deployed, stuck in pending-upgrade (rolled back or not), or timed out."""
    rel, ns = rng.choice(SERVICES), rng.choice(NAMESPACES)
    t = Term(rng, rel, shells=ANY)
    chart = rng.choice([f"./charts/{rel}", f"{rng.choice(ORGS)}/{rel}", "bitnami/nginx"])
    values = rng.choice([f"values-{ns}.yaml", "values.yaml", f"env/{ns}/values.yaml"])
    rev = rng.randint(2, 60)
    outcome = rng.choice(["ok", "pending", "pending_rolled_back", "timeout"])
    command = f"helm upgrade --install {rel} {chart} -n {ns} -f {values} --wait --timeout 5m"
    t.cmd(command)
    res = [command, chart, values]
    if outcome == "ok":
        t.tick(20, 240)
        t.out(
            f'Release "{rel}" has been upgraded. Happy Helming!',
            f"NAME: {rel}",
            f"LAST DEPLOYED: {t.stamp('helm')}",
            f"NAMESPACE: {ns}",
            "STATUS: deployed",
            f"REVISION: {rev + 1}",
            "TEST SUITE: None",
        )
        succ = [
            success(
                f"Upgraded Helm release {rel} to revision {rev + 1}",
                f"STATUS: deployed, REVISION: {rev + 1}",
                f"chart {chart}, values {values}, namespace {ns}",
            )
        ]
        return t.text(), report(
            f"`helm upgrade --install` of {rel} in {ns} succeeded: revision {rev + 1} deployed.", succ, [], res
        )
    if outcome == "timeout":
        t.tick(299, 301)
        err = "context deadline exceeded"
        t.out(t.c(f"Error: UPGRADE FAILED: {err}", "red"))
        hist = f"helm history {rel} -n {ns} --max 2"
        t.cmd(hist)
        t.out(
            "REVISION\tUPDATED                 \tSTATUS    \tCHART       \tDESCRIPTION",
            f"{rev}\t{t.stamp('helm')}\tsuperseded\t{rel}-{ver(rng, (0, 2))}\tUpgrade complete",
            f'{rev + 1}\t{t.stamp("helm")}\tfailed    \t{rel}-{ver(rng, (0, 2))}\tUpgrade "{rel}" failed: {err}',
        )
        res.append(hist)
        blk = [
            blocker(
                f"helm upgrade of {rel} timed out after 5m ({err}); revision {rev + 1} is failed",
                f"the new pods of {rel} in {ns} did not become ready; revision {rev} is the last good one",
                f"developers of {rel} / platform team",
                (
                    f"check why the new pods are not ready (`kubectl get pods -n {ns}`, events, probes) and fix, or "
                    f"`helm rollback {rel} {rev} -n {ns}`"
                ),
            )
        ]
        return t.text(), report(
            f"`helm upgrade --install` of {rel} in {ns} failed: {err} after 5m; revision {rev + 1} is marked failed.",
            [],
            blk,
            res,
        )
    err = "another operation (install/upgrade/rollback) is in progress"
    t.out(t.c(f"Error: UPGRADE FAILED: {err}", "red"))
    hist = f"helm history {rel} -n {ns} --max 3"
    t.cmd(hist)
    t.out(
        "REVISION\tUPDATED                 \tSTATUS         \tDESCRIPTION",
        f"{rev - 1}\t{t.stamp('helm')}\tsuperseded     \tUpgrade complete",
        f"{rev}\t{t.stamp('helm')}\tdeployed       \tUpgrade complete",
        f"{rev + 1}\t{t.stamp('helm')}\tpending-upgrade\tPreparing upgrade",
    )
    res.append(hist)
    if outcome == "pending":
        blk = [
            blocker(
                f"release {rel} is stuck in pending-upgrade at revision {rev + 1} ({err})",
                "no further upgrade of the release is possible until it is cleared",
                "platform team / whoever ran the interrupted upgrade",
                f"make sure no deploy is running, then `helm rollback {rel} {rev} -n {ns}` and retry the upgrade",
            )
        ]
        summary = (
            f"`helm upgrade --install` of {rel} in {ns} failed: {err}; helm history shows revision "
            f"{rev + 1} stuck in pending-upgrade."
        )
        return t.text(), report(summary, [], blk, res)
    rb = f"helm rollback {rel} {rev} -n {ns}"
    t.cmd(rb)
    t.out("Rollback was a success! Happy Helming!")
    t.cmd(command)
    t.tick(20, 200)
    t.out(
        f'Release "{rel}" has been upgraded. Happy Helming!',
        f"NAME: {rel}",
        f"NAMESPACE: {ns}",
        "STATUS: deployed",
        f"REVISION: {rev + 3}",
    )
    res.append(rb)
    succ = [
        success(
            f"Cleared the stuck pending-upgrade of {rel}",
            f"helm rollback {rel} {rev} -> Rollback was a success",
            f"the upgrade had failed: {err}",
        ),
        success(
            f"Upgraded {rel} to revision {rev + 3}",
            "STATUS: deployed",
            f"chart {chart}, values {values}, namespace {ns}",
        ),
    ]
    summary = (
        f"The first upgrade of {rel} in {ns} failed ({err}); after rolling back to revision {rev}, the "
        f"upgrade deployed revision {rev + 3}."
    )
    return t.text(), report(summary, succ, [], res)


def ansible_unreachable(rng: random.Random) -> tuple[str, Report]:
    """``ansible-playbook``: all hosts ok, some UNREACHABLE (ssh timeout/publickey), or none reachable."""
    proj = rng.choice(["infra", "ansible", "ops-playbooks", "config-mgmt"])
    t = Term(rng, proj, shells=POSIX)
    group = rng.choice(["webservers", "db", "workers", "all"])
    env = rng.choice(["prod", "staging"])
    inv = f"inventories/{env}/hosts.ini"
    book = rng.choice(["site.yml", "deploy.yml", "patch.yml"])
    stem = {"webservers": "web", "db": "db", "workers": "worker", "all": "node"}[group]
    hosts = [f"{stem}{i}" for i in range(1, rng.randint(3, 5) + 1)]
    ips = {h: f"10.{rng.randint(0, 3)}.{rng.randint(0, 9)}.{rng.randint(10, 250)}" for h in hosts}
    outcome = rng.choice(["ok", "some", "some", "all"])
    down = [] if outcome == "ok" else hosts if outcome == "all" else rng.sample(hosts, rng.randint(1, len(hosts) - 1))
    down = [h for h in hosts if h in down]
    why = rng.choice(["timeout", "publickey"])
    command = f"ansible-playbook -i {inv} {book} --limit {group}"
    t.cmd(command)
    t.out("", t.c(f"PLAY [{group}] " + "*" * 60, "bold"), "", "TASK [Gathering Facts] " + "*" * 55)
    msgs = {}
    for h in hosts:
        if h in down:
            m = (
                f"Failed to connect to the host via ssh: ssh: connect to host {ips[h]} port 22: Connection timed out"
                if why == "timeout"
                else f"Failed to connect to the host via ssh: deploy@{ips[h]}: Permission denied (publickey)."
            )
            msgs[h] = m
            t.out(t.c(f'fatal: [{h}]: UNREACHABLE! => {{"changed": false, "msg": "{m}", "unreachable": true}}', "red"))
        else:
            t.out(t.c(f"ok: [{h}]", "green"))
    up = [h for h in hosts if h not in down]
    tasks = rng.sample(
        [
            "common : install packages",
            "nginx : template site config",
            "app : deploy release",
            "app : restart service",
            "users : authorized keys",
        ],
        3,
    )
    changed = {h: 0 for h in up}
    for task in tasks if up else []:
        t.out("", f"TASK [{task}] " + "*" * 50)
        for h in up:
            ch = rng.random() < 0.5
            changed[h] += ch
            t.out(t.c(f"changed: [{h}]", "yellow") if ch else t.c(f"ok: [{h}]", "green"))
        t.tick(1, 40)
    t.out("", "PLAY RECAP " + "*" * 67)
    for h in hosts:
        if h in down:
            t.out(f"{h:<26}: ok=0    changed=0    unreachable=1    failed=0    skipped=0    rescued=0    ignored=0")
        else:
            t.out(
                f"{h:<26}: ok={len(tasks) + 1:<4} changed={changed[h]:<4} unreachable=0    failed=0    skipped=0  "
                "  rescued=0    ignored=0"
            )
    res = [command, inv, book, *[ips[h] for h in down]]
    succ = (
        [
            success(
                f"Playbook {book} completed on {plural(len(up), 'host')}",
                ", ".join(f"{h} (changed={changed[h]})" for h in up),
                f"{len(tasks) + 1} tasks per host incl. fact gathering, inventory {inv}",
            )
        ]
        if up
        else []
    )
    blk = []
    if down:
        fix = (
            "check the hosts are up and that port 22 is reachable from here (security group / VPN)"
            if why == "timeout"
            else (
                "make sure the deploy user's key is in authorized_keys on these hosts (or the right key is "
                "loaded in ssh-agent)"
            )
        )
        blk.append(
            blocker(
                f"{plural(len(down), 'host')} UNREACHABLE: "
                + "; ".join(f"{h} ({ips[h]})" for h in down)
                + (" — ssh connection timed out" if why == "timeout" else " — Permission denied (publickey)"),
                f"{book} was not applied to {', '.join(down)}",
                "infrastructure/ops team owning the hosts",
                fix + f", then rerun with `--limit {','.join(down)}`",
            )
        )
    summary = f"`ansible-playbook {book}` on {group} ({env}): {len(up)} of {len(hosts)} hosts ok" + (
        f", unreachable: {', '.join(down)}." if down else "."
    )
    return t.text(), report(summary, succ, blk, res)


def systemd_service_failing(rng: random.Random) -> tuple[str, Report]:
    """``systemctl restart`` fails; status + journalctl show why; fixed and running, or left failed."""
    svc = rng.choice(SERVICES)
    t = Term(rng, svc, shells=SERVER, cwd="~")
    outcome = rng.choice(["fixed", "failed", "ok"])
    cfg = f"/etc/{svc}/config.yaml"
    binary = f"/opt/{svc}/bin/server"
    pid = rng.randint(1000, 65000)
    port = rng.choice([8000, 8080, 9000, 3000])
    cause, log, code, fix_cmd, fix = rng.choice(
        [
            (
                "the config file is not readable by the service user",
                f"Error: open {cfg}: permission denied",
                "1/FAILURE",
                f"sudo chown {svc}:{svc} {cfg}",
                f"give the {svc} user read access to {cfg} (e.g. `sudo chown {svc}:{svc} {cfg}`)",
            ),
            (
                "the environment file is missing",
                f"Failed to load environment files: No such file or directory (/etc/default/{svc})",
                "resources",
                f"sudo cp /etc/default/{svc}.example /etc/default/{svc}",
                f"create /etc/default/{svc} (EnvironmentFile of the unit)",
            ),
            (
                "its port is already in use",
                f"listen tcp 0.0.0.0:{port}: bind: address already in use",
                "1/FAILURE",
                f"sudo systemctl stop {svc}-legacy",
                f"stop whatever listens on port {port} (`sudo ss -ltnp 'sport = :{port}'`) or change the port in {cfg}",
            ),
            (
                "the ExecStart binary does not exist",
                f"Failed at step EXEC spawning {binary}: No such file or directory",
                "203/EXEC",
                f"sudo ln -sfn /opt/{svc}/releases/current/bin/server {binary}",
                f"install or relink {binary} (the unit's ExecStart)",
            ),
        ]
    )
    t.cmd(f"sudo systemctl restart {svc}")
    res = [f"sudo systemctl restart {svc}", f"{svc}.service"]
    unit = f"/etc/systemd/system/{svc}.service"

    def status(active: bool) -> None:
        t.cmd(f"systemctl status {svc} --no-pager")
        dot = t.c("●", "bgreen") if active else t.c("×", "bred")
        t.out(
            f"{dot} {svc}.service - {svc.replace('-', ' ').title()}",
            f"     Loaded: loaded ({unit}; enabled; preset: enabled)",
        )
        if active:
            t.out(
                (
                    f"     Active: {t.c('active (running)', 'bgreen')} since {t.stamp('systemd')}; "
                    f"{rng.randint(2, 20)}s ago"
                ),
                f"   Main PID: {pid + 7} (server)",
            )
        else:
            t.out(
                (
                    f"     Active: {t.c('failed', 'bred')} (Result: exit-code) since {t.stamp('systemd')}; "
                    f"{rng.randint(2, 20)}s ago"
                ),
                f"    Process: {pid} ExecStart={binary} --config {cfg} (code=exited, status={code})",
            )

    if outcome == "ok":
        status(True)
        res += [f"systemctl status {svc} --no-pager", unit]
        return t.text(), report(
            f"`systemctl restart {svc}` succeeded; {svc}.service is active (running).",
            [success(f"Restarted {svc}.service", "Active: active (running)", f"unit {unit}")],
            [],
            res,
        )
    t.out(
        t.c(f"Job for {svc}.service failed because the control process exited with error code.", "red"),
        f'See "systemctl status {svc}.service" and "journalctl -xeu {svc}.service" for details.',
    )
    status(False)
    jc = f"journalctl -u {svc} -n 20 --no-pager"
    t.cmd(jc)
    t.out(
        f"{t.stamp('syslog')} {t.host} server[{pid}]: {log}"
        if code not in ("203/EXEC", "resources")
        else f"{t.stamp('syslog')} {t.host} systemd[1]: {svc}.service: {log}",
        f"{t.stamp('syslog')} {t.host} systemd[1]: {svc}.service: Main process exited, code=exited, status={code}",
        f"{t.stamp('syslog')} {t.host} systemd[1]: {svc}.service: Failed with result 'exit-code'.",
    )
    res += [f"systemctl status {svc} --no-pager", unit, jc]
    if outcome == "failed":
        blk = [
            blocker(
                f"{svc}.service fails to start: {cause} ({log})",
                f"{svc} is down (Active: failed, status={code})",
                f"ops engineer owning {svc}",
                fix,
            )
        ]
        return t.text(), report(f'`systemctl restart {svc}` failed: {cause}; the journal shows "{log}".', [], blk, res)
    t.cmd(fix_cmd)
    t.cmd(f"sudo systemctl restart {svc}")
    status(True)
    res.append(fix_cmd)
    succ = [
        success(
            f"Fixed and restarted {svc}.service",
            f"`{fix_cmd}`; now Active: active (running)",
            f"the restart had failed because {cause} ({log})",
        )
    ]
    return t.text(), report(
        f"`systemctl restart {svc}` failed because {cause}; after `{fix_cmd}` the service is active (running).",
        succ,
        [],
        res,
    )


RUFF_RULES = (
    ("F401", "[*] `{mod}` imported but unused", True),
    ("E722", "Do not use bare `except`", False),
    ("I001", "[*] Import block is un-sorted or un-formatted", True),
    ("B006", "Do not use mutable data structures for argument defaults", False),
    ("F841", "Local variable `resp` is assigned to but never used", False),
    ("UP035", "[*] Import from `collections.abc` instead: `Iterable`", True),
)
ESLINT_RULES = (
    ("error", "'total' is assigned a value but never used", "@typescript-eslint/no-unused-vars"),
    ("error", "React Hook useEffect has a missing dependency: 'userId'", "react-hooks/exhaustive-deps"),
    ("warning", "Unexpected console statement", "no-console"),
    ("error", "Unexpected any. Specify a different type", "@typescript-eslint/no-explicit-any"),
)


def ci_lint_failure(rng: random.Random) -> tuple[str, Report]:
    """Lint gate before pushing (ruff or eslint): clean, fixed by ``--fix``, or errors left for hand fixing."""
    proj = rng.choice(PROJECTS)
    t = Term(rng, proj, shells=ANY)
    outcome = rng.choice(["clean", "fixed", "remaining", "remaining"])
    if rng.random() < 0.5:
        pkg = proj.replace("-", "_")
        files = rng.sample([f"src/{pkg}/{m}.py" for m in ("api", "models", "utils", "tasks", "db", "cli")], 3)
        issues = [
            (f, rng.randint(1, 300), rng.randint(1, 40), *rng.choice(RUFF_RULES))
            for f in files
            for _ in range(rng.randint(1, 2))
        ]
        if outcome == "fixed":
            issues = [i for i in issues if i[5]] or [(files[0], 3, 1, *RUFF_RULES[0])]
        elif outcome == "remaining" and all(i[5] for i in issues):
            issues.append((files[0], 88, 5, *RUFF_RULES[1]))
        issues.sort(key=lambda i: (i[0], i[1], i[2]))  # ruff prints by file, line, column
        command, fix = "ruff check .", "ruff check . --fix"
        t.cmd(command)
        if outcome == "clean":
            t.out(t.c("All checks passed!", "bgreen"))
            return t.text(), report(
                "`ruff check .` passed: no lint errors.",
                [success("ruff found no lint errors", "All checks passed!", f"run from the {proj} project root")],
                [],
                [command],
            )
        mod = rng.choice(["os", "sys", "json", "typing.Any"])
        lines = [
            f"{t.c(f, 'bold')}:{ln}:{col}: {t.c(code, 'bred')} {msg.format(mod=mod)}"
            for f, ln, col, code, msg, _ in issues
        ]
        nfix = sum(i[5] for i in issues)
        t.out(*lines, f"Found {len(issues)} errors.", f"[*] {nfix} fixable with the `--fix` option.")
        t.cmd(fix)
        left = [i for i in issues if not i[5]]
        t.out(*[x for x, i in zip(lines, issues, strict=True) if not i[5]])
        t.out(f"Found {len(issues)} errors ({nfix} fixed, {len(left)} remaining).")
        name = "ruff"
        rendered = [f"{f}:{ln}:{col} {code} {msg.format(mod=mod)}" for f, ln, col, code, msg, _ in left]
    else:
        comps = rng.sample(["Cart", "Header", "UserMenu", "Checkout", "OrderList", "Login"], 3)
        sep = "\\" if t.shell == "pwsh" else "/"
        files = [f"src{sep}components{sep}{c}.tsx" for c in comps]
        issues = [
            (f, rng.randint(3, 200), rng.randint(1, 30), *rng.choice(ESLINT_RULES))
            for f in files
            for _ in range(rng.randint(1, 2))
        ]
        issues.sort(key=lambda i: (files.index(i[0]), i[1], i[2]))  # eslint prints by file, then line
        fixable = {i: (i[5] == "no-console" or rng.random() < 0.3) for i in issues}
        if outcome == "fixed":
            fixable = dict.fromkeys(issues, True)
        elif outcome == "remaining" and all(fixable.values()):
            fixable[issues[0]] = False
        command, fix = "npx eslint src", "npx eslint src --fix"
        t.cmd(command)
        if outcome == "clean":
            return t.text(), report(
                "`npx eslint src` passed with no problems.",
                [success("eslint reported no problems", "no output", f"run from the {proj} project root")],
                [],
                [command],
            )

        def show(items: list[tuple[Any, ...]]) -> None:
            for f in files:
                mine = [i for i in items if i[0] == f]
                if mine:
                    t.out(
                        t.abspath(f"~/{proj}/{f}"),
                        *[
                            (
                                f"  {ln}:{col}  {t.c(sev, 'red' if sev == 'error' else 'yellow'):<7}  {msg}  "
                                f"{t.c(rule, 'dim')}"
                            )
                            for _, ln, col, sev, msg, rule in mine
                        ],
                        "",
                    )
            errs = sum(i[3] == "error" for i in items)
            t.out(t.c(f"✖ {len(items)} problems ({errs} errors, {len(items) - errs} warnings)", "bred"))

        show(issues)
        t.cmd(fix)
        left = [i for i in issues if not fixable[i]]
        if left:
            show(left)
        nfix = len(issues) - len(left)
        name = "eslint"
        rendered = [f"{f}:{ln}:{col} {msg} ({rule})" for f, ln, col, _, msg, rule in left]
    res = [command, *dict.fromkeys(i[0] for i in issues), fix]
    succ = (
        [
            success(
                f"{name} --fix fixed {nfix} of {len(issues)} problems",
                f"{nfix} auto-fixed, {len(left)} remaining",
                f"`{command}` had reported {len(issues)} problems",
            )
        ]
        if nfix
        else []
    )
    if not left:
        return t.text(), report(
            f"`{command}` reported {len(issues)} problems; `{fix}` fixed all of them.", succ, [], res
        )
    blk = [
        blocker(
            f"{len(left)} {name} problems need manual fixes: " + "; ".join(rendered),
            "the lint step of CI will fail until they are fixed",
            "developer of the changed files",
            f"fix the listed lines by hand (not auto-fixable), then rerun `{command}`",
        )
    ]
    summary = (
        f"`{command}` reported {len(issues)} problems; `{fix}` fixed {nfix}, leaving {len(left)} that need "
        "manual changes."
    )
    return t.text(), report(summary, succ, blk, res)


def aws_expired_credentials(rng: random.Random) -> tuple[str, Report]:
    """AWS CLI with an expired SSO session: re-login and succeed, or the login cannot complete."""
    t = Term(rng, rng.choice(PROJECTS), shells=ANY)
    profile = rng.choice(["prod-admin", "staging", "data-eng", "sandbox", "default"])
    kind = rng.choice(["artifacts", "backups", "logs", "datalake"])
    bucket = f"{rng.choice(ORGS)}-{kind}-{rng.choice(['prod', 'dev', 'eu'])}"
    outcome = rng.choice(["relogin", "relogin", "denied"])
    ls = f"aws s3 ls s3://{bucket}/ --profile {profile}"
    t.cmd(ls)
    t.out("", t.c("Error when retrieving token from sso: Token has expired and refresh failed", "red"))
    login = f"aws sso login --profile {profile}"
    t.cmd(login)
    code = "-".join("".join(rng.choice(string.ascii_uppercase) for _ in range(4)) for _ in range(2))
    sso = f"https://{rng.choice(ORGS)}.awsapps.com/start"
    t.out(
        "Attempting to automatically open the SSO authorization page in your default browser.",
        (
            "If the browser does not open or you wish to use a different device to authorize this request, open the "
            "following URL:"
        ),
        "",
        f"{sso}/#/device",
        "",
        "Then enter the code:",
        "",
        code,
    )
    t.tick(10, 90)
    res = [ls, f"s3://{bucket}/", login, sso + "/#/device"]
    if outcome == "denied":
        t.out(
            "",
            t.c(
                (
                    "An error occurred (AccessDeniedException) when calling the CreateToken operation: User is not "
                    "authorized"
                ),
                "red",
            ),
        )
        blk = [
            blocker(
                f"SSO login for profile {profile} fails with AccessDeniedException (CreateToken)",
                f"no valid credentials, so s3://{bucket}/ cannot be listed",
                "identity/cloud admin for the AWS organization",
                (
                    f"check that your user is still assigned to the {profile} permission set in IAM Identity Center, "
                    f"then rerun `{login}`"
                ),
            )
        ]
        return t.text(), report(
            f"`{ls}` failed because the SSO token had expired, and `{login}` was denied (AccessDeniedException).",
            [],
            blk,
            res,
        )
    t.out(f"Successfully logged into Start URL: {sso}")
    t.cmd(ls)
    objs = rng.sample(["releases/", "snapshots/", "2024/", "manifest.json", "index.html", "exports/"], 3)
    for o in objs:
        t.out(
            f"                           PRE {o}"
            if o.endswith("/")
            else f"{t.now.strftime('%Y-%m-%d %H:%M:%S')}     {rng.randint(200, 90000)} {o}"
        )
    succ = [
        success(
            f"Renewed the AWS SSO session for profile {profile}",
            f"Successfully logged into Start URL: {sso}",
            "the previous token had expired and refresh failed",
        ),
        success(f"Listed s3://{bucket}/", f"{len(objs)} entries: {', '.join(objs)}", f"profile {profile}"),
    ]
    return t.text(), report(
        (
            f"`{ls}` first failed on an expired SSO token; after `{login}` the listing of s3://{bucket}/ worked "
            f"({len(objs)} entries)."
        ),
        succ,
        [],
        res,
    )
