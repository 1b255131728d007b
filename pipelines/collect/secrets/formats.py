"""Formats detect-secrets lacks or gets wrong: token shapes, PEM blocks, URL credentials, Authorization headers.

Each rule says why it exists; every regex is unambiguous or bounded (linear on hostile input).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import re
from collections.abc import Iterator

from pipelines.collect.secrets.kinds import _PLACEHOLDER_ONLY, _Span
from pipelines.collect.secrets.plugins import _Detectors
from pipelines.collect.secrets.values import _TEMPLATE, _high_entropy, _looks_random

# Formats detect-secrets 1.5 does not know: (kind, pattern, group holding the secret, and literal
# hints - the pattern runs only if one occurs in the lower-cased text, for speed).
_OWN_FORMATS: tuple[tuple[str, re.Pattern[str], int, tuple[str, ...]], ...] = (
    # fine-grained GitHub PATs; detect-secrets only knows the classic ghp_/gho_/ghu_/ghs_/ghr_
    ("github_token", re.compile(r"github_pat_[A-Za-z0-9_]{22,255}"), 0, ("github_pat_",)),
    # Google API keys: detect-secrets has no GCP plugin
    ("gcp_api_key", re.compile(r"AIza[0-9A-Za-z_\-]{35}"), 0, ("aiza",)),
    # the private_key_id of a service-account key file (the key itself is caught as a PEM)
    (
        "gcp_service_account_key",
        re.compile(r"private_key_id\\?[\"']?\s*[:=]\s*\\?[\"']([0-9a-f]{40})"),
        1,
        ("private_key_id",),
    ),
    # Terraform Cloud / Enterprise tokens (provider "tfe", credentials blocks in .terraformrc)
    ("terraform_cloud_token", re.compile(r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_\-=]{60,}"), 0, (".atlasv1.",)),
    # HashiCorp Vault service/batch/recovery tokens (provider "vault" token = ...)
    ("vault_token", re.compile(r"\bhv[sbr]\.[A-Za-z0-9_\-]{24,}"), 0, ("hvs.", "hvb.", "hvr.")),
    # Azure SAS signatures in URLs and connection strings (azurerm storage, function app settings)
    ("azure_sas_token", re.compile(r"[?&;]sig=([A-Za-z0-9%+/=]{16,})"), 1, ("sig=",)),
    # connection strings (ADO.NET, JDBC, libpq): Password=...; AccountKey=... of any length
    # (detect-secrets wants exactly 88 chars); see _in_string for the whitespace-separated form
    (
        "password",
        re.compile(r"(?i)(?:^|[;?&\"'\s])(?:password|pwd|passwd)=([^;&\"'\s]+)"),
        1,
        ("password=", "pwd=", "passwd="),
    ),
    ("azure_storage_key", re.compile(r"(?i)(?:^|[;\"'\s])AccountKey=([^;&\"'\s]+)"), 1, ("accountkey=",)),
    # Azure AD (Entra ID) client secrets: 3 chars, a digit, "Q~", then 31-34 chars (the 2021+ shape);
    # detect-secrets has no Azure AD plugin, and the value often sits under a neutral name
    (
        "azure_client_secret",
        re.compile(r"(?<![\w.~\-])[A-Za-z0-9_.\-]{3}[0-9]Q~[A-Za-z0-9_.~\-]{31,34}(?![\w.~\-])"),
        0,
        ("q~",),
    ),
    # Slack app-level and refresh tokens, which detect-secrets' SlackDetector (xox[abposr]-) misses
    ("slack_token", re.compile(r"\bxapp-\d-[A-Za-z0-9]+-\d+-[A-Za-z0-9]+"), 0, ("xapp-",)),
    ("slack_token", re.compile(r"\bxox[a-z](?:\.xox[a-z])?-\d-[A-Za-z0-9\-]{20,}"), 0, ("xox",)),
    # Slack workflow/trigger webhooks (the plugin knows only /services/T.../B.../...)
    (
        "slack_token",
        re.compile(r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/\-]{16,}"),
        0,
        ("hooks.slack.com",),
    ),
    ("generic_secret", re.compile(r"(?i)(?:^|[;\"'\s])SharedAccessKey=([^;&\"'\s]+)"), 1, ("sharedaccesskey=",)),
)


def _in_string(text: str, pos: int) -> bool:
    """Whether ``pos`` lies inside a double-quoted literal on its line (odd count of quotes before)."""
    line_start = text.rfind("\n", 0, pos) + 1
    segment = text[line_start:pos].replace("\\\\", "").replace('\\"', "")
    return segment.count('"') % 2 == 1


_OWN_HINTS = re.compile("|".join(re.escape(h) for *_, hints in _OWN_FORMATS for h in hints))


def _own_format_spans(text: str, low: str) -> Iterator[_Span]:
    if _OWN_HINTS.search(low) is None:
        return
    for kind, pattern, group, hints in _OWN_FORMATS:
        if not any(h in low for h in hints):
            continue
        for m in pattern.finditer(text):
            if group and _TEMPLATE.match(m.group(group)):
                continue  # Password=${var.db_password}
            if group and text[m.start()].isspace() and not _in_string(text, m.start()):
                continue  # HCL `password=var.x` outside a string is an attribute, not a connection string
            yield m.start(group), m.end(group), kind


# PEM blocks: detect-secrets' PrivateKeyDetector matches only the header ("BEGIN RSA PRIVATE
# KEY"), misses "BEGIN ENCRYPTED PRIVATE KEY" and PuTTY v3, and reports no span; we redact the
# whole block, BEGIN..END inclusive, whether on real lines (heredocs) or with \n escapes. Its
# headers still count: any header not inside a paired block is redacted with its key material.
_PEM_BEGIN = re.compile(r"-{4,5} ?BEGIN (?P<label>(?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?) ?-{4,5}")
_PEM_END = re.compile(r"-{4,5} ?END (?P<label>(?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?) ?-{4,5}")
_PEM_MAX_CHARS = 32768  # an 8192-bit RSA key is ~6.5 KB; PGP blocks run larger
_KEY_HEADER = re.compile(r"-{0,5} ?BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?|PuTTY-User-Key-File-\d")
_KEY_MATERIAL_LINE = re.compile(
    r"[ \t]*(?:[A-Za-z0-9+/=]{16,}|[A-Za-z][\w-]*:[ \t].*|-{4,5} ?END [A-Z0-9 ]+ ?-{4,5})[ \t]*\r?"
)


def _pem_spans(text: str, d: _Detectors) -> list[_Span]:
    """BEGIN..END blocks, paired with the nearest END after each BEGIN in one linear pass."""
    if "PRIVATE KEY" not in text and "PuTTY" not in text:
        return []
    headers = {_header_start(text, m.start()) for m in _KEY_HEADER.finditer(text)}
    headers |= {_header_start(text, m.start()) for p in d.private_key.denylist for m in p.finditer(text)}
    ends = list(_PEM_END.finditer(text))
    end_starts = [m.start() for m in ends]
    spans: list[_Span] = []
    covered = 0
    for start in sorted(headers):
        if start < covered:
            continue
        begin = _PEM_BEGIN.match(text, start)
        i = bisect.bisect_left(end_starts, begin.end()) if begin else len(ends)
        if (
            begin
            and i < len(ends)
            and ends[i].group("label") == begin.group("label")
            and ends[i].start() - begin.end() <= _PEM_MAX_CHARS
        ):
            span: _Span = (start, ends[i].end(), "private_key")
        else:
            span = _dangling_key_span(text, start)
        spans.append(span)
        covered = span[1]
    return spans


def _header_start(text: str, pos: int) -> int:
    """Back up from a header match over the dashes (and one space: SSH2's "---- BEGIN") before it."""
    if text[pos - 1 : pos] == " " and text[pos - 2 : pos - 1] == "-":
        pos -= 1
    while text[pos - 1 : pos] == "-":
        pos -= 1
    return pos


def _dangling_key_span(text: str, pos: int) -> _Span:
    """A key header without its matching END: redact the header and the key material after it."""
    start = pos
    line_end = text.find("\n", pos)
    line_end = len(text) if line_end < 0 else line_end
    quote = re.compile(r'(?<!\\)["\']').search(text, pos, line_end)
    if quote:  # an escaped one-line string: "-----BEGIN ...\nMIIE...": up to the closing quote
        return start, quote.start(), "private_key"
    end = line_end
    while end < len(text):
        nxt = text.find("\n", end + 1)
        nxt = len(text) if nxt < 0 else nxt
        line = text[end + 1 : nxt]
        if _KEY_MATERIAL_LINE.fullmatch(line):
            end = nxt
            continue
        if not line.strip():  # a blank line inside the block (after PEM headers) continues it
            after = text.find("\n", nxt + 1)
            after = len(text) if after < 0 else after
            if nxt < len(text) and _KEY_MATERIAL_LINE.fullmatch(text[nxt + 1 : after]):
                end = after
                continue
        break
    return start, end, "private_key"


# --- credentials in URLs ------------------------------------------------------------------------
# detect-secrets' BasicAuthDetector rejects passwords holding any of !$&'()*+,;= (RFC 3986 sub-delims),
# an empty user (redis://:pw@host) and a token as the user (https://<token>@github.com/...). Here the
# userinfo is everything between "://" and the last "@" before the path, so a raw "@", "#", "?", "&", "$"
# or "!" in the password still lies inside it; percent-encoded ones (%40) are ordinary characters.
# Not covered: a raw "/" in the password (it reads as the start of the path).
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]{0,30}://")
_URL_END = re.compile(r"[\s\"'`<>\\]")
_URL_USER = re.compile(r"[^\s:/?#\[\]@]*")
_HOST_START = re.compile(r"[A-Za-z0-9\[_]")
_PORT = re.compile(r"\d{1,5}(?:[?#].*)?")
_MASK = re.compile(r"[*•xX.\-_#]{3,}|\*+")
_MAX_AUTHORITY = 2048  # chars scanned after "://": bounds the cost of a hostile line of URLs


def _url_password_ok(pw: str) -> bool:
    """A URL password worth redacting: not empty, a template, a shell variable, a port or a mask."""
    return bool(pw) and not (
        _TEMPLATE.search(pw)
        or "{{" in pw
        or pw.startswith("$")
        or _PLACEHOLDER_ONLY.fullmatch(pw)
        or _PORT.fullmatch(pw)
        or _MASK.fullmatch(pw)
    )


def _url_user_is_token(user: str) -> bool:
    """A URL user that is a credential itself (an opaque token), not a login name like ``git``."""
    if _TEMPLATE.search(user) or user.startswith("$") or _PLACEHOLDER_ONLY.fullmatch(user):
        return False
    return _high_entropy(user) or (len(user) >= 20 and _looks_random(user))


def _url_credential_spans(text: str) -> Iterator[_Span]:
    """Passwords (and tokens used as the user) in ``scheme://userinfo@host`` URLs."""
    if "://" not in text or "@" not in text:
        return
    for m in _URL_SCHEME.finditer(text):
        start = m.end()
        limit = min(len(text), start + _MAX_AUTHORITY)
        stop = _URL_END.search(text, start, limit)
        end = limit if stop is None else stop.start()
        slash = text.find("/", start, end)
        at = text.rfind("@", start, end if slash < 0 else slash)
        if at < 0 or not _HOST_START.match(text, at + 1):
            continue
        user = _URL_USER.match(text, start, at)
        assert user is not None  # the pattern matches the empty string
        if user.end() < at and text[user.end()] == ":":
            if _url_password_ok(text[user.end() + 1 : at]):
                yield user.end() + 1, at, "basic_auth_url"
        elif user.end() == at and _url_user_is_token(text[start:at]):
            yield start, at, "basic_auth_url"


# --- HTTP Authorization headers ---------------------------------------------------------------
# `Authorization = "Bearer <opaque>"` in header maps (HCL, JSON), curl -H, and -v traces: the name is
# only weakly credential-like and the value holds a space, so neither the name rules nor the
# entropy test see it. "Bearer <credential>" is specific enough anywhere; "Basic" and "Token" are
# common words, so they count only on a line that names an Authorization header.
_AUTH_SCHEME = re.compile(r"(?i)\b(?P<scheme>bearer|basic|token)[ \t]+(?P<cred>[A-Za-z0-9\-._~+/]+=*)")
_AUTHORIZATION = re.compile(r"(?i)authori[sz]ation")
_B64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


def _opaque(value: str) -> bool:
    """A credential rather than a word: 8+ chars with a digit, inner capitals or base64 punctuation."""
    if len(value) < 8 or _PLACEHOLDER_ONLY.fullmatch(value):
        return False
    return (
        any(c.isdigit() for c in value)
        or (any(c.isupper() for c in value[1:]) and any(c.islower() for c in value))
        or any(c in "+/=~" for c in value)
    )


def _basic_credential(value: str) -> bool:
    """base64 of ``user:password``, or at least an opaque value."""
    if _B64.fullmatch(value) and len(value) >= 8:
        try:
            decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        if b":" in decoded:
            return True
    return _opaque(value)


def _authorization_spans(text: str, lines: list[tuple[int, int]]) -> Iterator[_Span]:
    """Credentials after an auth scheme; ``lines`` are the candidate lines (they hold "auth"/"bearer"/"token")."""
    for line_start, line_end in lines:
        header = _AUTHORIZATION.search(text, line_start, line_end)
        for m in _AUTH_SCHEME.finditer(text, line_start, line_end):
            scheme, cred = m.group("scheme").lower(), m.group("cred").rstrip(".,;:")
            if scheme != "bearer" and (header is None or header.start() > m.start()):
                continue
            if text.startswith(("${", "%{", "{{"), m.end("cred")):
                continue  # the value goes on as a template: "Bearer ab${var.x}"
            ok = _basic_credential(cred) if scheme == "basic" else _opaque(cred)
            if ok:
                yield m.start("cred"), m.start("cred") + len(cred), "authorization_header"
