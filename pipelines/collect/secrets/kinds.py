"""The closed set of secret kinds, the finding record, and the placeholder a secret becomes."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

# The closed set of finding kinds, in precedence order: where detections overlap, the merged span
# is redacted once with the first kind listed here.
KINDS: dict[str, str] = {
    # first: a span holding a whole key file also holds its PEM block
    "gcp_service_account_key": "GCP service-account key material: private_key_id, or a key file (JSON or base64)",
    "private_key": "PEM (RSA/EC/DSA/OpenSSH/PKCS8/PGP/SSH2) private key block or PuTTY key file",
    "aws_access_key_id": "AWS access key id (AKIA/ASIA/ABIA/ACCA/A3T...)",
    "aws_secret_access_key": "AWS secret access key: 40 chars under an aws or secret_key name",
    "github_token": "GitHub token: ghp_/gho_/ghu_/ghs_/ghr_ and fine-grained github_pat_",
    "gitlab_token": "GitLab token (glpat-, glrt-, ...)",
    "slack_token": "Slack token (xoxb-/xoxp-/xoxa-/xoxe.../xapp-) or webhook URL (hooks.slack.com)",
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
    "azure_storage_key": "Azure storage AccountKey in a connection string",
    "azure_sas_token": "Azure SAS signature (sig=...) in a URL or connection string",
    "azure_client_secret": "Azure AD (Entra ID) client secret (`xxx8Q~` + 31-34 chars)",
    "terraform_cloud_token": "Terraform Cloud/Enterprise API token (*.atlasv1.*)",
    "vault_token": "HashiCorp Vault token (hvs./hvb./hvr.)",
    "jwt": "JSON Web Token",
    "authorization_header": "credential of an HTTP Authorization header (Bearer, Basic, Token schemes)",
    "basic_auth_url": "credential in a URL's userinfo: scheme://user:password@host, or a token as the user",
    "password": "literal under a password-named attribute or variable, or a connection-string Password=",
    "generic_secret": "literal under another credential name (secret, token, api_key, credentials ...)",
    "high_entropy_string": "high-entropy literal under a weakly credential-like name (key, auth ...)",
    "sensitive_value": "plan JSON value that Terraform itself marks sensitive",
}
_PRIORITY = {kind: i for i, kind in enumerate(KINDS)}

# (start, end, kind) of one detected secret in the scanned text
_Span = tuple[int, int, str]

_PLACEHOLDER_ONLY = re.compile(r"\s*(?:REDACTED_[A-Z0-9_]+\s*)+")


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


def count_by_kind(findings: Iterable[Finding]) -> dict[str, int]:
    """Finding counts per kind, sorted by kind: the ``secrets_found`` stats of a row or a run."""
    return dict(sorted(Counter(f.kind for f in findings).items()))
