"""Tests for pipelines.collect.secrets: planted, format-valid fake secrets must be redacted exactly,
non-secrets kept, HCL kept parseable, and nothing secret may survive in outputs, findings or logs.

No network and no fakes: detect-secrets runs in-process. Planted values are obviously fake (the AWS
documentation example pair, seeded random tokens, PEM bodies of seeded random bytes) and are built
by helpers so that the test source itself does not look like a leak to scanners.
"""

from __future__ import annotations

import base64
import copy
import logging
import random
import string

import hcl2
import pytest

from pipelines.collect.secrets import (
    _DS_KINDS,
    _DS_PREFIX_GROUP_PLUGINS,
    _LINE_PLUGINS,
    _PLUGIN_GUARDS,
    KINDS,
    Finding,
    _detectors,
    count_by_kind,
    placeholder,
    scrub_files,
    scrub_json,
    scrub_text,
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
