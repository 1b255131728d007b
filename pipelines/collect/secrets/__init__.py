"""Secret detection and scrubbing for collected sources, plan JSON, source URLs and dataset messages.

Every collected repository is hostile and may hold real credentials, so every file's text, every
plan JSON, every source URL and every dataset message passes through here before anything is written
(Parquet rows, sandboxes, datasets, logs). A secret is replaced in place by a typed placeholder
(``REDACTED_<KIND>``), keeping HCL and JSON valid, and counted. A :class:`Finding` carries kind, path
and line only, never the secret, and nothing here logs a secret.

One module per concern:

- :mod:`.kinds`: the closed set of kinds (precedence order), :class:`Finding`, :func:`placeholder`.
- :mod:`.values`: which names hold secrets (``password``, ``token``, ``client_secret`` ...) and which
  literals may be one (not references, templates, ARNs, key-file paths); the kind to redact with.
- :mod:`.plugins`: detect-secrets 1.5 plugins, built once per process, used in-process through
  ``analyze_string`` only (``analyze_line`` may verify AWS keys over the network). Their regexes are
  the format detectors (AWS, GitHub, GitLab, Slack xox[abposr]- and /services/ webhooks, Stripe, JWT,
  basic-auth URLs, Azure storage keys, ...); ``KeywordDetector`` runs on candidate lines.
- :mod:`.formats`: formats detect-secrets lacks (``github_pat_``, ``AIza``, Terraform Cloud and
  Vault tokens, Azure SAS signatures and AD client secrets ``xxx8Q~``, Slack ``xapp-``/``xoxe``),
  whole PEM blocks, URL credentials (passwords with ``&$!#@``, ``redis://:pw@``, tokens as the user),
  and Authorization header credentials (``Bearer``/``Basic``/``Token``).
- :mod:`.hcl`: credential-named assignments (``password = "..."``), heredocs, variable defaults,
  name/value pairs (``{ name = "DB_PASSWORD", value = "..." }``), KeywordDetector's hits.
- :mod:`.shell`: unquoted values in shell, env files, YAML, CLI flags and headers
  (``export DB_PASSWORD=...``, ``password: ...``, ``--client-secret=...``, ``X-Api-Key: ...``).
- :mod:`.text`: the prefilter, candidate lines, base64 blobs wrapping a secret, merging, and the
  public :func:`scrub_text`, :func:`scrub_files`, :func:`scrub_url`.
- :mod:`.plan_json`: :func:`scrub_json`.

Hostile input: the regexes are unambiguous or bounded, and block/heredoc ends are found in one
linear pass, so a crafted file costs about a second per MB, never quadratic or exponential time.

Policy (a false positive costs a placeholder, a leak costs a credential):

- Any non-empty literal under a credential-named attribute is redacted, placeholders such as
  ``"changeme"`` included. Never redacted: references and expressions (``var.db_password``,
  ``random_password.db.result``, ``$DB_PASSWORD``), strings holding a template (``"${var.x}"``,
  ``"%{...}"``), ``true``/``false``/``null``, ARNs, relative key-file paths (``"./key.pem"``,
  ``"account.json"``), and names that describe a secret rather than hold one (``password_length``,
  ``secret_name``, ``token_url``, ``kms_key_id`` ...: ``values._NON_SECRET_SUFFIXES``).
- Weakly credential-like names (``key``, ``auth``, ``sse_key`` ...) are redacted only when the
  value is high-entropy by detect-secrets' own thresholds; so S3 object keys, tag keys and
  DynamoDB ``hash_key``s stay.
- Entropy alone never redacts: sha256/base64 file hashes (``source_code_hash``, ``etag``), AMI
  ids, resource names and ARNs are kept, since detect-secrets' high-entropy plugins would flag
  them all and the training data needs them.
- A literal found by name (not by format) that looks random (3+ character classes) is also
  redacted wherever else it occurs in the same text, e.g. repeated inside a ``user_data`` script.
- Not covered: a secret assembled from pieces (``join("", ["Tr0ub", "4dor"])``, ``"${"a"}${"b"}"``),
  a raw ``/`` inside a URL password, an unquoted shell value with spaces, and a secret under a neutral
  name with no recognizable format.

Placeholders replace only the secret characters inside a literal; a whole PEM block (BEGIN..END
lines inclusive) becomes one ``REDACTED_PRIVATE_KEY`` line, so later line numbers shift. Findings
give the 1-based line of the secret in the input text (0 for JSON, whose findings carry a JSON
pointer as path). Scrubbing is deterministic and idempotent: placeholders are never detected.
"""

from __future__ import annotations

from pipelines.collect.secrets.kinds import KINDS, Finding, count_by_kind, placeholder
from pipelines.collect.secrets.plan_json import scrub_json
from pipelines.collect.secrets.text import scrub_files, scrub_text, scrub_url

# Bump whenever a rule changes what is redacted: rows made under older rules are collected again.
# 1: detect-secrets + Terraform rules; 2: shell/YAML/flag values, URL passwords with sub-delims and
# tokens as URL users, Authorization headers, Azure AD secrets, Slack xapp/xoxe, base64-wrapped secrets.
SCRUBBER_RULES_VERSION = 2

__all__ = [
    "KINDS",
    "SCRUBBER_RULES_VERSION",
    "Finding",
    "count_by_kind",
    "placeholder",
    "scrub_files",
    "scrub_json",
    "scrub_text",
    "scrub_url",
]
