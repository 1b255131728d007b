"""Credential names and values: which names hold secrets, which literals may be one, and of what kind."""

from __future__ import annotations

import base64
import binascii
import functools
import re

from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString, HexHighEntropyString

from pipelines.collect.secrets.kinds import _PLACEHOLDER_ONLY
from pipelines.collect.secrets.plugins import _detectors

_TEMPLATE = re.compile(r"[$%]\{")

_PASSWORD_NAME = re.compile(
    r"(?:^|_)(?:pg)?(?:password|passwords|passwd|passphrase|pwd|contrasena|contraseña)(?:_|$)|(?:^|_)pass$"
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
    "region", "stdin", "prompt",
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
