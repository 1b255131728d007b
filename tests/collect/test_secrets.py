"""Tests for pipelines.collect.secrets: planted, format-valid fake secrets must be redacted exactly,
non-secrets kept, HCL kept parseable, and nothing secret may survive in outputs, findings or logs.

No network and no fakes: detect-secrets runs in-process. Planted values are obviously fake (the AWS
documentation example pair, seeded random tokens, PEM bodies of seeded random bytes) and are built
by helpers so that the test source itself does not look like a leak to scanners.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import random
import string
from pathlib import Path

import git
import hcl2
import pytest

from pipelines.collect.secrets import (
    KINDS,
    SCRUBBER_RULES_VERSION,
    Finding,
    count_by_kind,
    placeholder,
    scrub_files,
    scrub_json,
    scrub_text,
    scrub_url,
)
from pipelines.collect.secrets.plugins import (
    _DS_KINDS,
    _DS_PREFIX_GROUP_PLUGINS,
    _LINE_PLUGINS,
    _PLUGIN_GUARDS,
    _detectors,
    _plugin_spans,
)

AWS_KEY_ID = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
PASSWORD = "hunter2-Sup3r"


def token(prefix: str, n: int, seed: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    rng = random.Random(seed)
    return prefix + "".join(rng.choice(alphabet) for _ in range(n))


GHP = token("ghp_", 36, 1)
GHO = token("gho_", 36, 2)
GHS = token("ghs_", 36, 3)
GITHUB_PAT = token("github_pat_", 22, 4) + "_" + token("", 59, 5)
JWT = (
    base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
    + "."
    + base64.urlsafe_b64encode(b'{"sub":"1234567890","name":"fake"}').decode().rstrip("=")
    + "."
    + token("", 43, 6, string.ascii_letters + string.digits + "-_")
)
SLACK_WEBHOOK = "https://hooks.slack.com/services/T" + token("", 8, 7) + "/B" + token("", 8, 8) + "/" + token("", 24, 9)
AZURE_ACCOUNT_KEY = token("", 86, 10, string.ascii_letters + string.digits + "+/") + "=="
HIGH_ENTROPY_B64 = token("", 44, 11, string.ascii_letters + string.digits + "+/")


def pem(label: str, seed: int, n_bytes: int = 300) -> str:
    """A format-valid fake PEM block: BEGIN/END lines around 64-column base64 of seeded random bytes."""
    body = base64.b64encode(random.Random(seed).randbytes(n_bytes)).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"])


def pem_body_lines(block: str) -> list[str]:
    return [line for line in block.splitlines() if "-----" not in line]


def kinds_lines(findings: list[Finding]) -> list[tuple[str, int]]:
    return [(f.kind, f.line) for f in findings]


# --- exact scrubbing of small inputs ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "found"),
    [
        pytest.param(
            f'variable "db_password" {{\n  type    = string\n  default = "{PASSWORD}"\n}}\n',
            'variable "db_password" {\n  type    = string\n  default = "REDACTED_PASSWORD"\n}\n',
            [("password", 3)],
            id="variable-default",
        ),
        pytest.param(
            f'variable "db_password" {{ default = "{PASSWORD}" }}\n',
            'variable "db_password" { default = "REDACTED_PASSWORD" }\n',
            [("password", 1)],
            id="variable-default-one-line",
        ),
        pytest.param(
            'variable "api_keys" {\n  default = {\n    "primary" = "k1-Abc"\n    backup    = "k2"\n  }\n}\n',
            'variable "api_keys" {\n  default = {\n    "primary" = "REDACTED_GENERIC_SECRET"\n'
            '    backup    = "REDACTED_GENERIC_SECRET"\n  }\n}\n',
            [("generic_secret", 3), ("generic_secret", 4)],
            id="variable-default-map-keeps-keys",
        ),
        pytest.param(
            'variable "creds" {\n  type = object({\n    default = string\n  })\n'
            '  default = { user = "admin", default = "pw" }\n}\n',
            'variable "creds" {\n  type = object({\n    default = string\n  })\n'
            '  default = { user = "REDACTED_GENERIC_SECRET", default = "REDACTED_GENERIC_SECRET" }\n}\n',
            [("generic_secret", 5), ("generic_secret", 5)],
            id="variable-default-after-type-constraint",
        ),
        pytest.param(
            f'variable "signing_key" {{\n  default = "{HIGH_ENTROPY_B64}"\n}}\n'
            'variable "tag_key" {\n  default = "Environment"\n}\n',
            'variable "signing_key" {\n  default = "REDACTED_GENERIC_SECRET"\n}\n'
            'variable "tag_key" {\n  default = "Environment"\n}\n',
            [("generic_secret", 2)],
            id="variable-default-strong-vs-weak-name",
        ),
        pytest.param(
            f'variable "key" {{\n  default = "{HIGH_ENTROPY_B64}"\n}}\n',
            'variable "key" {\n  default = "REDACTED_HIGH_ENTROPY_STRING"\n}\n',
            [("high_entropy_string", 2)],
            id="variable-default-weak-name-high-entropy",
        ),
        pytest.param(
            'variable "admin" {\n  sensitive = true\n  default   = "opensesame"\n}\n',
            'variable "admin" {\n  sensitive = true\n  default   = "REDACTED_GENERIC_SECRET"\n}\n',
            [("generic_secret", 3)],
            id="sensitive-variable-default",
        ),
        pytest.param(
            f'db_password  = "{PASSWORD}"\ngithub_token = "{GHP}"\nsecret_key   = "{AWS_SECRET}"\n',
            'db_password  = "REDACTED_PASSWORD"\ngithub_token = "REDACTED_GITHUB_TOKEN"\n'
            'secret_key   = "REDACTED_AWS_SECRET_ACCESS_KEY"\n',
            [("password", 1), ("github_token", 2), ("aws_secret_access_key", 3)],
            id="tfvars",
        ),
        pytest.param(
            f'provider "aws" {{\n  region     = "us-east-1"\n  access_key = "{AWS_KEY_ID}"\n'
            f'  secret_key = "{AWS_SECRET}"\n}}\n',
            'provider "aws" {\n  region     = "us-east-1"\n  access_key = "REDACTED_AWS_ACCESS_KEY_ID"\n'
            '  secret_key = "REDACTED_AWS_SECRET_ACCESS_KEY"\n}\n',
            [("aws_access_key_id", 3), ("aws_secret_access_key", 4)],
            id="aws-provider-pair",
        ),
        pytest.param(
            'provider "azurerm" {\n  client_id     = "00000000-0000-0000-0000-000000000000"\n'
            '  client_secret = "Xy8Q~fake.Secret-Value"\n}\n',
            'provider "azurerm" {\n  client_id     = "00000000-0000-0000-0000-000000000000"\n'
            '  client_secret = "REDACTED_GENERIC_SECRET"\n}\n',
            [("generic_secret", 3)],
            id="azurerm-client-secret",
        ),
        pytest.param(
            f'locals {{\n  a = "{GHO}"\n  b = "{GHS}"\n  c = "{GITHUB_PAT}"\n}}\n',
            'locals {\n  a = "REDACTED_GITHUB_TOKEN"\n  b = "REDACTED_GITHUB_TOKEN"\n'
            '  c = "REDACTED_GITHUB_TOKEN"\n}\n',
            [("github_token", 2), ("github_token", 3), ("github_token", 4)],
            id="github-token-variants",
        ),
        pytest.param(
            f'source = "git::https://x-access-token:{GHP}@github.com/org/repo.git"\n',
            'source = "git::https://x-access-token:REDACTED_GITHUB_TOKEN@github.com/org/repo.git"\n',
            [("github_token", 1)],
            id="github-token-in-url",
        ),
        pytest.param(
            'url = "postgres://admin:S3cretPw@db.example.com:5432/app"\n',
            'url = "postgres://admin:REDACTED_BASIC_AUTH_URL@db.example.com:5432/app"\n',
            [("basic_auth_url", 1)],
            id="basic-auth-url",
        ),
        pytest.param(
            f'headers = {{ Authorization = "Bearer {JWT}" }}\n',
            'headers = { Authorization = "Bearer REDACTED_JWT" }\n',
            [("jwt", 1)],
            id="jwt-including-signature",
        ),
        pytest.param(
            f'url = "{SLACK_WEBHOOK}"\n',
            'url = "REDACTED_SLACK_TOKEN"\n',
            [("slack_token", 1)],
            id="slack-webhook",
        ),
        pytest.param(
            'conn = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey='
            + AZURE_ACCOUNT_KEY
            + ';EndpointSuffix=core.windows.net"\n',
            'conn = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=REDACTED_AZURE_STORAGE_KEY;'
            'EndpointSuffix=core.windows.net"\n',
            [("azure_storage_key", 1)],
            id="azure-storage-connection-string",
        ),
        pytest.param(
            'url = "https://acct.blob.core.windows.net/c?sv=2020-08-04&sp=r&sig=AbCdEf0123456789%2Bxyz%3D"\n',
            'url = "https://acct.blob.core.windows.net/c?sv=2020-08-04&sp=r&sig=REDACTED_AZURE_SAS_TOKEN"\n',
            [("azure_sas_token", 1)],
            id="azure-sas",
        ),
        pytest.param(
            'app_settings = { DB = "Server=tcp:db;Database=app;User ID=u;Password=Pw-1234;" }\n',
            'app_settings = { DB = "Server=tcp:db;Database=app;User ID=u;Password=REDACTED_PASSWORD;" }\n',
            [("password", 1)],
            id="connection-string-password",
        ),
        pytest.param(
            f'env = [{{ name = "DB_PASSWORD", value = "{PASSWORD}" }}, {{ name = "LOG_LEVEL", value = "info" }}]\n',
            'env = [{ name = "DB_PASSWORD", value = "REDACTED_PASSWORD" }, { name = "LOG_LEVEL", value = "info" }]\n',
            [("password", 1)],
            id="name-value-pair",
        ),
        pytest.param(
            f'sse_customer_key = "{HIGH_ENTROPY_B64}"\nkey = "environment"\nhash_key = "id"\n',
            'sse_customer_key = "REDACTED_HIGH_ENTROPY_STRING"\nkey = "environment"\nhash_key = "id"\n',
            [("high_entropy_string", 1)],
            id="weak-name-needs-entropy",
        ),
        pytest.param(
            f'password = sensitive("{PASSWORD}")\ntoken = base64decode("Z2hwX2Zha2U=")\n'
            'private_key = file("keys/a.pem")\n',
            'password = sensitive("REDACTED_PASSWORD")\ntoken = base64decode("REDACTED_GENERIC_SECRET")\n'
            'private_key = file("keys/a.pem")\n',
            [("password", 1), ("generic_secret", 2)],
            id="literal-inside-function-call",
        ),
        pytest.param(
            'password = "changeme"\nadmin_password = "x"\n',
            'password = "REDACTED_PASSWORD"\nadmin_password = "REDACTED_PASSWORD"\n',
            [("password", 1), ("password", 2)],
            id="short-and-placeholder-passwords-redacted",
        ),
        pytest.param(
            f'password  = "{PASSWORD}"\nuser_data = "echo {PASSWORD} | chpasswd"\n',
            'password  = "REDACTED_PASSWORD"\nuser_data = "echo REDACTED_PASSWORD | chpasswd"\n',
            [("password", 1), ("password", 2)],
            id="random-looking-literal-redacted-everywhere",
        ),
        pytest.param(
            '{\n  "type": "service_account",\n  "private_key_id": "0123456789abcdef0123456789abcdef01234567"\n}\n',
            '{\n  "type": "service_account",\n  "private_key_id": "REDACTED_GCP_SERVICE_ACCOUNT_KEY"\n}\n',
            [("gcp_service_account_key", 3)],
            id="gcp-key-id",
        ),
        pytest.param(
            'provider "google" {\n  credentials = "'
            + base64.b64encode(b'{"type": "service_account", "project_id": "p", "client_email": "a@b.c"}').decode()
            + '"\n}\n',
            'provider "google" {\n  credentials = "REDACTED_GCP_SERVICE_ACCOUNT_KEY"\n}\n',
            [("gcp_service_account_key", 2)],
            id="gcp-base64-key-file",
        ),
    ],
)
def test_scrub_text_exact(text: str, expected: str, found: list[tuple[str, int]]) -> None:
    out, findings = scrub_text(text, "main.tf")
    assert out == expected
    assert kinds_lines(findings) == found
    assert {f.path for f in findings} == {"main.tf"}
    assert scrub_text(out, "main.tf") == (out, [])  # idempotent


@pytest.mark.parametrize(
    ("label", "seed"),
    [("RSA PRIVATE KEY", 1), ("OPENSSH PRIVATE KEY", 2), ("EC PRIVATE KEY", 3), ("PRIVATE KEY", 4)],
)
def test_heredoc_pem_becomes_one_line(label: str, seed: int) -> None:
    block = pem(label, seed)
    text = f'resource "tls_cert_request" "c" {{\n  private_key_pem = <<EOF\n{block}\nEOF\n}}\n'
    out, findings = scrub_text(text, "tls.tf")
    assert out == 'resource "tls_cert_request" "c" {\n  private_key_pem = <<EOF\nREDACTED_PRIVATE_KEY\nEOF\n}\n'
    assert kinds_lines(findings) == [("private_key", 3)]
    assert hcl2.loads(out)["resource"][0]["tls_cert_request"]["c"]["private_key_pem"] == "REDACTED_PRIVATE_KEY"


def test_indented_heredoc_and_escaped_pem() -> None:
    indented = "\n".join("    " + line for line in pem("OPENSSH PRIVATE KEY", 5).splitlines())
    escaped = pem("PRIVATE KEY", 6).replace("\n", "\\n") + "\\n"
    text = f'locals {{\n  a = <<-EOT\n{indented}\n  EOT\n  b = "{escaped}"\n  c = "keep"\n}}\n'
    out, findings = scrub_text(text, "keys.tf")
    assert (
        out
        == 'locals {\n  a = <<-EOT\n    REDACTED_PRIVATE_KEY\n  EOT\n  b = "REDACTED_PRIVATE_KEY\\n"\n  c = "keep"\n}\n'
    )
    assert kinds_lines(findings) == [("private_key", 3), ("private_key", 13)]
    assert hcl2.loads(out)["locals"][0]["c"] == "keep"


def test_pem_without_end_and_encrypted_variants_are_redacted() -> None:
    # detect-secrets does not know "ENCRYPTED PRIVATE KEY"; an unterminated block (headers, blank
    # line, base64) must still lose all its key material.
    encrypted = pem("ENCRYPTED PRIVATE KEY", 7)
    legacy = pem("RSA PRIVATE KEY", 8).splitlines()
    dangling = "\n".join([legacy[0], "Proc-Type: 4,ENCRYPTED", "DEK-Info: AES-128-CBC,0A1B2C3D", "", *legacy[1:-1]])
    text = f"a = <<EOF\n{encrypted}\nEOF\nb = <<EOF\n{dangling}\nEOF\n"
    out, findings = scrub_text(text, "k.tf")
    assert out == "a = <<EOF\nREDACTED_PRIVATE_KEY\nEOF\nb = <<EOF\nREDACTED_PRIVATE_KEY\nEOF\n"
    assert [f.kind for f in findings] == ["private_key", "private_key"]
    for line in pem_body_lines(encrypted) + legacy[1:-1]:
        assert line not in out


NON_SECRETS = """\
variable "db_password" {
  description = "Password for the master DB user"
  type        = string
  sensitive   = true
}

variable "random_password_length" {
  description = "Length of random password to create"
  type        = number
  default     = 16
}

resource "random_password" "db" {
  length  = var.random_password_length
  special = true
}

resource "aws_iam_account_password_policy" "strict" {
  minimum_password_length = 14
}

resource "aws_db_instance" "db" {
  name                        = "password-policy"
  username                    = var.username
  password                    = var.db_password
  manage_master_user_password = true
  kms_key_id                  = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
  ami                         = "ami-0c55b159cbfafe1f0"
  source_code_hash            = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
  etag                        = "d41d8cd98f00b204e9800998ecf8427e"
  key_name                    = "deployer-key"
  public_key                  = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 user@example.com"
  secret_name                 = "prod/db/credentials"
  password_length             = "16"
  token_url                   = "https://login.example.com/oauth2/token"
  api_key_source              = "HEADER"
  credentials_file            = "~/.aws/credentials"
  secret_string               = jsonencode({ password = random_password.db.result })
  admin_password              = "${var.admin_password}"
  empty_password              = ""
  master_password             = random_password.db.result
  policy_arn                  = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
  tags                        = { Name = "db", key = "Environment" }
  connection                  = "Server=${var.host};Password=${random_password.db.result};"
  endpoint                    = "https://${var.user}:${var.pass}@example.com"
}

output "password" {
  value     = random_password.db.result
  sensitive = true
}
"""


def test_non_secrets_left_untouched() -> None:
    hcl2.loads(NON_SECRETS)  # the fixture is valid Terraform
    assert scrub_text(NON_SECRETS, "main.tf") == (NON_SECRETS, [])


def test_empty_and_plain_text() -> None:
    assert scrub_text("") == ("", [])
    assert scrub_text('resource "null_resource" "a" {}\n') == ('resource "null_resource" "a" {}\n', [])


# --- a whole hostile module: nothing survives, HCL stays valid ---------------------------------

RSA_BLOCK = pem("RSA PRIVATE KEY", 21)
MODULE = f"""\
provider "aws" {{
  region     = "us-east-1"
  access_key = "{AWS_KEY_ID}"
  secret_key = "{AWS_SECRET}"
}}

variable "db_password" {{
  type    = string
  default = "{PASSWORD}"
}}

variable "github_token" {{
  default = "{GHP}"
}}

resource "tls_private_key" "unused" {{
  algorithm = "RSA"
}}

resource "aws_instance" "web" {{
  ami           = "ami-0c55b159cbfafe1f0"
  instance_type = "t3.micro"
  user_data     = <<EOF
#!/bin/bash
git clone https://deploy:{GHS}@github.com/org/app.git
export DB_URL="postgres://app:{PASSWORD}@db:5432/app"
EOF
  tags = {{ Name = "web" }}
}}

resource "aws_key_pair" "k" {{
  key_name    = "k"
  private_key = <<EOF
{RSA_BLOCK}
EOF
}}

locals {{
  api_key = "{HIGH_ENTROPY_B64}"
  jwt     = "{JWT}"
}}
"""
PLANTED = [AWS_KEY_ID, AWS_SECRET, PASSWORD, GHP, GHS, HIGH_ENTROPY_B64, JWT, *pem_body_lines(RSA_BLOCK)]


def test_module_scrubbed_completely_and_stays_valid_hcl() -> None:
    hcl2.loads(MODULE)  # the fixture is valid Terraform
    out, findings = scrub_text(MODULE, "main.tf")
    for secret in PLANTED:
        assert secret not in out
        for part in (secret[:12], secret[-12:]):  # not even partially
            assert part not in out
    assert kinds_lines(findings) == [
        ("aws_access_key_id", 3),
        ("aws_secret_access_key", 4),
        ("password", 9),
        ("github_token", 13),
        ("github_token", 25),
        ("basic_auth_url", 26),
        ("private_key", 34),
        ("generic_secret", 47),
        ("jwt", 48),
    ]
    assert count_by_kind(findings) == {
        "aws_access_key_id": 1,
        "aws_secret_access_key": 1,
        "basic_auth_url": 1,
        "generic_secret": 1,
        "github_token": 2,
        "jwt": 1,
        "password": 1,
        "private_key": 1,
    }
    parsed = hcl2.loads(out)
    assert parsed["provider"][0]["aws"]["secret_key"] == "REDACTED_AWS_SECRET_ACCESS_KEY"
    assert parsed["variable"][0]["db_password"]["default"] == "REDACTED_PASSWORD"
    assert parsed["resource"][2]["aws_key_pair"]["k"]["private_key"] == "REDACTED_PRIVATE_KEY"
    assert parsed["resource"][1]["aws_instance"]["web"]["instance_type"] == "t3.micro"
    assert scrub_text(out, "main.tf") == (out, [])
    assert scrub_text(MODULE, "main.tf") == (out, findings)  # deterministic


def test_findings_and_logs_carry_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="pipelines.collect.secrets"):
        _, findings = scrub_text(MODULE, "main.tf")
        scrub_json({"variables": {"db_password": {"value": PASSWORD}}})
    dumped = repr(findings) + caplog.text
    assert "redacted 9 secret(s) in main.tf" in caplog.text
    for secret in PLANTED:
        assert secret not in dumped


def test_crlf_and_non_ascii_offsets() -> None:
    text = f'name = "Ünïcødé İstanbul"\r\npassword = "{PASSWORD}"\r\nx = "ok"\r\n'
    out, findings = scrub_text(text, "a.tf")
    assert out == 'name = "Ünïcødé İstanbul"\r\npassword = "REDACTED_PASSWORD"\r\nx = "ok"\r\n'
    assert kinds_lines(findings) == [("password", 2)]


# --- files --------------------------------------------------------------------------------------


def test_scrub_files_keeps_order_and_extra_keys() -> None:
    files = [
        {"path": "main.tf", "content": f'password = "{PASSWORD}"\n', "sha": "1"},
        {"path": "clean.tf", "content": 'resource "null_resource" "a" {}\n'},
        {"path": "terraform.tfvars", "content": f'github_token = "{GHP}"\n'},
    ]
    original = copy.deepcopy(files)
    out, findings = scrub_files(files)
    assert out == [
        {"path": "main.tf", "content": 'password = "REDACTED_PASSWORD"\n', "sha": "1"},
        {"path": "clean.tf", "content": 'resource "null_resource" "a" {}\n'},
        {"path": "terraform.tfvars", "content": 'github_token = "REDACTED_GITHUB_TOKEN"\n'},
    ]
    assert findings == [Finding("password", "main.tf", 1), Finding("github_token", "terraform.tfvars", 1)]
    assert files == original  # inputs are not modified


def test_scrub_files_rejects_records_without_text() -> None:
    with pytest.raises(TypeError, match=r"files\[1\] must be a mapping with str 'path' and 'content'"):
        scrub_files([{"path": "a.tf", "content": ""}, {"path": "b.tf", "content": b"x"}])  # type: ignore[list-item]


# --- plan JSON ---------------------------------------------------------------------------------


def plan_json() -> dict:
    return {
        "format_version": "1.2",
        "variables": {
            "db_password": {"value": PASSWORD},
            "region": {"value": "us-east-1"},
            "opaque": {"value": "plain-but-sensitive"},
        },
        "configuration": {
            "root_module": {
                "variables": {
                    "opaque": {"sensitive": True},
                    "db_password": {"description": "Password for the DB", "default": "changeme"},
                },
                "resources": [
                    {
                        "address": "aws_db_instance.db",
                        "expressions": {"password": {"references": ["var.db_password"]}},
                    }
                ],
            }
        },
        "planned_values": {"outputs": {"conn": {"sensitive": True, "value": "db.internal:5432"}}},
        "prior_state": {
            "values": {
                "root_module": {
                    "resources": [
                        {
                            "address": "random_password.old",
                            "values": {"length": 16, "result": "rAnd0m-Result"},
                            "sensitive_values": {"result": True},
                        }
                    ]
                }
            }
        },
        "resource_changes": [
            {
                "address": "aws_db_instance.db",
                "type": "aws_db_instance",
                "name": "db",
                "change": {
                    "actions": ["create"],
                    "before": None,
                    "after": {
                        "name": "password-policy",
                        "password": PASSWORD,
                        "engine": "postgres",
                        "port": 5432,
                        "custom_field": "terraform-marked-sensitive",
                        "tags": {"Name": "db", "deploy_token": GHP},
                        "user_data": f"git clone https://x:{GHS}@github.com/o/r",
                        "environment": [{"name": "API_KEY", "value": "abc-123"}],
                    },
                    "after_unknown": {"id": True},
                    "after_sensitive": {"custom_field": True, "password": True},
                },
            },
            {
                "address": "random_password.db",
                "type": "random_password",
                "name": "db",
                "change": {"actions": ["create"], "after": {"length": 16}, "after_sensitive": {}},
            },
        ],
    }


def test_scrub_json_plan() -> None:
    plan = plan_json()
    out, findings = scrub_json(plan, "plan")
    expected = plan_json()
    expected["variables"]["db_password"]["value"] = "REDACTED_PASSWORD"
    expected["variables"]["opaque"]["value"] = "REDACTED_SENSITIVE_VALUE"
    expected["configuration"]["root_module"]["variables"]["db_password"]["default"] = "REDACTED_PASSWORD"
    expected["planned_values"]["outputs"]["conn"]["value"] = "REDACTED_SENSITIVE_VALUE"
    expected["prior_state"]["values"]["root_module"]["resources"][0]["values"]["result"] = "REDACTED_SENSITIVE_VALUE"
    after = expected["resource_changes"][0]["change"]["after"]
    after["password"] = "REDACTED_PASSWORD"
    after["custom_field"] = "REDACTED_SENSITIVE_VALUE"
    after["tags"]["deploy_token"] = "REDACTED_GITHUB_TOKEN"
    after["user_data"] = "git clone https://x:REDACTED_GITHUB_TOKEN@github.com/o/r"
    after["environment"][0]["value"] = "REDACTED_GENERIC_SECRET"
    assert out == expected
    assert findings == [
        Finding("password", "plan/variables/db_password/value", 0),
        Finding("sensitive_value", "plan/variables/opaque/value", 0),
        Finding("password", "plan/configuration/root_module/variables/db_password/default", 0),
        Finding("sensitive_value", "plan/planned_values/outputs/conn/value", 0),
        Finding("sensitive_value", "plan/prior_state/values/root_module/resources/0/values/result", 0),
        Finding("password", "plan/resource_changes/0/change/after/password", 0),
        Finding("sensitive_value", "plan/resource_changes/0/change/after/custom_field", 0),
        Finding("github_token", "plan/resource_changes/0/change/after/tags/deploy_token", 0),
        Finding("github_token", "plan/resource_changes/0/change/after/user_data", 0),
        Finding("generic_secret", "plan/resource_changes/0/change/after/environment/0/value", 0),
    ]
    assert plan == plan_json()  # a new object; the input is untouched
    assert scrub_json(out, "plan") == (out, [])


def test_scrub_json_secret_in_key_and_pointer_escaping() -> None:
    out, findings = scrub_json({"a/b": {GHP: 1, GHO: 2, "~x": "ok"}})
    assert out == {"a/b": {"REDACTED_GITHUB_TOKEN": 1, "REDACTED_GITHUB_TOKEN_2": 2, "~x": "ok"}}
    assert findings == [Finding("github_token", "/a~1b", 0), Finding("github_token", "/a~1b", 0)]
    assert scrub_json(out) == (out, [])


def test_scrub_json_scalars() -> None:
    assert scrub_json(None) == (None, [])
    assert scrub_json([1, True, "plain"]) == ([1, True, "plain"], [])
    assert scrub_json(f"token {GHP}", "/x") == ("token REDACTED_GITHUB_TOKEN", [Finding("github_token", "/x", 0)])


# --- API contracts -------------------------------------------------------------------------------


def test_placeholder_and_kinds() -> None:
    assert placeholder("aws_access_key_id") == "REDACTED_AWS_ACCESS_KEY_ID"
    assert [placeholder(k) for k in KINDS] == [f"REDACTED_{k.upper()}" for k in KINDS]
    with pytest.raises(ValueError, match=r"unknown secret kind 'nope': use one of secrets.KINDS"):
        placeholder("nope")


def test_count_by_kind() -> None:
    findings = [Finding("password", "a", 1), Finding("jwt", "a", 2), Finding("password", "b", 0)]
    assert count_by_kind(findings) == {"jwt": 1, "password": 2}
    assert count_by_kind([]) == {}


def test_every_detect_secrets_plugin_is_mapped() -> None:
    """An upgrade of detect-secrets that adds or renames a plugin must show up here."""
    d = _detectors()
    names = {type(p).__name__ for p in d.regex_plugins}
    assert {p.secret_type for p in d.regex_plugins} == set(_DS_KINDS)
    assert set(_DS_KINDS.values()) <= set(KINDS)
    assert _LINE_PLUGINS | set(_PLUGIN_GUARDS) | _DS_PREFIX_GROUP_PLUGINS <= names
    assert _detectors() is d  # built once per process


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        # plugins behind a speed guard or restricted to candidate lines must still fire
        ('x = "AKC' + token("", 20, 31) + '"\n', "artifactory_token"),
        ('x = "' + token("", 32, 32, string.ascii_lowercase + string.digits) + '-us12"\n', "mailchimp_key"),
        ('x = "xoxb-123456789012-' + token("", 24, 33, string.ascii_lowercase) + '"\n', "slack_token"),
        ('softlayer_api_key = "' + token("", 64, 34, string.ascii_lowercase + string.digits) + '"\n', "softlayer_key"),
        ('cos_hmac_secret_access_key = "' + token("", 48, 35, "0123456789abcdef") + '"\n', "ibm_cos_hmac_key"),
        ('x = "sk_' + "live_" + token("", 24, 36) + '"\n', "stripe_key"),
        ('x = "' + token("AIza", 35, 37) + '"\n', "gcp_api_key"),
        ('x = "' + token("", 14, 38) + ".atlasv1." + token("", 67, 39) + '"\n', "terraform_cloud_token"),
        ('x = "hvs.' + token("", 90, 40) + '"\n', "vault_token"),
    ],
)
def test_guarded_and_own_format_detectors_fire(text: str, kind: str) -> None:
    out, findings = scrub_text(text, "main.tf")
    assert [f.kind for f in findings] == [kind]
    assert out.count(placeholder(kind)) == 1
    assert scrub_text(out, "main.tf") == (out, [])


@pytest.mark.parametrize(
    ("text", "n_findings"),
    [
        # hostile shapes that made earlier versions backtrack exponentially or scan quadratically;
        # each must simply finish (the suite's timeout guards it) with the right count
        ('password = "' + "${a}" * 2000 + "\n", 0),
        ("-----BEGIN RSA PRIVATE KEY-----\n" * 2000, 2000),
        ('variable "db_password" {\n  default = "x"\n' * 2000, 2000),
        ("password = <<EOF\n" * 2000, 1),
        ("/* " * 5000 + 'variable "p" { sensitive = true\n', 0),
        ("{" + ",".join(f'"k{i}":"v{i}"' for i in range(5000)) + "}", 0),
    ],
    ids=["unclosed-interpolations", "many-begin", "unclosed-variables", "unclosed-heredocs", "comments", "minified"],
)
def test_hostile_inputs_finish(text: str, n_findings: int) -> None:
    out, findings = scrub_text(text, "x.tf")
    assert len(findings) == n_findings
    assert scrub_text(out, "x.tf")[1] == []


# --- rules v2: shapes detect-secrets misses (each failed before version 2) ------------------------
# Canaries are seeded random tokens (format-valid where a format exists), distinct per shape.

assert SCRUBBER_RULES_VERSION == 2
V2_PW = token("", 12, 101) + "9"
AZ_AD_SECRET = token("", 3, 102) + "8Q~" + token("", 34, 103, string.ascii_letters + string.digits + "._-")
XAPP = (
    "xapp-1-A"
    + token("", 10, 104, string.ascii_uppercase + string.digits)
    + "-1234567890123-"
    + token("", 64, 105, "0123456789abcdef")
)
XOXB = "xoxb-123456789012-123456789012-" + token("", 24, 106)
XOXP = "xoxp-123456789012-123456789012-123456789012-" + token("", 32, 107, "0123456789abcdef")
SLACK_WORKFLOW = "https://hooks.slack.com/workflows/T" + token("", 10, 108) + "/A" + token("", 10, 109) + "/1234/x"
OPAQUE = token("", 28, 110)
HEX_TOKEN = token("", 40, 111, "0123456789abcdef")
GLPAT = token("glpat-", 20, 112)
GCP_KEY_ID = token("", 40, 113, "0123456789abcdef")
GCP_PEM = pem("PRIVATE KEY", 114)


def sa_key_json(indent: int | None = 2) -> str:
    """A GCP service-account key file: the real field set, a fake key."""
    key = {
        "type": "service_account",
        "project_id": "demo-project",
        "private_key_id": GCP_KEY_ID,
        "private_key": GCP_PEM + "\n",
        "client_email": "ci@demo-project.iam.gserviceaccount.com",
        "client_id": "123456789012345678901",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    return json.dumps(key, indent=indent)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _assert_scrubbed(text: str, path: str, canaries: list[str], kinds: set[str]) -> str:
    out, findings = scrub_text(text, path)
    for c in canaries:
        assert c not in out, (c, out)
    assert {f.kind for f in findings} == kinds, findings
    assert scrub_text(out, path) == (out, [])  # idempotent
    return out


@pytest.mark.parametrize(
    ("text", "path", "expected", "found"),
    [
        # shell, env files, templates: unquoted values (KeywordDetector and the HCL rules need quotes)
        pytest.param(
            f"#!/bin/bash\nexport DB_PASSWORD={V2_PW}\n",
            "setup.sh",
            "#!/bin/bash\nexport DB_PASSWORD=REDACTED_PASSWORD\n",
            [("password", 2)],
            id="sh-export",
        ),
        pytest.param(f"db_password={V2_PW}\n", ".env", "db_password=REDACTED_PASSWORD\n", [("password", 1)], id="env"),
        pytest.param(
            f"export DB_PASSWORD=\\\n    {V2_PW}\n",
            "setup.sh",
            "export DB_PASSWORD=\\\n    REDACTED_PASSWORD\n",
            [("password", 2)],
            id="sh-line-continuation",
        ),
        pytest.param(
            f"PGPASSWORD={V2_PW} psql -h db -c 'select 1'\n",
            "migrate.sh",
            "PGPASSWORD=REDACTED_PASSWORD psql -h db -c 'select 1'\n",
            [("password", 1)],
            id="sh-pgpassword-prefix",
        ),
        pytest.param(
            f"docker run -e DB_PASSWORD={V2_PW} -e LOG_LEVEL=debug app\n",
            "run.sh",
            "docker run -e DB_PASSWORD=REDACTED_PASSWORD -e LOG_LEVEL=debug app\n",
            [("password", 1)],
            id="sh-docker-env",
        ),
        pytest.param(
            f'echo "API_TOKEN={V2_PW}" >> /etc/environment\n',
            "run.sh",
            'echo "API_TOKEN=REDACTED_GENERIC_SECRET" >> /etc/environment\n',
            [("generic_secret", 1)],
            id="sh-inside-double-quotes",
        ),
        pytest.param(
            f"az login --service-principal -u app --password {V2_PW} --tenant t\ntool --client-secret={OPAQUE}\n",
            "login.sh",
            "az login --service-principal -u app --password REDACTED_PASSWORD --tenant t\n"
            "tool --client-secret=REDACTED_GENERIC_SECRET\n",
            [("password", 1), ("generic_secret", 2)],
            id="cli-flags",
        ),
        pytest.param(
            f"export ARM_CLIENT_SECRET={AZ_AD_SECRET}\nexport ARM_CLIENT_ID=00000000-0000-0000-0000-000000000000\n",
            "env.sh",
            "export ARM_CLIENT_SECRET=REDACTED_AZURE_CLIENT_SECRET\n"
            "export ARM_CLIENT_ID=00000000-0000-0000-0000-000000000000\n",
            [("azure_client_secret", 1)],
            id="arm-client-secret",
        ),
        pytest.param(
            f'resource "aws_instance" "web" {{\n  user_data = <<-EOF\n    #!/bin/bash\n'
            f"    export DB_PASSWORD={V2_PW}\n    systemctl start app\n  EOF\n}}\n",
            "main.tf",
            'resource "aws_instance" "web" {\n  user_data = <<-EOF\n    #!/bin/bash\n'
            "    export DB_PASSWORD=REDACTED_PASSWORD\n    systemctl start app\n  EOF\n}\n",
            [("password", 4)],
            id="user-data-heredoc",
        ),
        pytest.param(
            f'user_data = "#!/bin/sh\\nexport DB_PASSWORD=\\"{V2_PW}\\"\\n"\n',
            "main.tf",
            'user_data = "#!/bin/sh\\nexport DB_PASSWORD=\\"REDACTED_PASSWORD\\"\\n"\n',
            [("password", 1)],
            id="escaped-quotes-in-hcl-string",
        ),
        pytest.param(
            f"#!/bin/bash\nexport DB_PASSWORD=${{db_password}}\nexport API_TOKEN='{V2_PW}'\n",
            "user_data.tftpl",
            "#!/bin/bash\nexport DB_PASSWORD=${db_password}\nexport API_TOKEN='REDACTED_GENERIC_SECRET'\n",
            [("generic_secret", 3)],
            id="tftpl-template-kept-literal-redacted",
        ),
        pytest.param(
            f"\x1b[1;32mci@runner\x1b[0m:~$ export DB_PASSWORD={V2_PW}\n",
            "",
            "\x1b[1;32mci@runner\x1b[0m:~$ export DB_PASSWORD=REDACTED_PASSWORD\n",
            [("password", 1)],
            id="terminal-ansi-prompt",
        ),
        # YAML-ish `name: value`
        pytest.param(
            f"db:\n  user: app\n  password: {V2_PW}  # rotate me\n  Token: '{OPAQUE}'\n",
            "values.yaml",
            "db:\n  user: app\n  password: REDACTED_PASSWORD  # rotate me\n  Token: 'REDACTED_GENERIC_SECRET'\n",
            [("password", 3), ("generic_secret", 4)],
            id="yaml",
        ),
        # URL passwords with RFC 3986 sub-delims, raw @, empty user, percent-encoding
        pytest.param(
            'a = "postgres://app:Tr0ub&3@db:5432/x"\nb = "mysql://u:p$ss!w0rd@h"\n'
            'c = "mysql://u:p#ss?w0rd@h/db"\nd = "postgres://u:p@ss@db:5432/x"\ne = "mysql://u:p%40ss%21@h/db"\n',
            "main.tf",
            'a = "postgres://app:REDACTED_BASIC_AUTH_URL@db:5432/x"\nb = "mysql://u:REDACTED_BASIC_AUTH_URL@h"\n'
            'c = "mysql://u:REDACTED_BASIC_AUTH_URL@h/db"\nd = "postgres://u:REDACTED_BASIC_AUTH_URL@db:5432/x"\n'
            'e = "mysql://u:REDACTED_BASIC_AUTH_URL@h/db"\n',
            [("basic_auth_url", n) for n in range(1, 6)],
            id="url-passwords",
        ),
        pytest.param(
            "REDIS_URL=redis://:Zk3pLm9xQ@cache:6379/0\n",
            ".env",
            "REDIS_URL=redis://:REDACTED_BASIC_AUTH_URL@cache:6379/0\n",
            [("basic_auth_url", 1)],
            id="redis-empty-user",
        ),
        # tokens as a URL's user (or after a fixed user such as oauth2 / x-access-token)
        pytest.param(
            f'a = "https://{GHP}@github.com/org/repo"\nb = "https://oauth2:{GLPAT}@gitlab.com/org/repo.git"\n'
            f'c = "https://x-access-token:{GHS}@github.com/o/r"\nd = "https://{HEX_TOKEN}@github.com/o/r"\n',
            "main.tf",
            'a = "https://REDACTED_GITHUB_TOKEN@github.com/org/repo"\n'
            'b = "https://oauth2:REDACTED_GITLAB_TOKEN@gitlab.com/org/repo.git"\n'
            'c = "https://x-access-token:REDACTED_GITHUB_TOKEN@github.com/o/r"\n'
            'd = "https://REDACTED_BASIC_AUTH_URL@github.com/o/r"\n',
            [("github_token", 1), ("gitlab_token", 2), ("github_token", 3), ("basic_auth_url", 4)],
            id="token-as-url-user",
        ),
        pytest.param(
            f'url = "https://api.example.com/v1/items?access_token={V2_PW}&page=2"\n',
            "main.tf",
            'url = "https://api.example.com/v1/items?access_token=REDACTED_GENERIC_SECRET&page=2"\n',
            [("generic_secret", 1)],
            id="query-parameter",
        ),
        # Authorization headers (HCL and JSON header maps, curl -H, -v traces)
        pytest.param(
            f'headers = {{\n  Authorization = "Bearer {OPAQUE}"\n  "X-Api-Key"   = "{V2_PW}"\n}}\n',
            "main.tf",
            'headers = {\n  Authorization = "Bearer REDACTED_AUTHORIZATION_HEADER"\n'
            '  "X-Api-Key"   = "REDACTED_GENERIC_SECRET"\n}\n',
            [("authorization_header", 2), ("generic_secret", 3)],
            id="hcl-header-map",
        ),
        pytest.param(
            '{"headers": {"Authorization": "Basic ' + b64("deploy:" + V2_PW) + '"}}',
            "hook.tfvars.json",
            '{"headers": {"Authorization": "Basic REDACTED_AUTHORIZATION_HEADER"}}',
            [("authorization_header", 1)],
            id="json-basic",
        ),
        pytest.param(
            f'curl -H "authorization: token {OPAQUE}" -H "X-Api-Key: {V2_PW}" https://api.example.com\n'
            f"> Authorization: Bearer {JWT}\n",
            "",
            'curl -H "authorization: token REDACTED_AUTHORIZATION_HEADER" -H "X-Api-Key: REDACTED_GENERIC_SECRET" '
            "https://api.example.com\n> Authorization: Bearer REDACTED_JWT\n",
            [("authorization_header", 1), ("generic_secret", 1), ("jwt", 2)],
            id="curl-headers-and-trace",
        ),
        # Azure AD client secrets: by name in an azurerm provider block, and by shape under a neutral name
        pytest.param(
            f'provider "azurerm" {{\n  features {{}}\n  client_secret = "{AZ_AD_SECRET}"\n}}\n'
            f'locals {{\n  sp = "{AZ_AD_SECRET}"\n}}\n',
            "providers.tf",
            'provider "azurerm" {\n  features {}\n  client_secret = "REDACTED_AZURE_CLIENT_SECRET"\n}\n'
            'locals {\n  sp = "REDACTED_AZURE_CLIENT_SECRET"\n}\n',
            [("azure_client_secret", 3), ("azure_client_secret", 6)],
            id="azure-ad-secret",
        ),
        # Slack: detect-secrets knows xox[abposr]- and /services/ webhooks; we add xapp- and workflows
        pytest.param(
            f"SLACK_BOT_TOKEN={XOXB}\nSLACK_USER_TOKEN={XOXP}\nSLACK_APP_TOKEN={XAPP}\n"
            f"{SLACK_WEBHOOK}\n{SLACK_WORKFLOW}\n",
            ".env",
            "SLACK_BOT_TOKEN=REDACTED_SLACK_TOKEN\nSLACK_USER_TOKEN=REDACTED_SLACK_TOKEN\n"
            "SLACK_APP_TOKEN=REDACTED_SLACK_TOKEN\nREDACTED_SLACK_TOKEN\nREDACTED_SLACK_TOKEN\n",
            [("slack_token", n) for n in range(1, 6)],
            id="slack",
        ),
        pytest.param(f"session {JWT} accepted\n", "", "session REDACTED_JWT accepted\n", [("jwt", 1)], id="jwt-bare"),
    ],
)
def test_v2_shapes_exact(text: str, path: str, expected: str, found: list[tuple[str, int]]) -> None:
    out, findings = scrub_text(text, path)
    assert out == expected
    assert sorted(kinds_lines(findings), key=lambda kl: (kl[1], kl[0])) == sorted(found, key=lambda kl: (kl[1], kl[0]))
    assert scrub_text(out, path) == (out, [])


def test_gcp_service_account_key_in_every_wrapping() -> None:
    body_lines = pem_body_lines(GCP_PEM)
    canaries = [GCP_KEY_ID, *body_lines]
    # a .json key file (JSON-escaped \n inside the PEM)
    out = _assert_scrubbed(sa_key_json(), "sa.json", canaries, {"gcp_service_account_key", "private_key"})
    assert json.loads(out)["private_key"] == "REDACTED_PRIVATE_KEY"  # the whole value, by name and by PEM
    assert json.loads(out)["client_email"] == "ci@demo-project.iam.gserviceaccount.com"
    # minified, one line
    _assert_scrubbed(sa_key_json(None), "sa.json", canaries, {"gcp_service_account_key", "private_key"})
    # a heredoc under `credentials`: the whole key file is one secret
    tf = f'provider "google" {{\n  credentials = <<EOF\n{sa_key_json()}\nEOF\n}}\n'
    out = _assert_scrubbed(tf, "main.tf", canaries, {"gcp_service_account_key"})
    assert out == 'provider "google" {\n  credentials = <<EOF\nREDACTED_GCP_SERVICE_ACCOUNT_KEY\nEOF\n}\n'
    # JSON inside an HCL string (the PEM's newlines escaped twice)
    escaped = json.dumps(sa_key_json(None))
    _assert_scrubbed(f"sa_json = {escaped}\n", "main.tf", canaries, {"gcp_service_account_key", "private_key"})
    # base64 under a neutral name, in a .tf and in a Kubernetes Secret
    blob = b64(sa_key_json())
    out = _assert_scrubbed(f'locals {{\n  blob = "{blob}"\n}}\n', "main.tf", [blob[:40]], {"gcp_service_account_key"})
    assert out == 'locals {\n  blob = "REDACTED_GCP_SERVICE_ACCOUNT_KEY"\n}\n'
    _assert_scrubbed(f"data:\n  sa.json: {blob}\n", "secret.yaml", [blob[:40]], {"gcp_service_account_key"})


def test_base64_wrapped_pem_and_script() -> None:
    k8s = f"kind: Secret\ndata:\n  tls.crt: {b64('-----BEGIN CERTIFICATE-----')}\n  tls.key: {b64(RSA_BLOCK)}\n"
    out = _assert_scrubbed(k8s, "tls.yaml", [b64(RSA_BLOCK)[:40]], {"private_key"})
    assert "tls.key: REDACTED_PRIVATE_KEY\n" in out
    script = f"#!/bin/bash\nexport DB_PASSWORD={V2_PW}\nexec /usr/local/bin/app --serve --port 8080\n"
    tf = f'resource "aws_instance" "a" {{\n  user_data_base64 = "{b64(script)}"\n}}\n'
    out = _assert_scrubbed(tf, "main.tf", [b64(script)], {"password"})
    assert 'user_data_base64 = "REDACTED_PASSWORD"' in out


# Normal Terraform, scripts, YAML and logs around the new rules: nothing here may be redacted.
NON_SECRETS_V2 = """\
export DB_PASSWORD=$DB_PASSWORD
export DB_PASSWORD="${db_password}"
export API_TOKEN=$(vault kv get -field=token secret/app)
DB_PASSWORD=${DB_PASSWORD:-}
MYSQL_PWD=%{ if x }y%{ endif }
password: ${{ secrets.DB_PASSWORD }}
password: {{ .Values.password }}
password: !vault |
password: *default_password
password: The password of the admin user
password: ~
password_length: 16
token_ttl=3600
DB_PASSWORD=****
Password: ********
echo "$CI_TOKEN" | docker login --password-stdin -u ci registry.example.com
  password = var.db_password
  password = random_password.db.result
  password = data.aws_secretsmanager_secret_version.db.secret_string
  password = each.value.password
  password = lookup(var.passwords, "db")
  password = pw
  password = null
  token    = REDACTED_GENERIC_SECRET
  + password = (sensitive value)
  ~ token    = (known after apply)
  docs    = "https://example.com/docs/getting-started#passwords"
  clone   = "https://deploy@example.com/org/repo.git"
  source  = "git::ssh://git@github.com/org/module.git?ref=v1.2.0"
  headers = { "Authorization" = "Bearer ${var.api_token}" }
  auth    = "Basic ${base64encode("${var.user}:${var.pass}")}"
  endpoint = "https://${var.user}:${var.pass}@example.com"
curl -H "Authorization: Bearer $TOKEN" https://api.example.com
# send a Bearer token in the Authorization header; basic authentication is disabled
redis://localhost:6379/0 http://host:8080/path?email=a@b.com https://medium.com/@someone/post
    password: str
    token: Optional[str] = None
"""


@pytest.mark.parametrize("path", ["main.tf", "setup.sh", "app.py", ""])
def test_non_secrets_v2_left_untouched(path: str) -> None:
    assert scrub_text(NON_SECRETS_V2, path) == (NON_SECRETS_V2, [])


def test_non_secrets_in_yaml_files() -> None:
    # under a .yaml path detect-secrets' own YAML keyword rule also runs, and it takes any unquoted value
    # (prose included: a false positive costs a placeholder); expansions and templates still stay
    kept = "\n".join(line for line in NON_SECRETS_V2.splitlines()[:16] if "The password" not in line) + "\n"
    assert scrub_text(kept, "values.yaml") == (kept, [])


# Every value-shaped canary, in every carrier it travels in. The carrier wraps it the way that file type
# would; the scrubbed text must not hold it and must name its kind.
VALUE_SHAPES: dict[str, tuple[str, str]] = {  # name -> (value, kind)
    "url-password-subdelims": ("postgres://app:Tr0ub&3$x!@db.internal:5432/app", "basic_auth_url"),
    "url-password-percent": ("mysql://app:p%40ss%21W0rd@db/app", "basic_auth_url"),
    "redis-empty-user": ("redis://:Zk3pLm9xQ7@cache:6379/0", "basic_auth_url"),
    "github-token-user": (f"https://{GHP}@github.com/org/repo.git", "github_token"),
    "gitlab-oauth2-user": (f"https://oauth2:{GLPAT}@gitlab.com/org/repo.git", "gitlab_token"),
    "opaque-token-user": (f"https://{HEX_TOKEN}@git.example.com/org/repo.git", "basic_auth_url"),
    "bearer": (f"Authorization: Bearer {OPAQUE}", "authorization_header"),
    "basic": ("Authorization: Basic " + b64("svc:" + V2_PW), "authorization_header"),
    "azure-ad": (AZ_AD_SECRET, "azure_client_secret"),
    "slack-xoxb": (XOXB, "slack_token"),
    "slack-xapp": (XAPP, "slack_token"),
    "slack-webhook": (SLACK_WEBHOOK, "slack_token"),
    "jwt": (JWT, "jwt"),
}
CARRIERS = {
    "main.tf": lambda v: f'locals {{\n  x = "{v}"\n}}\n',
    "heredoc.tf": lambda v: f'resource "terraform_data" "a" {{\n  input = <<-EOT\n    {v}\n  EOT\n}}\n',
    "terraform.tfvars": lambda v: f'x = "{v}"\n',
    "terraform.tfvars.json": lambda v: json.dumps({"x": v}, indent=2),
    "setup.sh": lambda v: f"#!/bin/sh\nset -e\ncurl -fsS '{v}'\n",
    "user_data.tftpl": lambda v: f"#!/bin/bash\necho '{v}' > /etc/app.conf\n",
    "deploy.log": lambda v: f"\x1b[32m+\x1b[0m step 3/5\r\n{v}\r\n\x1b[31mfailed\x1b[0m\n",
    "record": lambda v: f"Timeline:\n10:42 on-call pasted {v} into the channel\n",
    "imported.jsonl": lambda v: json.dumps({"messages": [{"role": "user", "content": f"why does {v} fail?"}]}),
}


@pytest.mark.parametrize("carrier", sorted(CARRIERS))
@pytest.mark.parametrize("shape", sorted(VALUE_SHAPES))
def test_value_shape_in_every_carrier(shape: str, carrier: str) -> None:
    value, kind = VALUE_SHAPES[shape]
    canary = value.split("Bearer ")[-1].split("Basic ")[-1]
    text = CARRIERS[carrier](value)
    out, findings = scrub_text(text, carrier if "." in carrier else "")
    secret_part = canary.split("://", 1)[-1].split("@")[0].split(":")[-1] if "://" in canary else canary
    assert secret_part not in out
    assert kind in {f.kind for f in findings}
    assert scrub_text(out, carrier) == (out, [])


ASSIGNMENT_CARRIERS = {  # a password-named value, written the way each carrier writes an assignment
    "main.tf": lambda v: f'variable "db_password" {{\n  default = "{v}"\n}}\n',
    "terraform.tfvars": lambda v: f'DB_Password = "{v}"\n',
    "terraform.tfvars.json": lambda v: json.dumps({"db_password": v}),
    "setup.sh": lambda v: f"export DB_PASSWORD={v}\n",
    "heredoc.tf": lambda v: f'resource "x" "y" {{\n  user_data = <<EOF\nDB_PASSWORD={v} ./start\nEOF\n}}\n',
    "user_data.tftpl": lambda v: f"cat >/etc/app.env <<EOT\nDB_PASSWORD='{v}'\nEOT\n",
    "app.yaml": lambda v: f"database:\n  Password: {v}\n",
    "deploy.log": lambda v: f"$ env | grep PASS\r\nPGPASSWORD={v}\r\n",
    "record": lambda v: f"The runbook said: run `mysql --password={v}` then restart.\n",
    "imported.jsonl": lambda v: json.dumps({"messages": [{"role": "assistant", "content": f"export API_TOKEN={v}"}]}),
}


@pytest.mark.parametrize("carrier", sorted(ASSIGNMENT_CARRIERS))
def test_unquoted_and_quoted_assignments_in_every_carrier(carrier: str) -> None:
    value = "Xk9#mQ2$vL7!pw"  # shell metacharacters inside; unquoted forms stop at whitespace only
    out, findings = scrub_text(ASSIGNMENT_CARRIERS[carrier](value), carrier if "." in carrier else "")
    assert value not in out and "Xk9" not in out
    assert {f.kind for f in findings} <= {"password", "generic_secret"} and findings


def test_scrub_url() -> None:
    assert scrub_url(f"https://{GHP}@github.com/org/repo") == (
        "https://REDACTED_GITHUB_TOKEN@github.com/org/repo",
        [Finding("github_token", "url", 1)],
    )
    assert scrub_url("https://ci:Tr0ub&3#x@git.example.com/org/repo.git") == (
        "https://ci:REDACTED_BASIC_AUTH_URL@git.example.com/org/repo.git",
        [Finding("basic_auth_url", "url", 1)],
    )
    assert scrub_url(f"https://git.example.com/org/repo.git?private_token={V2_PW}")[0] == (
        "https://git.example.com/org/repo.git?private_token=REDACTED_GENERIC_SECRET"
    )
    for clean in (
        "https://github.com/org/repo",
        "ssh://git@github.com/org/repo.git",
        "git@github.com:org/repo.git",
        "file:///tmp/repos/a",
        "https://deploy@example.com:8443/org/repo",
        "/home/user/plain-dir",
    ):
        assert scrub_url(clean) == (clean, [])


@pytest.mark.parametrize(
    "text",
    [
        "https://" * 20000,  # many URLs, no userinfo
        "a://b:" + "c" * 100000 + "\n",  # one huge authority without "@"
        "x://:@" * 20000,
        "--password " * 20000,
        "DB_PASSWORD=" * 20000,
        "Authorization: Bearer " * 20000,
        "A" * 300000,  # one long base64 run (decodes to non-text)
        b64("export DB_PASSWORD=x\n" * 20000),  # a long wrapped script
    ],
    ids=["urls", "authority", "empty-userinfo", "flags", "env", "bearer", "base64-binary", "base64-script"],
)
def test_hostile_inputs_finish_v2(text: str) -> None:
    out, _ = scrub_text(text, "x.sh")
    assert scrub_text(out, "x.sh")[1] == []


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (f'x = "{XOXB}"\n', "slack_token"),
        (f'x = "{XOXP}"\n', "slack_token"),
        (f'x = "{SLACK_WEBHOOK}"\n', "slack_token"),
        (f'x = "{JWT}"\n', "jwt"),
        (f'x = "https://{GHP}@github.com/o/r"\n', "github_token"),
        (f'x = "https://oauth2:{GLPAT}@gitlab.com/o/r"\n', "gitlab_token"),
        ('x = "https://u:S3cretPw@h/x"\n', "basic_auth_url"),
        ("//registry.npmjs.org/:_authToken=npm_" + token("", 36, 115) + "\n", "npm_token"),
    ],
)
def test_detect_secrets_serves_these_shapes_in_our_flow(text: str, kind: str) -> None:
    """Where detect-secrets already fires (through our guards), our own rules are not needed."""
    from pipelines.collect.secrets.text import _candidate_lines

    spans = list(_plugin_spans(text, text.lower(), _candidate_lines(text.lower()), _detectors()))
    assert kind in {k for *_, k in spans}
    assert [f.kind for f in scrub_text(text, "main.tf")[1]] == [kind]


def test_detect_secrets_misses_these_shapes() -> None:
    """The shapes rules v2 adds: none of them is found by a detect-secrets plugin alone."""
    from pipelines.collect.secrets.text import _candidate_lines

    for text in (
        'u = "postgres://app:Tr0ub&3@db:5432/x"\n',
        'u = "redis://:Zk3pLm9xQ7@cache:6379/0"\n',
        f'u = "https://{HEX_TOKEN}@git.example.com/o/r"\n',
        f"export DB_PASSWORD={V2_PW}\n",
        f'h = {{ Authorization = "Bearer {OPAQUE}" }}\n',
        f'x = "{AZ_AD_SECRET}"\n',
        f'x = "{XAPP}"\n',
        f'x = "{SLACK_WORKFLOW}"\n',
    ):
        low = text.lower()
        assert list(_plugin_spans(text, low, _candidate_lines(low), _detectors())) == [], text
        assert scrub_text(text, "main.tf")[1], text


def test_synthetic_corpus_has_no_findings(tmp_path: Path) -> None:
    """Our own generated Terraform (every construct, cloud providers included) plants no secret: zero findings."""
    from pipelines.collect.synthetic import SyntheticConfig, generate_corpus

    repos = generate_corpus(SyntheticConfig(n_repos=6, seed=3, commits_per_repo=2, cloud_fraction=0.5), tmp_path)
    n_files = 0
    for repo in repos:
        for sha in repo.commits:
            names = git.Repo(repo.path).git.ls_tree("-r", "--name-only", sha).split()
            for name in names:
                text = git.Repo(repo.path).git.show(f"{sha}:{name}")
                assert scrub_text(text, name) == (text, []), name
                n_files += 1
    assert n_files > 20
