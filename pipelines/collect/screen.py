"""Safety screening before terraform ever sees a workspace (ARCHITECTURE.md, security model).

``terraform init`` fetches module sources and backends; ``plan`` runs providers, reads data sources
(``external`` runs any program, ``http`` reaches the network, ``terraform_remote_state`` reads state from
elsewhere) and evaluates file functions. A workspace is blocked — never run — when it uses any of these.
Providers outside the allowlist are not blocked: they are routed to the static planner.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from pipelines.collect.analyze import ParsedWorkspace, blocks, typed_blocks

BLOCKED_DATA_SOURCES = ("external", "http", "terraform_remote_state")
# File functions may only read files inside the workspace: an absolute path, `~`, or `..` that climbs
# out could put host files (e.g. /proc/self/environ) into the plan.
FILE_FUNCTIONS = re.compile(
    r"\b(file|filebase64|filebase64sha256|filebase64sha512|fileexists|filemd5|filesha1|filesha256|filesha512"
    r"|fileset|templatefile|pathexpand|abspath)\s*\(\s*\"?([^,)\"]*)"
)


@dataclass
class Screen:
    blocked: list[str] = field(default_factory=list)  # reasons; non-empty → never run terraform
    providers_outside: list[str] = field(default_factory=list)  # → static planner

    @property
    def status(self) -> str:
        return "blocked" if self.blocked else "ok"


def _escapes(arg: str) -> bool:
    arg = arg.strip().strip('"')
    if arg.startswith(("/", "~", "\\")) or re.match(r"^[A-Za-z]:[\\/]", arg):
        return True
    if "pathexpand" in arg or "abspath" in arg:
        return True
    # `${path.module}/../../x` or a literal `../x`: count the climb against the workspace depth
    return ".." in arg.split("/")


def screen(
    parsed: ParsedWorkspace,
    files: Sequence[Mapping[str, str]],
    providers: Collection[str],
    allowed_providers: Collection[str],
    history: bool = False,
) -> Screen:
    """Reasons to block the workspace, and the providers that keep it from the real planner."""
    s = Screen()
    docs = parsed.docs
    for path, type_, name, _b in typed_blocks(docs, "data"):
        if type_ in BLOCKED_DATA_SOURCES:
            s.blocked.append(f"data_source_{type_}: {path} data.{type_}.{name} would run at plan time")
    for path, name, body in blocks(docs, "module"):
        src = body.get("source") if isinstance(body, dict) else None
        if not isinstance(src, str) or not src.startswith(("./", "../")):
            s.blocked.append(f"remote_module: {path} module.{name} source {str(src)[:80]!r} would be fetched by init")
    for path, doc in docs.items():
        for tf in doc.get("terraform", []) or []:
            if not isinstance(tf, dict):
                continue
            if tf.get("backend"):
                kinds = [k for b in tf["backend"] for k in (b or {})]
                s.blocked.append(f"backend: {path} declares backend {kinds} (state lives elsewhere)")
            if tf.get("cloud"):
                s.blocked.append(f"cloud: {path} declares a terraform cloud block")
    for f in files:
        if not f["path"].endswith((".tf", ".tf.json")):
            continue
        for m in FILE_FUNCTIONS.finditer(f["content"]):
            func, arg = m.group(1), m.group(2)
            if func in ("pathexpand", "abspath") or _escapes(arg):
                s.blocked.append(f"file_function: {f['path']} {func}({arg.strip()[:60]}) reads outside the workspace")
    if history:
        for path, type_, name, body in typed_blocks(docs, "resource"):
            if isinstance(body, dict) and "provisioner" in body:
                s.blocked.append(f"provisioner: {path} {type_}.{name} would run at apply (history mode)")
    s.providers_outside = sorted(set(providers) - set(allowed_providers))
    s.blocked = sorted(set(s.blocked))
    return s
