"""Secret detection and scrubbing for collected Terraform sources and plan JSON.

Every collected repository is hostile and may hold real credentials, so every file's text and every
plan JSON passes through here before anything is written (Parquet rows, sandboxes, datasets).
A secret is replaced in place by a typed placeholder (``REDACTED_<KIND>``), keeping HCL and JSON
valid, and counted. A :class:`Finding` carries kind, path and line only, never the secret, and
nothing here logs a secret.

Detection, cheapest first:

1. A whole-text prefilter (``_MAYBE_SECRET``): text with no long token, no URL and no
   credential-like word cannot hold anything the rules below find and is returned untouched.
   The line-based rules then look only at the lines holding a credential fragment
   (``_candidate_lines``, found in lower-cased text: ~15x faster than an IGNORECASE regex).
2. detect-secrets 1.5 plugins, built once per process under ``default_settings()`` and used
   in-process through ``analyze_string`` only (``analyze_line`` may verify AWS keys over the
   network). Their regexes are the format detectors (AWS, GitHub, GitLab, Slack, Stripe, JWT,
   basic-auth URLs, Azure storage keys, ...); ``KeywordDetector`` runs on candidate lines; the
   high-entropy plugins supply entropy and thresholds. Cheap guards skip the slow plugins when
   their literal can't occur (``_PLUGIN_GUARDS``, ``_LINE_PLUGINS``, ``_Detectors.any_regex``).
3. Our own rules, where detect-secrets falls short for Terraform (each says why below): whole PEM
   blocks, credential-named attributes (``password = "..."``, ``token = "..."``: KeywordDetector
   knows neither ``token`` nor ``access_key`` nor ``credentials``, and flags ``secret_name``),
   variable defaults (``variable "db_password" { default = "..." }``), name/value pairs
   (``{ name = "DB_PASSWORD", value = "..." }``), connection strings, and formats it lacks
   (``github_pat_``, ``AIza``, Terraform Cloud and Vault tokens, Azure SAS signatures).
4. Plan JSON: the same text rules on every string, plus whole-value redaction under
   credential-named keys, under Terraform's own ``*_sensitive`` masks and for sensitive variables.

Hostile input: the regexes are unambiguous or bounded, and block/heredoc ends are found in one
linear pass, so a crafted file costs about a second per MB, never quadratic or exponential time.

Policy (a false positive costs a placeholder, a leak costs a credential):

- Any non-empty literal under a credential-named attribute is redacted, placeholders such as
  ``"changeme"`` included. Never redacted: references and expressions (``var.db_password``,
  ``random_password.db.result``), strings holding a template (``"${var.x}"``, ``"%{...}"``),
  ``true``/``false``/``null``, ARNs, relative key-file paths (``"./key.pem"``, ``"account.json"``),
  and names that describe a secret rather than hold one (``password_length``, ``secret_name``,
  ``token_url``, ``kms_key_id`` ...: :data:`_NON_SECRET_SUFFIXES`).
- Weakly credential-like names (``key``, ``auth``, ``sse_key`` ...) are redacted only when the
  value is high-entropy by detect-secrets' own thresholds; so S3 object keys, tag keys and
  DynamoDB ``hash_key``s stay.
- Entropy alone never redacts: sha256/base64 file hashes (``source_code_hash``, ``etag``), AMI
  ids, resource names and ARNs are kept, since detect-secrets' high-entropy plugins would flag
  them all and the training data needs them.
- A literal found by name (not by format) that looks random (3+ character classes) is also
  redacted wherever else it occurs in the same text, e.g. repeated inside a ``user_data`` script.

Placeholders replace only the secret characters inside a literal; a whole PEM block (BEGIN..END
lines inclusive) becomes one ``REDACTED_PRIVATE_KEY`` line, so later line numbers shift. Findings
give the 1-based line of the secret in the input text (0 for JSON, whose findings carry a JSON
pointer as path). Scrubbing is deterministic and idempotent: placeholders are never detected.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import functools
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString, HexHighEntropyString
from detect_secrets.plugins.keyword import (
    DENYLIST_REGEX,
    QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
    REGEX_BY_FILETYPE,
    KeywordDetector,
)
from detect_secrets.plugins.private_key import PrivateKeyDetector
from detect_secrets.settings import default_settings, get_plugins
from detect_secrets.util.filetype import determine_file_type

logger = logging.getLogger(__name__)

# The closed set of finding kinds, in precedence order: where detections overlap, the merged span
# is redacted once with the first kind listed here.
KINDS: dict[str, str] = {
    "private_key": "PEM (RSA/EC/DSA/OpenSSH/PKCS8/PGP/SSH2) private key block or PuTTY key file",
    "aws_access_key_id": "AWS access key id (AKIA/ASIA/ABIA/ACCA/A3T...)",
    "aws_secret_access_key": "AWS secret access key: 40 chars under an aws or secret_key name",
    "github_token": "GitHub token: ghp_/gho_/ghu_/ghs_/ghr_ and fine-grained github_pat_",
    "gitlab_token": "GitLab token (glpat-, glrt-, ...)",
    "slack_token": "Slack token (xox?-) or incoming-webhook URL",
    "stripe_key": "Stripe live secret or restricted key",
    "openai_key": "OpenAI API key",
    "sendgrid_key": "SendGrid API key",
    "twilio_key": "Twilio account SID or API key",
    "mailchimp_key": "Mailchimp API key",
    "npm_token": "npm auth token (//registry/:_authToken=)",
    "pypi_token": "PyPI upload token",
    "discord_token": "Discord bot token",
    "telegram_token": "Telegram bot token",
    "square_oauth_secret": "Square OAuth secret",
    "artifactory_token": "Artifactory API token or password",
    "ibm_cloud_iam_key": "IBM Cloud IAM key",
    "ibm_cos_hmac_key": "IBM Cloud Object Storage HMAC secret",
    "cloudant_credential": "Cloudant password or API key",
    "softlayer_key": "SoftLayer API key",
    "gcp_api_key": "Google API key (AIza...)",
    "gcp_service_account_key": "GCP service-account key material: private_key_id, or a key file",
    "azure_storage_key": "Azure storage AccountKey in a connection string",
    "azure_sas_token": "Azure SAS signature (sig=...) in a URL or connection string",
    "terraform_cloud_token": "Terraform Cloud/Enterprise API token (*.atlasv1.*)",
    "vault_token": "HashiCorp Vault token (hvs./hvb./hvr.)",
    "jwt": "JSON Web Token",
    "basic_auth_url": "password in a URL's userinfo (scheme://user:password@host)",
    "password": "literal under a password-named attribute or variable, or a connection-string Password=",
    "generic_secret": "literal under another credential name (secret, token, api_key, credentials ...)",
    "high_entropy_string": "high-entropy literal under a weakly credential-like name (key, auth ...)",
    "sensitive_value": "plan JSON value that Terraform itself marks sensitive",
}
_PRIORITY = {kind: i for i, kind in enumerate(KINDS)}

# detect-secrets secret_type -> our kind. AWS maps by value shape (id vs secret) in _plugin_kind.
_DS_KINDS = {
    "AWS Access Key": "aws_access_key_id",
    "Artifactory Credentials": "artifactory_token",
    "Azure Storage Account access key": "azure_storage_key",
    "Basic Auth Credentials": "basic_auth_url",
    "Cloudant Credentials": "cloudant_credential",
    "Discord Bot Token": "discord_token",
    "GitHub Token": "github_token",
    "GitLab Token": "gitlab_token",
    "IBM Cloud IAM Key": "ibm_cloud_iam_key",
    "IBM COS HMAC Credentials": "ibm_cos_hmac_key",
    "JSON Web Token": "jwt",
    "Mailchimp Access Key": "mailchimp_key",
    "NPM tokens": "npm_token",
    "OpenAI Token": "openai_key",
    "PyPI Token": "pypi_token",
    "SendGrid API Key": "sendgrid_key",
    "Slack Token": "slack_token",
    "SoftLayer Credentials": "softlayer_key",
    "Square OAuth Secret": "square_oauth_secret",
    "Stripe Access Key": "stripe_key",
    "Telegram Bot Token": "telegram_token",
    "Twilio API Key": "twilio_key",
}
# Public IPv4 addresses are not secrets, and Terraform is full of them (CIDRs, DNS records).
_DS_IGNORED = {"Public IP (ipv4)"}
# In these plugins the capture group marks a token prefix ("ghp", "glpat"), so the secret is the
# whole match; in every other 1.5 regex plugin with groups, the first group is the secret itself.
_DS_PREFIX_GROUP_PLUGINS = {"GitHubTokenDetector", "GitLabTokenDetector"}

_PLACEHOLDER_ONLY = re.compile(r"\s*(?:REDACTED_[A-Z0-9_]+\s*)+")

# Layer 1: nothing any rule finds can exist in text without one of these.
_MAYBE_SECRET = re.compile(
    r"[A-Za-z0-9+/=_\-]{10,}|://|PRIVATE KEY|PuTTY"
    r"|(?i:pass|pwd|secret|token|cred|key|auth|sas|sig=|psk|bearer|contrase|sensitive)"
)

# The body of a one-line HCL string; a `${...}` may hold quotes. Unambiguous and possessive, so a
# hostile line of unclosed `${` cannot make the regex backtrack exponentially.
_DQ_BODY = r"(?:\\.|[$%]\{[^}\n]*\}|[$%](?!\{)|[^\"\\\n$%])*+"
_HCL_STRING = re.compile(rf'"(?P<body>{_DQ_BODY})"')
_TEMPLATE = re.compile(r"[$%]\{")

# --- credential names -------------------------------------------------------------------------

_PASSWORD_NAME = re.compile(
    r"(?:^|_)(?:password|passwords|passwd|passphrase|pwd|contrasena|contraseña)(?:_|$)|(?:^|_)pass$"
)
_STRONG_NAME = re.compile(
    r"(?:^|_)(?:secret|secrets|token|tokens|credential|credentials|creds|apikey|apitoken|psk|sas"
    r"|privatekey|accesskey|secretkey|bearer)(?:_|$)"
    r"|(?:^|_)(?:api|private|priv|access|auth|account|master|shared|primary|secondary|encryption"
    r"|signing|license|client|hmac|storage|admin|app|service|db|database|subscription|sas)_?keys?(?:_|$)"
    r"|(?:^|_)conn(?:ection)?_?str(?:ing)?s?(?:_|$)"
)
_WEAK_NAME = re.compile(r"(?:^|_)(?:keys?|auth|authorization)(?:_|$)|[a-z]key$")
# Names that describe a secret instead of holding one, judged by their last word.
# fmt: off
_NON_SECRET_SUFFIXES = frozenset({
    "name", "names", "id", "ids", "arn", "arns", "length", "len", "count", "enabled", "enable", "disabled",
    "policy", "policies", "type", "types", "version", "versions", "ttl", "days", "hours", "minutes", "seconds",
    "period", "rotation", "required", "min", "max", "path", "paths", "file", "files", "filename", "prefix",
    "suffix", "mode", "source", "location", "label", "labels", "description", "format", "algorithm", "alg",
    "size", "bits", "url", "urls", "uri", "uris", "endpoint", "endpoints", "header", "parameter", "param",
    "ref", "reference", "store", "expiry", "expiration", "expires", "expire", "date", "time", "timeout",
    "retention", "special", "upper", "lower", "numeric", "number", "complexity", "age", "history", "reuse",
    "field", "attribute", "pattern", "regex", "provider", "method", "scope", "scopes", "audience", "issuer",
    "usage", "spec", "hint", "lifetime", "window", "strength", "validity", "units", "hash", "sha",
    "md", "checksum", "fingerprint", "expression", "selection", "identity", "principal", "role", "pair",
    "region",
})
_NON_SECRET_PREFIXES = frozenset({
    "is", "has", "use", "enable", "disable", "allow", "require", "generate", "create", "manage", "rotate",
    "random", "public",
})
# fmt: on


def _name_tokens(name: str) -> tuple[str, ...]:
    snake = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.strip("\"' "))
    return tuple(t for t in re.split(r"[^a-zñ]+", snake.lower()) if t)  # "password2" -> "password"


@functools.lru_cache(maxsize=8192)
def _name_tier(name: str) -> str | None:
    """'password', 'generic_secret', 'weak' or None for an attribute, key or variable name."""
    tokens = _name_tokens(name)
    if not tokens or tokens[-1] in _NON_SECRET_SUFFIXES or tokens[0] in _NON_SECRET_PREFIXES:
        return None
    if "public" in tokens:  # public keys, public access settings
        return None
    joined = "_".join(tokens)
    if _PASSWORD_NAME.search(joined):
        return "password"
    if _STRONG_NAME.search(joined):
        return "generic_secret"
    if _WEAK_NAME.search(joined):
        return "weak"
    return None


# --- values -----------------------------------------------------------------------------------

_ARN = re.compile(r"arn:[\w-]+:")
_KEY_FILE_PATH = re.compile(r"(?:~|\.{1,2})/\S*|[\w./-]+\.(?:json|pem|key|ppk|pub|crt|cer|p12|pfx|jks|txt|ya?ml)", re.I)
_B64_CHARSET = re.compile(r"[A-Za-z0-9+/=_\-]+")
_HEX_CHARSET = re.compile(r"[0-9a-fA-F]+")
_AWS_SECRET_SHAPE = re.compile(r"[A-Za-z0-9/+]{40}")
_GCP_KEY_ID = re.compile(r"[0-9a-f]{40}")


def _is_literal_secret(value: str) -> bool:
    """A literal that may hold a secret: not empty, not a template, placeholder, bool, ARN or path."""
    v = value.strip()
    if not v or _TEMPLATE.search(v) or _PLACEHOLDER_ONLY.fullmatch(v):
        return False
    if v.lower() in ("true", "false", "null"):
        return False
    return not (_ARN.match(v) or _KEY_FILE_PATH.fullmatch(v))


def _high_entropy(value: str) -> bool:
    """detect-secrets' own entropy test (hex or base64 charset and their default limits)."""
    if len(value) < 16 or not _B64_CHARSET.fullmatch(value):
        return False
    d = _detectors()
    plugin: Base64HighEntropyString | HexHighEntropyString = (
        d.hex_entropy if _HEX_CHARSET.fullmatch(value) else d.b64_entropy
    )
    return plugin.calculate_shannon_entropy(value) > plugin.entropy_limit


def _looks_random(value: str) -> bool:
    """Worth redacting at every occurrence: 8+ chars of at least three character classes."""
    if len(value) < 8 or "\n" in value:
        return False
    classes = (
        any(c.islower() for c in value),
        any(c.isupper() for c in value),
        any(c.isdigit() for c in value),
        any(not c.isalnum() for c in value),
    )
    return sum(classes) >= 3


def _is_gcp_key_blob(value: str) -> bool:
    """A service-account key file inline, as JSON or base64 (``credentials = "ewogICJ0eXBl..."``)."""
    if "service_account" in value:
        return True
    if len(value) < 32 or not _B64_CHARSET.fullmatch(value):
        return False
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=False)
    except (binascii.Error, ValueError):
        return False
    return b"service_account" in decoded


def _kind_for(name: str, value: str, forced: str | None = None) -> str | None:
    """The kind to redact ``value`` under ``name`` with, or None to keep it.

    ``forced`` (a variable marked ``sensitive``) redacts even when the name is not credential-like.
    """
    if not _is_literal_secret(value):
        return None
    if _name_tokens(name) == ("private", "key", "id") and _GCP_KEY_ID.fullmatch(value):
        return "gcp_service_account_key"
    tier = _name_tier(name)
    if tier == "weak":
        tier = "high_entropy_string" if _high_entropy(value) else None
    if tier is None:
        tier = forced
    if tier is None:
        return None
    if _is_gcp_key_blob(value):
        return "gcp_service_account_key"
    tokens = _name_tokens(name)
    if (
        tier == "generic_secret"
        and _AWS_SECRET_SHAPE.fullmatch(value)
        and "secret" in "_".join(tokens)
        and ("key" in "_".join(tokens) or "access" in tokens)
    ):
        return "aws_secret_access_key"
    return tier


# --- detect-secrets plugins, built once per process -------------------------------------------


@dataclass(frozen=True)
class _Detectors:
    regex_plugins: tuple[RegexBasedDetector, ...]
    # all their regexes in one alternation: a single search tells that none can fire on a short
    # text (a JSON string value), ~10x cheaper than asking each plugin
    any_regex: re.Pattern[str]
    keyword: KeywordDetector
    b64_entropy: Base64HighEntropyString
    hex_entropy: HexHighEntropyString
    private_key: PrivateKeyDetector


_DETECTORS: dict[str, _Detectors] = {}
_DETECTORS_LOCK = threading.Lock()


def _detectors() -> _Detectors:
    """Instantiate every built-in detect-secrets plugin once per process.

    ``default_settings()`` swaps detect-secrets' global settings for "all plugins, default
    limits" and restores them on exit; the plugin objects outlive the context and never read
    settings again, because we call only ``analyze_string`` and entropy helpers on them.
    """
    found = _DETECTORS.get("d")
    if found is not None:
        return found
    with _DETECTORS_LOCK:
        if "d" not in _DETECTORS:
            with default_settings():
                plugins = list(get_plugins())
            regex_plugins: list[RegexBasedDetector] = []
            singles: dict[type, Any] = {}
            for plugin in plugins:
                if isinstance(plugin, KeywordDetector | Base64HighEntropyString | HexHighEntropyString):
                    singles[type(plugin)] = plugin
                elif isinstance(plugin, PrivateKeyDetector):
                    singles[PrivateKeyDetector] = plugin  # its match is a header only: see _pem_spans
                elif isinstance(plugin, RegexBasedDetector) and plugin.secret_type not in _DS_IGNORED:
                    regex_plugins.append(plugin)
            missing = {KeywordDetector, Base64HighEntropyString, HexHighEntropyString, PrivateKeyDetector}
            missing -= set(singles)
            if missing:
                names = sorted(t.__name__ for t in missing)
                raise RuntimeError(f"detect-secrets lacks plugins {names}; install detect-secrets>=1.5")
            _DETECTORS["d"] = _Detectors(
                regex_plugins=tuple(regex_plugins),
                any_regex=_union(p for plugin in regex_plugins for p in plugin.denylist),
                keyword=singles[KeywordDetector],
                b64_entropy=singles[Base64HighEntropyString],
                hex_entropy=singles[HexHighEntropyString],
                private_key=singles[PrivateKeyDetector],
            )
            logger.debug("detect-secrets: %d regex plugins loaded", len(regex_plugins))
    return _DETECTORS["d"]


def _union(patterns: Iterable[re.Pattern[str]]) -> re.Pattern[str]:
    """One regex matching wherever any of ``patterns`` matches (each keeps its own flags)."""
    flag_letters = ((re.IGNORECASE, "i"), (re.VERBOSE, "x"), (re.MULTILINE, "m"), (re.DOTALL, "s"))
    parts = []
    for p in patterns:
        letters = "".join(letter for flag, letter in flag_letters if p.flags & flag)
        parts.append(f"(?{letters}:{p.pattern})" if letters else f"(?:{p.pattern})")
    return re.compile("|".join(parts))


# --- detection: spans (start, end, kind) over the input text ------------------------------------

_Span = tuple[int, int, str]

_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_\-+/=]*")
_JWT_CHARS = re.compile(r"[A-Za-z0-9_\-+/=.]*")
_EDGE_JUNK = " \t\r\n\"'=:`"


def _plugin_kind(plugin: RegexBasedDetector, secret: str) -> str:
    if plugin.secret_type == "AWS Access Key" and not re.fullmatch(r"[A-Z0-9]{20}", secret):
        return "aws_secret_access_key"  # the plugin's second regex: aws...key = "<40 chars>"
    return _DS_KINDS.get(plugin.secret_type, "generic_secret")


# Speed: these plugins' regexes (built by build_assignment_regex) try an optional prefix at every
# position and cost ~75% of all plugin time on Terraform; they need a credential keyword or their
# service's name on the same line, so they run on the candidate lines only.
_LINE_PLUGINS = frozenset({"CloudantDetector", "IbmCloudIamDetector", "IbmCosHmacDetector", "SoftlayerDetector"})
_ARTIFACTORY_HINT = re.compile(r"AKC|AP[0-9A-F]")
# Speed: necessary conditions of the next slowest plugins' regexes, checked before running them.
_PLUGIN_GUARDS: dict[str, Callable[[str, str], bool]] = {
    "ArtifactoryDetector": lambda text, low: _ARTIFACTORY_HINT.search(text) is not None,
    "MailchimpDetector": lambda text, low: "-us" in low,
    "SlackDetector": lambda text, low: "xox" in low or "hooks.slack.com" in low,
}


_SHORT_TEXT = 256


def _plugin_spans(text: str, low: str, lines: list[tuple[int, int]], d: _Detectors) -> Iterator[_Span]:
    """Spans of detect-secrets' format detectors.

    A plugin reports secret *values*, not positions, and some report too little (GitHubToken yields
    just "ghp"; JwtToken drops the signature). So each plugin first runs ``analyze_string`` (its own
    validity checks included, one regex pass that doubles as our prefilter), and only on a hit do
    its regexes locate the spans in the whole text; a span is widened to the end of its token.
    """
    if len(text) <= _SHORT_TEXT and d.any_regex.search(text) is None:
        return
    line_text: str | None = None
    for plugin in d.regex_plugins:
        name = type(plugin).__name__
        guard = _PLUGIN_GUARDS.get(name)
        if guard is not None and not guard(text, low):
            continue
        if name in _LINE_PLUGINS:
            if line_text is None:
                line_text = "\n".join(text[start:end] for start, end in lines)
            values = set(plugin.analyze_string(line_text))
        else:
            values = set(plugin.analyze_string(text))
        if not values:
            continue
        whole_match = name in _DS_PREFIX_GROUP_PLUGINS
        for pattern in plugin.denylist:
            for m in pattern.finditer(text):
                if not any(v in m.group(0) for v in values):
                    continue  # filtered out by the plugin (e.g. a JWT that does not decode)
                group = next((g for g in range(1, (pattern.groups or 0) + 1) if m.start(g) >= 0), 0)
                if whole_match:
                    group = 0
                start, end = m.span(group)
                while start < end and text[start] in _EDGE_JUNK:
                    start += 1
                while end > start and text[end - 1] in _EDGE_JUNK:
                    end -= 1
                if text.startswith("AccountKey=", start):
                    start += len("AccountKey=")
                if end <= start:
                    continue
                if group == 0:
                    kind = _plugin_kind(plugin, text[start:end])
                    tail = (_JWT_CHARS if kind == "jwt" else _TOKEN_CHARS).match(text, end)
                    end = tail.end() if tail else end
                else:
                    kind = _plugin_kind(plugin, text[start:end])
                yield start, end, kind


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


# Credential-named assignments: key = "literal" | key: "literal" | key => "literal" | key = <<EOF,
# also wrapped in up to three calls (`password = sensitive("...")`).
# The lookaheads are bounded so that a long minified line costs O(length), not O(length^2).
_CRED_FRAGMENT = r"(?i:pass|pwd|secret|token|cred|key|auth|sas|conn|psk|bearer|contrase)"
_ASSIGN = re.compile(
    r"(?P<key>\"(?=[^\"\n]{0,128}?" + _CRED_FRAGMENT + r")[^\"\n]{1,128}\""
    r"|'(?=[^'\n]{0,128}?" + _CRED_FRAGMENT + r")[^'\n]{1,128}'"
    r"|(?<![\w.\-])(?=[\w.\-]{0,128}?" + _CRED_FRAGMENT + r")[A-Za-z_][\w.\-]{0,127})"
    r"[ \t]*(?:=>|=(?![=>])|:(?![:=]))[ \t]*"
    r"(?:(?:[A-Za-z_]\w{0,30}\([ \t]*){0,3}"  # the first argument of sensitive("..."), base64decode("...")
    r"(?:\"(?P<dq>" + _DQ_BODY + r")\"|'(?P<sq>(?:\\.|[^'\\\n])*+)')"
    r"|<<-?(?P<tag>[A-Za-z_][\w-]*)[ \t]*\r?\n)"
)


@functools.lru_cache(maxsize=256)
def _heredoc_terminator(tag: str) -> re.Pattern[str]:
    return re.compile(rf"^[ \t]*{re.escape(tag)}[ \t]*\r?$", re.M)


class _Heredocs:
    """Heredoc terminators of one text, memoized per tag: searching afresh from each of thousands
    of unterminated ``<<EOF`` in a hostile file would be quadratic."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._last: dict[str, tuple[int, re.Match[str] | None]] = {}

    def terminator(self, tag: str, pos: int) -> re.Match[str] | None:
        cached = self._last.get(tag)
        if cached is not None:
            searched_from, found = cached
            if searched_from <= pos and (found is None or pos <= found.start()):
                return found
        found = _heredoc_terminator(tag).search(self.text, pos)
        self._last[tag] = (pos, found)
        return found

    def body(self, body_start: int, tag: str) -> tuple[int, int]:
        """(start, end) of a heredoc body: first to last body line, without the final newline.

        An unterminated heredoc runs to the end of the text (the file is not valid HCL anyway)."""
        term = self.terminator(tag, body_start)
        end = term.start() if term else len(self.text)
        while end > body_start and self.text[end - 1] in "\r\n":
            end -= 1
        return body_start, end


def _assignment_spans(text: str, lines: list[tuple[int, int]], heredocs: _Heredocs) -> Iterator[_Span]:
    matches = (m for start, end in lines for m in _ASSIGN.finditer(text, start, min(end + 1, len(text))))
    covered = 0  # end of the last heredoc body: assignments inside it are its content
    for m in matches:
        key = m.group("key")
        if m.start() < covered or _name_tier(key) is None:
            continue
        if m.group("tag"):
            start, end = heredocs.body(m.end(), m.group("tag"))
            covered = end
            while start < end and text[start] in " \t":
                start += 1
        else:
            group = "dq" if m.group("dq") is not None else "sq"
            start, end = m.span(group)
        kind = _kind_for(key, text[start:end])
        if kind is not None:
            yield start, end, kind


_KEYWORD_HINT = re.compile(DENYLIST_REGEX, re.I)


def _keyword_spans(text: str, lines: list[tuple[int, int]], path: str, d: _Detectors) -> Iterator[_Span]:
    """detect-secrets' KeywordDetector on the lines that hold one of its keywords.

    It yields values only, so each is located in its line; where the line is a plain
    ``key = "value"`` assignment our Terraform rules have the last word (KeywordDetector flags
    ``secret_name = "app"`` and ``password_length = "16"``; we keep those).
    """
    groups: dict[re.Pattern[str], int] | None = None
    for line_start, line_end in lines:
        hint = _KEYWORD_HINT.search(text, line_start, line_end)
        if hint is None:
            continue
        if groups is None:
            groups = REGEX_BY_FILETYPE.get(determine_file_type(path), QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP)
        line = text[line_start:line_end]
        if groups is QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP and not any(q in line for q in "\"'`"):
            continue  # all of those regexes need a quoted value: skip `password = var.x` cheaply
        for value in d.keyword.analyze_string(line, denylist_regex_to_group=groups):
            idx = line.find(value, hint.start() - line_start)
            idx = line.find(value) if idx < 0 else idx
            if idx < 0 or not value:
                continue
            name = hint.group(0)
            for a in _ASSIGN.finditer(line):
                group = "dq" if a.group("dq") is not None else "sq"
                if a.group(group) is not None and a.start(group) <= idx <= a.end(group):
                    name = a.group("key")
                    break
            kind = _kind_for(name, value)
            if kind is not None:
                yield line_start + idx, line_start + idx + len(value), kind


_VARIABLE = re.compile(r'(?m)^[ \t]*variable[ \t]+"(?P<name>[^"\n]*)"[ \t]*\{')
_DEFAULT = re.compile(r"(?:(?m:^)|\{)[ \t]*default[ \t]*=[ \t]*")
_SENSITIVE = re.compile(r"(?:(?m:^)|[{\s])sensitive[ \t]*=[ \t]*true\b")
_HEREDOC_START = re.compile(r"<<-?([A-Za-z_][\w-]*)[^\n]*\n")
_KEY_FOLLOWS = re.compile(r"[ \t]*[=:]")
_BRACKET_TOKEN = re.compile(r'"(?:\\.|[^"\\\n])*+"|#|//|/\*|<<-?(?P<tag>[A-Za-z_][\w-]*)[^\n]*\n|[{}\[\]()]')
_PAIRS = {"}": "{", "]": "[", ")": "("}


def _bracket_pairs(text: str, heredocs: _Heredocs) -> dict[int, int]:
    """Offset of each opening bracket -> offset after its closing one, skipping strings, comments
    and heredocs; one linear pass (block ends found per block would be quadratic on hostile input).
    Unclosed brackets are absent."""
    pairs: dict[int, int] = {}
    stack: list[tuple[str, int]] = []
    pos = 0
    while (m := _BRACKET_TOKEN.search(text, pos)) is not None:
        tok, pos = m.group(0), m.end()
        if tok in ("#", "//"):
            nl = text.find("\n", pos)
            pos = len(text) if nl < 0 else nl
        elif tok == "/*":
            close = text.find("*/", pos)
            pos = len(text) if close < 0 else close + 2
        elif m.group("tag"):
            term = heredocs.terminator(m.group("tag"), pos)
            pos = len(text) if term is None else term.end()
        elif tok in "{[(":
            stack.append((tok, m.start()))
        elif tok in _PAIRS and stack and stack[-1][0] == _PAIRS[tok]:
            pairs[stack.pop()[1]] = pos
    return pairs


def _variable_default_spans(text: str, heredocs: _Heredocs) -> Iterator[_Span]:
    """Literals in the default of a credential-named or ``sensitive = true`` variable.

    detect-secrets cannot see these: the secret sits under ``default``, the name in the block label.
    """
    if "variable" not in text:
        return
    pairs: dict[int, int] | None = None
    blocks = list(_VARIABLE.finditer(text))
    for i, v in enumerate(blocks):
        name = v.group("name")
        tier = _name_tier(name)
        if tier is None and "sensitive" not in text:
            continue
        pairs = _bracket_pairs(text, heredocs) if pairs is None else pairs
        # an unclosed block (invalid HCL) ends where the next one starts: linear on hostile input
        block_end = pairs.get(v.end() - 1, blocks[i + 1].start() if i + 1 < len(blocks) else len(text))
        sensitive = tier in (None, "weak") and _SENSITIVE.search(text, v.end(), block_end) is not None
        if tier is None and not sensitive:
            continue
        forced = ("password" if tier == "password" else "generic_secret") if sensitive else None
        for d in _DEFAULT.finditer(text, v.end() - 1, block_end):  # also `default` inside `type`
            yield from _default_value_spans(
                text, d.end(), block_end, name=name, forced=forced, pairs=pairs, heredocs=heredocs
            )


def _default_value_spans(
    text: str, vstart: int, block_end: int, *, name: str, forced: str | None, pairs: dict[int, int], heredocs: _Heredocs
) -> Iterator[_Span]:
    """The literals of one ``default = <value>``: a string, a heredoc, or strings in a map/list."""
    if vstart >= block_end:
        return
    if text.startswith("<<", vstart):
        tag = _HEREDOC_START.match(text, vstart)
        if tag:
            start, end = heredocs.body(tag.end(), tag.group(1))
            kind = _kind_for(name, text[start:end], forced)
            if kind:
                yield start, end, kind
        return
    if text[vstart] == '"':
        region_end = text.find("\n", vstart)
        region_end = len(text) if region_end < 0 else region_end
    elif text[vstart] in "{[":
        region_end = pairs.get(vstart, block_end)
    else:
        return  # null, numbers, bools, expressions
    for s in _HCL_STRING.finditer(text, vstart, region_end):
        if _KEY_FOLLOWS.match(text, s.end()):
            continue  # an object key, not a value
        kind = _kind_for(name, s.group("body"), forced)
        if kind:
            yield s.start("body"), s.end("body"), kind


_NAME_ATTR = re.compile(r"(?<![\w.\-])[\"']?name[\"']?[ \t]*[=:][ \t]*(?P<q>[\"'])(?P<n>[^\"'\n]{1,200})(?P=q)")
_VALUE_ATTR = re.compile(r"(?<![\w.\-])[\"']?value[\"']?[ \t]*[=:][ \t]*\"(?P<val>" + _DQ_BODY + r")\"")


def _name_value_spans(text: str) -> Iterator[_Span]:
    """``{ name = "DB_PASSWORD", value = "..." }``: container env vars, SSM parameters, app settings."""
    if "value" not in text:
        return
    for m in _NAME_ATTR.finditer(text):
        if _name_tier(m.group("n")) is None:
            continue
        lo = text.rfind("{", max(0, m.start() - 500), m.start())
        lo = max(0, m.start() - 500) if lo < 0 else lo
        hi = text.find("}", m.end(), m.end() + 500)
        hi = min(len(text), m.end() + 500) if hi < 0 else hi
        for v in _VALUE_ATTR.finditer(text, lo, hi):
            kind = _kind_for(m.group("n"), v.group("val"))
            if kind:
                yield v.start("val"), v.end("val"), kind


_MAX_REPEATED_VALUES = 64  # bounds the cost on hostile files with thousands of literals


def _repeated_value_spans(text: str, context: list[_Span]) -> Iterator[_Span]:
    """Other occurrences of random-looking literals that were found by name, not by format."""
    done: set[str] = set()
    for start, end, kind in context:
        value = text[start:end]
        if value in done or not _looks_random(value):
            continue
        if len(done) >= _MAX_REPEATED_VALUES:
            break
        done.add(value)
        pos = text.find(value)
        while pos >= 0:
            if pos != start:
                yield pos, pos + len(value), kind
            pos = text.find(value, pos + len(value))


# Every keyword the line-based rules and plugins need (lower case): our credential-name fragments,
# KeywordDetector's DENYLIST words, and the keywords/domains of _LINE_PLUGINS.
_FRAGMENTS = re.compile(
    "pass|pwd|pw|secret|token|cred|key|auth|sas|conn|psk|bearer|contrase|cloudant|softlayer|sensitive"
)


def _candidate_lines(low: str) -> list[tuple[int, int]]:
    """(start, end) of the lines holding a credential fragment; searching lower-cased text with a
    case-sensitive regex is ~15x faster than an IGNORECASE one."""
    lines: list[tuple[int, int]] = []
    for m in _FRAGMENTS.finditer(low):
        if lines and m.start() < lines[-1][1]:
            continue
        end = low.find("\n", m.start())
        lines.append((low.rfind("\n", 0, m.start()) + 1, len(low) if end < 0 else end))
    return lines


def _detect(text: str, path: str) -> list[_Span]:
    d = _detectors()
    # one char per char, so offsets agree with text (non-ASCII lowercasing can change lengths)
    low = (text if text.isascii() else text.encode("ascii", "replace").decode("ascii")).lower()
    lines = _candidate_lines(low)
    heredocs = _Heredocs(text)
    spans: list[_Span] = [*_pem_spans(text, d), *_plugin_spans(text, low, lines, d), *_own_format_spans(text, low)]
    context = [
        *_assignment_spans(text, lines, heredocs),
        *_keyword_spans(text, lines, path, d),
        *_variable_default_spans(text, heredocs),
        *_name_value_spans(text),
    ]
    spans += context
    spans += _repeated_value_spans(text, context)
    return [s for s in spans if s[1] > s[0] and not _PLACEHOLDER_ONLY.fullmatch(text[s[0] : s[1]])]


def _merge(spans: list[_Span]) -> list[_Span]:
    """Union overlapping spans; each merged span takes the highest-precedence kind."""
    merged: list[_Span] = []
    for start, end, kind in sorted(spans):
        if merged and start < merged[-1][1]:
            p_start, p_end, p_kind = merged[-1]
            best = p_kind if _PRIORITY[p_kind] <= _PRIORITY[kind] else kind
            merged[-1] = (p_start, max(p_end, end), best)
        else:
            merged.append((start, end, kind))
    return merged


def _line_of(text: str) -> Callable[[int], int]:
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    return lambda offset: bisect.bisect_right(starts, offset)


# --- public API -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One redacted secret: its kind (a key of KINDS), file path or JSON pointer, 1-based line (0 in JSON)."""

    kind: str
    path: str
    line: int


def placeholder(kind: str) -> str:
    """The deterministic, secret-free replacement for a secret of ``kind``: ``REDACTED_<KIND>``."""
    if kind not in KINDS:
        raise ValueError(f"unknown secret kind {kind!r}: use one of secrets.KINDS ({', '.join(KINDS)})")
    return f"REDACTED_{kind.upper()}"


def scrub_text(text: str, path: str = "") -> tuple[str, list[Finding]]:
    """Replace every secret in a file's text by its placeholder; return the text and the findings."""
    if not text or not _MAYBE_SECRET.search(text):
        return text, []
    spans = _merge(_detect(text, path))
    if not spans:
        return text, []
    line_of = _line_of(text)
    pieces: list[str] = []
    findings: list[Finding] = []
    pos = 0
    for start, end, kind in spans:
        pieces += (text[pos:start], placeholder(kind))
        findings.append(Finding(kind=kind, path=path, line=line_of(start)))
        pos = end
    pieces.append(text[pos:])
    logger.debug("redacted %d secret(s) in %s: %s", len(findings), path or "<text>", count_by_kind(findings))
    return "".join(pieces), findings


def scrub_files(files: Sequence[Mapping[str, str]]) -> tuple[list[dict[str, str]], list[Finding]]:
    """Scrub ``{"path", "content"}`` file records; return scrubbed copies (same order) and all findings."""
    out: list[dict[str, str]] = []
    findings: list[Finding] = []
    for i, record in enumerate(files):
        path, content = record.get("path"), record.get("content")
        if not isinstance(path, str) or not isinstance(content, str):
            raise TypeError(
                f"files[{i}] must be a mapping with str 'path' and 'content' (got keys {sorted(record)}); "
                "decode file bytes to str before scrubbing"
            )
        scrubbed, found = scrub_text(content, path)
        out.append({**record, "content": scrubbed})
        findings += found
    return out, findings


# Plan JSON: value key -> the key of its sensitivity mask (terraform show -json).
_MASK_PAIRS = {"after": "after_sensitive", "before": "before_sensitive", "values": "sensitive_values"}
# Keys under a credential-named key that describe it rather than hold it.
_META_KEYS = frozenset({"description", "type", "sensitive", "nullable", "references", "ephemeral"})


def _pointer(parent: str, key: object) -> str:
    return f"{parent}/{str(key).replace('~', '~0').replace('/', '~1')}"


def _mask_child(mask: Any, key: object) -> Any:
    if mask is True:
        return True
    if isinstance(mask, dict):
        return mask.get(key)
    if isinstance(mask, list) and isinstance(key, int) and key < len(mask):
        return mask[key]
    return None


class _JsonScrubber:
    """One walk over a decoded JSON value; collects findings with JSON-pointer paths."""

    def __init__(self, root: Any, root_path: str) -> None:
        self.findings: list[Finding] = []
        self.root_path = root_path
        self.sensitive_variables = self._sensitive_variables(root)

    @staticmethod
    def _sensitive_variables(root: Any) -> frozenset[str]:
        """Root-module variables declared ``sensitive = true`` (their values sit in ``variables``)."""
        try:
            declared = root["configuration"]["root_module"]["variables"]
            return frozenset(k for k, v in declared.items() if isinstance(v, dict) and v.get("sensitive") is True)
        except (KeyError, TypeError, AttributeError):
            return frozenset()

    def walk(self, value: Any, ptr: str, name: str | None, sensitive: bool, mask: Any) -> Any:
        sensitive = sensitive or mask is True
        if isinstance(value, str):
            return self._string(value, ptr, name, sensitive)
        if isinstance(value, list):
            return [self.walk(v, _pointer(ptr, i), name, sensitive, _mask_child(mask, i)) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return self._dict(value, ptr, name, sensitive, mask)
        return value

    def _dict(self, value: dict[Any, Any], ptr: str, name: str | None, sensitive: bool, mask: Any) -> dict[Any, Any]:
        masks = {k: value.get(m) for k, m in _MASK_PAIRS.items() if k in value}
        holds_sensitive = value.get("sensitive") is True
        pair_name = value.get("name")
        pair_name = pair_name if isinstance(pair_name, str) and _name_tier(pair_name) else None
        at_variables = ptr == _pointer(self.root_path, "variables")
        out: dict[Any, Any] = {}
        for key, child in value.items():
            new_key = key
            if isinstance(key, str):
                new_key, found = scrub_text(key, ptr)
                self.findings += [Finding(f.kind, ptr, 0) for f in found]
                base, n = new_key, 2
                while new_key in out:  # two keys that scrub to the same placeholder
                    new_key, n = f"{base}_{n}", n + 1
            child_name = name if key not in _META_KEYS else None
            if isinstance(key, str) and _name_tier(key) is not None:
                child_name = key
            if key == "value" and pair_name:
                child_name = pair_name
            child_sensitive = (
                sensitive
                or (holds_sensitive and key in ("value", "default"))
                or (at_variables and key in self.sensitive_variables)
            )
            child_mask = masks.get(key) if key in masks else _mask_child(mask, key)
            out[new_key] = self.walk(child, _pointer(ptr, new_key), child_name, child_sensitive, child_mask)
        return out

    def _string(self, value: str, ptr: str, name: str | None, sensitive: bool) -> str:
        scrubbed, found = scrub_text(value, ptr)
        kind = _kind_for(name, value) if name is not None else None
        if kind is None and sensitive and value.strip() and not _PLACEHOLDER_ONLY.fullmatch(value):
            kind = "sensitive_value"
        if kind is not None:
            kind = min([kind, *(f.kind for f in found)], key=_PRIORITY.__getitem__)
            self.findings.append(Finding(kind, ptr, 0))
            return placeholder(kind)
        self.findings += [Finding(f.kind, ptr, 0) for f in found]
        return scrubbed


def scrub_json(obj: Any, path: str = "") -> tuple[Any, list[Finding]]:
    """Scrub a decoded JSON value (a ``terraform show -json`` plan) into a new object.

    Strings go through the text detectors; strings under credential-named keys, under keys that
    Terraform's ``*_sensitive`` masks mark, and the values of sensitive root variables are
    replaced whole. Findings carry a JSON pointer (prefixed by ``path``) and line 0.
    """
    scrubber = _JsonScrubber(obj, path)
    result = scrubber.walk(obj, path, None, False, None)
    return result, scrubber.findings


def count_by_kind(findings: Iterable[Finding]) -> dict[str, int]:
    """Finding counts per kind, sorted by kind: the ``secrets_found`` stats of a row or a run."""
    return dict(sorted(Counter(f.kind for f in findings).items()))
