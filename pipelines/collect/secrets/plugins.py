"""detect-secrets 1.5, used in-process: its format plugins built once per process, their hits as spans.

Only ``analyze_string`` and the entropy helpers are called (``analyze_line`` may verify AWS keys over
the network). Cheap guards skip the slow plugins when their literal cannot occur.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString, HexHighEntropyString
from detect_secrets.plugins.keyword import KeywordDetector
from detect_secrets.plugins.private_key import PrivateKeyDetector
from detect_secrets.settings import default_settings, get_plugins

from pipelines.collect.secrets.kinds import _Span

logger = logging.getLogger(__name__)

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
    # these two are quadratic on a long line of "//" or "://" (`.+` / `[^...]+` before a literal)
    "NpmDetector": lambda text, low: "_authtoken" in low,
    "BasicAuthDetector": lambda text, low: "@" in text,
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
