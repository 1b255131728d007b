"""The embedded default database of the ``records`` task: a real SQLite file of incident reports.

The default run has no company database to read, so this writes one: an ``incidents`` table of
postmortem-style reports (symptoms, an investigation timeline, root cause, resolution, follow-ups) drawn
from a dozen failure families common in cloud operations, each filled from seeded parameters (services,
ports, versions, limits, durations), plus ``audit_log`` and ``code_reviews`` tables. About 4% of the
incidents are still open (NULL root cause / resolution), the rows a real export also has.

Same ``(n, seed)`` → the same rows. Written with SQLAlchemy Core to a temp file, then renamed.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

logger = logging.getLogger(__name__)

DEMO_VERSION = 1  # bump when the generated content changes (the cached file name carries it)
OPEN_FRACTION = 0.04
BASE_TIME = datetime(2024, 1, 1, 0, 0, 0)

SERVICES = (
    "checkout-api",
    "payments-gateway",
    "auth-service",
    "search-indexer",
    "notification-worker",
    "inventory-api",
    "user-profile",
    "billing-batch",
    "media-transcoder",
    "ledger-service",
    "api-gateway",
    "recommendation-engine",
)
TEAMS = ("platform", "payments", "identity", "search", "growth", "data-infra", "core-api")
ENVIRONMENTS = ("prod", "prod", "prod", "staging")
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2")
SEVERITIES = ("SEV1", "SEV2", "SEV2", "SEV3", "SEV3", "SEV3", "SEV4")
VENDORS = ("Stripe", "Twilio", "SendGrid", "Auth0", "Algolia", "Segment")

METADATA = sa.MetaData()
INCIDENTS = sa.Table(
    "incidents",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("opened_at", sa.DateTime, nullable=False),
    sa.Column("resolved_at", sa.DateTime),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("service", sa.String(64), nullable=False),
    sa.Column("team", sa.String(32), nullable=False),
    sa.Column("environment", sa.String(16), nullable=False),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("severity", sa.String(8), nullable=False),
    sa.Column("category", sa.String(32), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("symptoms", sa.Text, nullable=False),
    sa.Column("timeline", sa.Text, nullable=False),
    sa.Column("root_cause", sa.Text),
    sa.Column("resolution", sa.Text),
    sa.Column("follow_ups", sa.Text),
    sa.Column("duration_minutes", sa.Integer),
    sa.Column("error_rate", sa.Float),
)
AUDIT_LOG = sa.Table(
    "audit_log",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("ts", sa.DateTime, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("resource", sa.Text, nullable=False),
    sa.Column("source_ip", sa.String(45), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("details", sa.Text, nullable=False),
)
CODE_REVIEWS = sa.Table(
    "code_reviews",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("repo", sa.String(128), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("diff", sa.Text, nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("reviewer", sa.String(64), nullable=False),
)


def _version(rng: random.Random) -> tuple[str, str]:
    """A release and the one before it, e.g. ("4.12.3", "4.12.2")."""
    major, minor, patch = rng.randint(1, 9), rng.randint(0, 30), rng.randint(1, 20)
    return f"{major}.{minor}.{patch}", f"{major}.{minor}.{patch - 1}"


# ---------------------------------------------------------------- failure families
# Each returns title, symptoms, investigation steps (no fix: the prompt must not contain the answer),
# root cause, resolution and follow-ups, all from the parameters drawn from ``rng``.

Family = Callable[[random.Random, str], dict[str, Any]]


def _db_pool(rng: random.Random, svc: str) -> dict[str, Any]:
    engine, port = rng.choice((("PostgreSQL", 5432), ("MySQL", 3306)))
    pool, ver, endpoint = rng.choice((20, 25, 40, 50)), _version(rng), rng.choice(("/orders", "/cart", "/refunds"))
    p99 = rng.randint(4, 30) * 1000
    return {
        "title": f"{svc}: database connection pool exhausted",
        "symptoms": f"p99 latency of {svc} rose to {p99} ms; logs show 'timeout acquiring connection from pool' "
        f"against the {engine} primary on port {port}; HTTP 503 on {endpoint}.",
        "steps": [
            f"alert: {svc} p99 latency above SLO",
            f"on-call saw all {pool} pool connections in use, database CPU normal",
            f"found that release {ver[0]} was deployed 40 minutes before the alert",
        ],
        "root_cause": f"Release {ver[0]} moved a call to an external API inside the database transaction of "
        f"{endpoint}. Each request held a connection for the whole external call, so the pool of {pool} "
        f"connections to {engine} (port {port}) was exhausted under normal load.",
        "resolution": f"Rolled {svc} back to {ver[1]}; connections returned to normal within minutes. The fix "
        "moves the external call out of the transaction.",
        "follow_ups": [
            "Alert on pool wait time, not only on latency",
            f"Add a statement/transaction timeout to {svc}'s {engine} sessions",
            "Load test endpoints that call external services before release",
        ],
    }


def _cert_expired(rng: random.Random, svc: str) -> dict[str, Any]:
    domain = f"{svc.partition('-')[0]}.{rng.choice(('example.com', 'internal.example.net', 'shop.example.org'))}"
    reason = rng.choice(
        (
            "a WAF rule that blocked /.well-known/acme-challenge/",
            "a DNS CNAME that pointed the challenge at the old load balancer",
            "an expired API token of the DNS provider used for DNS-01",
        )
    )
    days = rng.randint(10, 30)
    return {
        "title": f"TLS certificate for {domain} expired",
        "symptoms": f"Clients of {svc} fail with 'x509: certificate has expired or is not yet valid'; browsers show "
        f"NET::ERR_CERT_DATE_INVALID for https://{domain}.",
        "steps": [
            f"synthetic check for https://{domain} failed",
            "openssl s_client shows notAfter in the past",
            f"cert-manager Certificate resource for {domain} has Ready=False for {days} days",
        ],
        "root_cause": f"cert-manager could not renew the certificate for {domain} because of {reason}. Renewal "
        f"had been failing for {days} days and nobody was alerted.",
        "resolution": f"Fixed the challenge path, forced renewal with 'cmctl renew', and restarted the ingress "
        f"controller pods so {domain} served the new certificate.",
        "follow_ups": [
            "Alert when any certificate expires in under 14 days",
            "Alert on cert-manager Certificate Ready=False longer than 1 hour",
        ],
    }


def _oom(rng: random.Random, svc: str) -> dict[str, Any]:
    limit, ver = rng.choice((256, 512, 768, 1024)), _version(rng)
    cache = rng.choice(("LRU cache", "in-memory index", "response cache"))
    return {
        "title": f"{svc} pods OOMKilled in a restart loop",
        "symptoms": f"{svc} pods restart every few minutes with reason OOMKilled (exit code 137); "
        f"memory limit {limit}Mi; intermittent 502 from the ingress.",
        "steps": [
            "alert: CrashLoopBackOff",
            f"container memory climbs to {limit}Mi within minutes of start",
            f"release {ver[0]} went out the same morning",
        ],
        "root_cause": f"Release {ver[0]} raised the {cache} size from a count limit to an unbounded map keyed by "
        f"request id; memory grew with traffic until the {limit}Mi limit killed the container.",
        "resolution": f"Rolled back to {ver[1]}, then shipped a bounded {cache} with a size limit and a memory "
        f"request/limit of {limit * 2}Mi.",
        "follow_ups": [
            "Add a memory soak test to the release pipeline",
            "Alert on container memory above 80% of its limit",
            "Require a size bound on every in-process cache",
        ],
    }


def _dns(rng: random.Random, svc: str) -> dict[str, Any]:
    qps = rng.randint(20, 90) * 1000
    return {
        "title": f"DNS resolution failures from {svc}",
        "symptoms": f"{svc} logs 'dial tcp: lookup ... i/o timeout' and 'SERVFAIL'; outbound calls fail "
        "intermittently across the cluster.",
        "steps": [
            "errors spread across several services on the same cluster",
            f"CoreDNS pods at their CPU limit, {qps} queries/s",
            "most queries are for names with the cluster search domains appended",
        ],
        "root_cause": f"Pods use the default ndots:5, so every external lookup from {svc} was tried against each "
        f"search domain first; after a traffic increase CoreDNS was CPU-throttled at {qps} queries/s "
        "and dropped queries.",
        "resolution": "Set dnsConfig ndots:2 on the busiest deployments, used fully qualified names with a "
        "trailing dot, and scaled CoreDNS out with NodeLocal DNSCache.",
        "follow_ups": [
            "Enable NodeLocal DNSCache on all clusters",
            "Dashboard and alert on CoreDNS throttling and SERVFAIL rate",
        ],
    }


def _disk_full(rng: random.Random, svc: str) -> dict[str, Any]:
    node = f"ip-10-{rng.randint(0, 255)}-{rng.randint(0, 255)}-{rng.randint(1, 254)}"
    pct, gb = rng.randint(97, 100), rng.choice((50, 100, 200))
    return {
        "title": f"Disk full on {node} running {svc}",
        "symptoms": f"Node {node} reports DiskPressure; pods of {svc} evicted; writes fail with "
        f"'no space left on device'; root volume at {pct}% of {gb} GB.",
        "steps": [
            f"kubelet evicted pods on {node}",
            "du shows /var/log/containers using most of the volume",
            f"{svc} log level is DEBUG",
        ],
        "root_cause": f"DEBUG logging was left enabled on {svc} after an investigation; container logs filled the "
        f"{gb} GB root volume of {node} faster than log rotation could run.",
        "resolution": f"Set {svc} back to INFO, deleted rotated logs, and cordoned and replaced {node}.",
        "follow_ups": [
            "Expire temporary log-level changes automatically",
            "Alert on node disk usage above 85%",
            "Cap container log size in the kubelet configuration",
        ],
    }


def _kafka_lag(rng: random.Random, svc: str) -> dict[str, Any]:
    topic = rng.choice(("orders.v1", "payments.events", "user-signups", "inventory-updates"))
    lag, poll_ms = rng.randint(50, 900) * 1000, rng.choice((300000, 60000))
    return {
        "title": f"Consumer lag on {topic} for {svc}",
        "symptoms": f"Consumer group {svc} lag on {topic} reached {lag} messages and kept growing; downstream "
        "data is hours stale.",
        "steps": [
            "alert: consumer lag above threshold",
            "the group rebalances every few minutes",
            f"logs show 'consumer poll timeout has expired' (max.poll.interval.ms={poll_ms})",
        ],
        "root_cause": f"A slow downstream call made a batch of 500 records take longer than max.poll.interval.ms="
        f"{poll_ms}; the broker evicted the consumer, the group rebalanced, and the batch was redone, "
        "so the group made almost no progress.",
        "resolution": "Lowered max.poll.records to 50 and added a timeout to the downstream call; lag drained "
        "within two hours.",
        "follow_ups": [
            "Alert on rebalance rate per consumer group",
            "Move the slow call to an async worker queue",
        ],
    }


def _security_group(rng: random.Random, svc: str) -> dict[str, Any]:
    port = rng.choice((443, 8080, 8443, 5432, 6379))
    sg = f"sg-{rng.getrandbits(32):08x}"
    return {
        "title": f"{svc} unreachable after a Terraform apply",
        "symptoms": f"Connections to {svc} on port {port} time out; the load balancer marks all targets unhealthy.",
        "steps": [
            "a Terraform apply to the network stack finished minutes before",
            f"security group {sg} has no ingress rule for port {port}",
            "the plan showed the rule as destroyed and created",
        ],
        "root_cause": f"A refactor renamed the aws_security_group_rule resource for port {port} without a moved "
        f"block, so Terraform destroyed the old rule on {sg} and, because the new one failed to create with "
        "a duplicate-rule error, left the port closed.",
        "resolution": f"Re-added the ingress rule for port {port} with terraform import and added a moved block "
        "for the rename.",
        "follow_ups": [
            "Block plans that destroy security group rules in prod without approval",
            "Use moved blocks for every resource rename",
            "Run a reachability check after network applies",
        ],
    }


def _rate_limit(rng: random.Random, svc: str) -> dict[str, Any]:
    vendor, rps = rng.choice(VENDORS), rng.choice((25, 50, 100))
    return {
        "title": f"{svc} requests to {vendor} rejected with HTTP 429",
        "symptoms": f"{svc} gets 'HTTP 429 Too Many Requests' from {vendor}; user actions that call {vendor} fail.",
        "steps": [
            f"error rate of {vendor} calls rose to 60%",
            f"{vendor}'s limit for our account is {rps} requests/s",
            "retries happen immediately and in lockstep across pods",
        ],
        "root_cause": f"A batch job started calling {vendor} from {svc} at full speed; retries without backoff or "
        f"jitter multiplied traffic above the {rps} requests/s account limit.",
        "resolution": "Paused the batch job, then added exponential backoff with jitter and a client-side rate "
        f"limiter at {int(rps * 0.8)} requests/s.",
        "follow_ups": [
            "Share one rate limiter per vendor across services",
            "Honor Retry-After headers",
        ],
    }


def _secret_rotation(rng: random.Random, svc: str) -> dict[str, Any]:
    user = f"{svc.replace('-', '_')}_rw"
    return {
        "title": f"{svc} database authentication failures after credential rotation",
        "symptoms": f"{svc} logs 'FATAL: password authentication failed for user \"{user}\"'; requests needing the "
        "database fail.",
        "steps": [
            "the secrets manager rotated the database password an hour earlier",
            "new pods connect fine, old pods fail",
        ],
        "root_cause": f"{svc} reads the database password once at start-up; the scheduled rotation changed the "
        f"password of {user}, and running pods kept using the old one.",
        "resolution": f"Restarted {svc}; then changed it to re-read the secret on authentication failure.",
        "follow_ups": [
            "Use dual-user rotation so the old credential stays valid during rollout",
            "Test rotation in staging on a schedule",
        ],
    }


def _health_check(rng: random.Random, svc: str) -> dict[str, Any]:
    port, ver = rng.choice((8080, 8000, 9000)), _version(rng)
    return {
        "title": f"All {svc} targets unhealthy after deploy",
        "symptoms": f"The load balancer returns 503 for {svc}; target group health checks fail with 404.",
        "steps": [
            f"release {ver[0]} deployed",
            f"the target group checks GET /health on port {port}",
            "the application logs 404 for /health",
        ],
        "root_cause": f"Release {ver[0]} renamed the health endpoint from /health to /healthz, but the target "
        f"group (managed in Terraform) still checked /health on port {port}.",
        "resolution": f"Rolled back to {ver[1]}, then changed the target group health check path to /healthz in "
        "Terraform before redeploying.",
        "follow_ups": [
            "Keep health check paths in one shared config used by app and infrastructure",
            "Canary deploys that check target health before full rollout",
        ],
    }


def _redis_eviction(rng: random.Random, svc: str) -> dict[str, Any]:
    mb = rng.choice((512, 1024, 2048))
    return {
        "title": f"Users logged out: sessions evicted from Redis used by {svc}",
        "symptoms": f"Users are logged out at random; {svc} reports missing session keys; Redis evicted_keys rising.",
        "steps": [
            f"Redis used_memory at maxmemory {mb}mb",
            "maxmemory-policy is allkeys-lru",
            "a new feature stores large cache entries in the same instance",
        ],
        "root_cause": f"A new feature cached large objects in the Redis instance that also holds sessions; at "
        f"maxmemory {mb}mb with allkeys-lru, Redis evicted session keys.",
        "resolution": f"Moved the cache to its own Redis instance and set the session instance to "
        f"volatile-lru with {mb * 2}mb.",
        "follow_ups": [
            "Never share session storage with caches",
            "Alert on evicted_keys for session stores",
        ],
    }


def _clock_skew(rng: random.Random, svc: str) -> dict[str, Any]:
    skew, ami = rng.randint(40, 400), f"ami-{rng.getrandbits(64):016x}"
    return {
        "title": f"JWT validation failures in {svc} on new nodes",
        "symptoms": f"{svc} rejects tokens with 'token used before issued' (iat in the future) on some nodes only.",
        "steps": [
            f"failing nodes all run the new image {ami}",
            f"their clocks are {skew} seconds behind",
            "chronyd is not running on them",
        ],
        "root_cause": f"The new base image {ami} disabled chronyd; clocks drifted {skew} seconds and token "
        "timestamps from other services looked like they came from the future.",
        "resolution": "Re-enabled chronyd in the image, replaced the nodes, and allowed 30 seconds of leeway in "
        "JWT validation.",
        "follow_ups": [
            "Check time sync in the image build tests",
            "Alert on node clock offset above 1 second",
        ],
    }


FAMILIES: dict[str, Family] = {
    "database": _db_pool,
    "certificates": _cert_expired,
    "memory": _oom,
    "dns": _dns,
    "disk": _disk_full,
    "messaging": _kafka_lag,
    "network": _security_group,
    "rate_limit": _rate_limit,
    "secrets": _secret_rotation,
    "health_check": _health_check,
    "cache": _redis_eviction,
    "time_sync": _clock_skew,
}


def _incident(rng: random.Random, i: int) -> dict[str, Any]:
    """Incident row ``i`` (1-based)."""
    category = rng.choice(sorted(FAMILIES))
    svc = rng.choice(SERVICES)
    body = FAMILIES[category](rng, svc)
    opened = BASE_TIME + timedelta(minutes=i * 173 + rng.randint(0, 120))
    duration = rng.randint(12, 480)
    t = opened
    steps = []
    for step in body["steps"]:
        steps.append(f"{t:%H:%M} {step}")
        t += timedelta(minutes=rng.randint(2, 25))
    is_open = rng.random() < OPEN_FRACTION
    return {
        "id": i,
        "opened_at": opened,
        "resolved_at": None if is_open else opened + timedelta(minutes=duration),
        "status": "investigating" if is_open else "resolved",
        "service": svc,
        "team": rng.choice(TEAMS),
        "environment": rng.choice(ENVIRONMENTS),
        "region": rng.choice(REGIONS),
        "severity": rng.choice(SEVERITIES),
        "category": category,
        "title": body["title"],
        "symptoms": body["symptoms"],
        "timeline": "\n".join(steps),
        "root_cause": None if is_open else body["root_cause"],
        "resolution": None if is_open else body["resolution"],
        "follow_ups": None if is_open else "\n".join(f"- {f}" for f in body["follow_ups"]),
        "duration_minutes": None if is_open else duration,
        "error_rate": round(rng.uniform(0.5, 60.0), 2),
    }


def _audit(rng: random.Random, i: int) -> dict[str, Any]:
    actor = rng.choice(("alice", "bob", "carol", "deploy-bot", "terraform-ci", "dave"))
    action, resource, outcome = rng.choice(
        (
            ("iam:AttachRolePolicy", "arn:aws:iam::123456789012:role/{svc}", "success"),
            ("s3:PutBucketPolicy", "arn:aws:s3:::{svc}-assets", "success"),
            ("ec2:AuthorizeSecurityGroupIngress", "sg-{hex}", "success"),
            ("kms:ScheduleKeyDeletion", "arn:aws:kms:us-east-1:123456789012:key/{hex}", "denied"),
            ("secretsmanager:GetSecretValue", "{svc}/db-password", "success"),
            ("console:Login", "aws-console", "failure"),
        )
    )
    resource = resource.format(svc=rng.choice(SERVICES), hex=f"{rng.getrandbits(32):08x}")
    ip = f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    return {
        "id": i,
        "ts": BASE_TIME + timedelta(seconds=i * 97 + rng.randint(0, 60)),
        "actor": actor,
        "action": action,
        "resource": resource,
        "source_ip": ip,
        "outcome": outcome,
        "details": f"{actor} called {action} on {resource} from {ip}: {outcome}",
    }


def _review(rng: random.Random, i: int) -> dict[str, Any]:
    svc = rng.choice(SERVICES)
    diff, comment, severity = rng.choice(
        (
            (
                '+  cidr_blocks = ["0.0.0.0/0"]\n+  from_port   = 22',
                "SSH open to the internet; restrict to the bastion CIDR.",
                "high",
            ),
            ("+  storage_encrypted = false", "RDS storage must be encrypted; set storage_encrypted = true.", "high"),
            (
                '+  acl = "public-read"',
                "This bucket holds internal data; use private ACL and a CloudFront OAC.",
                "high",
            ),
            (
                '+  password = "hunter2"',
                "Hard-coded secret; read it from Secrets Manager or a sensitive variable.",
                "high",
            ),
            (
                "-  lifecycle {\n-    prevent_destroy = true\n-  }",
                "Keep prevent_destroy on the prod database.",
                "medium",
            ),
            ('+  instance_type = "m5.24xlarge"', "Is this size needed? It costs ~$4.6/h; start with m5.xlarge.", "low"),
        )
    )
    return {
        "id": i,
        "repo": f"infra-{svc}",
        "path": rng.choice(("main.tf", "modules/network/main.tf", "envs/prod/main.tf", "database.tf")),
        "diff": diff,
        "comment": comment,
        "severity": severity,
        "reviewer": rng.choice(("alice", "bob", "carol", "dave")),
    }


def _rows(make: Callable[[random.Random, int], dict[str, Any]], n: int, seed: int, salt: str) -> list[dict]:
    rng = random.Random(f"{seed}:{salt}")
    return [make(rng, i) for i in range(1, n + 1)]


def write_demo_db(path: str | Path, n: int = 3000, seed: int = 0) -> Path:
    """Write the demo database (``n`` incidents, ``n`` audit entries, ``n // 3`` reviews) to ``path``.

    Overwrites ``path`` atomically (temp file in the same directory, then rename).
    """
    if n < 1:
        raise ValueError(f"the demo database needs at least 1 incident, got n={n}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        engine = sa.create_engine(f"sqlite:///{tmp}")
        try:
            METADATA.create_all(engine)
            with engine.begin() as conn:
                conn.execute(INCIDENTS.insert(), _rows(_incident, n, seed, "incidents"))
                conn.execute(AUDIT_LOG.insert(), _rows(_audit, n, seed, "audit"))
                conn.execute(CODE_REVIEWS.insert(), _rows(_review, max(1, n // 3), seed, "reviews"))
        finally:
            engine.dispose()
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.info("wrote demo records database %s (%d incidents, seed %d)", target, n, seed)
    return target


def default_demo_path(n: int = 3000, seed: int = 0) -> Path:
    """Where the embedded default database is cached: under ``$TFPREDICT_HOME`` (name carries version/n/seed)."""
    from pipelines.terraform.install import tfpredict_home

    return tfpredict_home() / "records" / f"demo-v{DEMO_VERSION}-n{n}-s{seed}.sqlite"


def ensure_demo_db(path: str | Path | None = None, n: int = 3000, seed: int = 0) -> Path:
    """The demo database at ``path`` (default: :func:`default_demo_path`), written once if missing."""
    target = Path(path) if path else default_demo_path(n, seed)
    if target.exists():
        return target
    return write_demo_db(target, n, seed)
