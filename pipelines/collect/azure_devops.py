"""Azure DevOps git repositories of an organization (or one project) as a source list.

REST API 7.1: list the projects (paged by the ``x-ms-continuationtoken`` response header, passed
back as ``continuationToken``), then each project's git repositories. Auth is HTTP basic with an
empty user and a personal access token. A missing or bad PAT often gets no 401 but a ``203`` with an
HTML sign-in page, so anything that is not JSON is treated as an authentication failure.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import requests
from pydantic import BaseModel, ConfigDict, Field

from pipelines.collect.sources import Source, SourceApiError, check_url

logger = logging.getLogger(__name__)

API_VERSION = "7.1"
USER_AGENT = "tfpredict-collect/0.1"
MAX_TRIES = 4  # attempts per request on 5xx / connection errors
MAX_RATE_LIMIT_WAITS = 5  # 429 waits per request before giving up
BACKOFF_S = 1.0  # first retry delay; doubles each time
DEFAULT_RETRY_AFTER_S = 30.0  # a 429 without Retry-After
TIMEOUT_S = (10.0, 60.0)  # connect, read


class AzureDevOpsConfig(BaseModel):
    """Which Azure DevOps organization/project to list; the PAT is read from ``pat_env``."""

    model_config = ConfigDict(extra="forbid")

    organization: str = Field(min_length=1)
    project: str | None = None  # None = every project of the organization
    base_url: str = "https://dev.azure.com"
    pat_env: str = "AZURE_DEVOPS_PAT"
    max_repos: int = Field(1000, ge=1)
    include_disabled: bool = False


def azure_devops_repos(
    cfg: AzureDevOpsConfig,
    *,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Source]:
    """Sources for the git repositories of ``cfg.project`` (or of every project), at their default branch."""
    pat = os.environ.get(cfg.pat_env) or None
    org_url = f"{cfg.base_url.rstrip('/')}/{quote(cfg.organization, safe='')}"
    own_session = session is None
    http = session or requests.Session()
    client = _Client(http, pat, cfg, sleep)
    kept: list[Source] = []
    dropped: Counter[str] = Counter()
    try:
        if cfg.project:
            projects = [cfg.project]
        else:
            projects = [p["name"] for p in client.paged(f"{org_url}/_apis/projects")]
            logger.info("azure devops %s: %d projects", cfg.organization, len(projects))
        for project in projects:
            repos = list(client.paged(f"{org_url}/{quote(project, safe='')}/_apis/git/repositories"))
            for repo in repos:
                reason = _drop_reason(repo, cfg.include_disabled)
                if reason:
                    dropped[reason] += 1
                elif len(kept) < cfg.max_repos:
                    kept.append(_to_source(repo, project))
            logger.info("azure devops project %r: %d repos, kept %d so far", project, len(repos), len(kept))
            if len(kept) >= cfg.max_repos:
                break
    finally:
        if own_session:
            http.close()
    logger.info("azure devops %s: kept %d repos, dropped %s", cfg.organization, len(kept), dict(dropped))
    return kept


def _drop_reason(repo: dict[str, Any], include_disabled: bool) -> str | None:
    if repo.get("isDisabled") and not include_disabled:
        return "disabled"
    if not repo.get("defaultBranch"):
        return "empty"  # no commits yet: nothing to clone
    if not isinstance(repo.get("remoteUrl"), str) or check_url(repo["remoteUrl"]):
        return "bad_url"
    return None


def _to_source(repo: dict[str, Any], project: str) -> Source:
    project_name = (repo.get("project") or {}).get("name") or project
    return Source(
        url=repo["remoteUrl"],
        kind="git",
        ref=repo["defaultBranch"].removeprefix("refs/heads/"),
        origin="azure_devops",
        labels={"project": project_name, "name": str(repo.get("name", ""))},
    )


class _Client:
    """GETs against one organization with auth, 429 waits, bounded 5xx retries and paging."""

    def __init__(
        self,
        http: requests.Session,
        pat: str | None,
        cfg: AzureDevOpsConfig,
        sleep: Callable[[float], None],
    ) -> None:
        self.http = http
        self.auth = ("", pat) if pat else None
        self.cfg = cfg
        self.sleep = sleep
        self.headers = {"Accept": "application/json", "User-Agent": USER_AGENT}

    def paged(self, url: str) -> Iterator[dict[str, Any]]:
        """Every item of ``value`` across pages linked by the x-ms-continuationtoken header."""
        params = {"api-version": API_VERSION}
        seen_tokens: set[str] = set()
        while True:
            resp = self.get(url, params)
            try:
                body = resp.json()
            except ValueError as e:
                raise SourceApiError(f"Azure DevOps answered invalid JSON for {resp.url}: check base_url") from e
            if not isinstance(body, dict) or not isinstance(body.get("value", []), list):
                raise SourceApiError(f"Azure DevOps answered an unexpected JSON shape for {resp.url}")
            yield from body.get("value") or []
            token = resp.headers.get("x-ms-continuationtoken")
            if not token:
                return
            if token in seen_tokens:
                raise SourceApiError(f"Azure DevOps repeated continuation token {token!r} for {url}")
            seen_tokens.add(token)
            params = {"api-version": API_VERSION, "continuationToken": token}

    def get(self, url: str, params: dict[str, str]) -> requests.Response:
        """One GET, retried on 429 (Retry-After) and 5xx; raises SourceApiError with how to fix it."""
        failures = waits = 0
        while True:
            try:
                resp = self.http.get(
                    url,
                    params=params,
                    headers=self.headers,
                    auth=self.auth,
                    timeout=TIMEOUT_S,
                    allow_redirects=False,
                )
            except requests.RequestException as e:
                failures += 1
                if failures >= MAX_TRIES:
                    raise SourceApiError(
                        f"Azure DevOps unreachable at {self.cfg.base_url} after {failures} tries ({e}): "
                        f"check the network or base_url"
                    ) from e
                self.sleep(BACKOFF_S * 2 ** (failures - 1))
                continue
            status = resp.status_code
            if status == 429 or (status == 503 and "Retry-After" in resp.headers):
                waits += 1
                if waits > MAX_RATE_LIMIT_WAITS:
                    raise SourceApiError(
                        f"Azure DevOps kept throttling (HTTP {status}) {url} after {waits - 1} waits: "
                        f"retry later or list fewer projects"
                    )
                wait = _retry_after(resp)
                logger.warning("azure devops throttled (%d): sleeping %.0f s, then retrying %s", status, wait, url)
                self.sleep(wait)
                continue
            if status >= 500:
                failures += 1
                if failures >= MAX_TRIES:
                    raise SourceApiError(
                        f"Azure DevOps failed with HTTP {status} {failures} times for {resp.url}: "
                        f"{_message(resp)}; retry later"
                    )
                self.sleep(BACKOFF_S * 2 ** (failures - 1))
                continue
            if status in (203, 401) or 300 <= status < 400 or (status == 200 and not _is_json(resp)):
                raise SourceApiError(self._auth_message(status))
            if status == 404:
                raise SourceApiError(
                    f"Azure DevOps answered 404 for {resp.url}: {_message(resp)}; check organization "
                    f"{self.cfg.organization!r} and project {self.cfg.project!r}"
                )
            if status >= 400:
                raise SourceApiError(f"Azure DevOps answered HTTP {status} for {resp.url}: {_message(resp)}")
            return resp

    def _auth_message(self, status: int) -> str:
        env = self.cfg.pat_env
        what = "a sign-in page" if status != 401 else "401 Unauthorized"
        if self.auth is None:
            return (
                f"Azure DevOps answered {what} (HTTP {status}) for organization {self.cfg.organization!r}: "
                f"set ${env} to a personal access token with the Code (Read) scope (and Project and Team "
                f"(Read) to list projects)"
            )
        return (
            f"Azure DevOps rejected the personal access token in ${env} ({what}, HTTP {status}): it may be "
            f"expired, revoked, made for another organization than {self.cfg.organization!r}, or lack the "
            f"Code (Read) scope; create a new PAT and set ${env}"
        )


def _retry_after(resp: requests.Response) -> float:
    value = resp.headers.get("Retry-After", "").strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        return DEFAULT_RETRY_AFTER_S


def _is_json(resp: requests.Response) -> bool:
    return "json" in resp.headers.get("Content-Type", "").lower()


def _message(resp: requests.Response) -> str:
    """Azure's error text (``message`` of the JSON body) or the start of the body."""
    if _is_json(resp):
        try:
            body = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])
    return " ".join(resp.text[:200].split()) or resp.reason
