"""GitHub repository search as a source list (REST ``GET /search/repositories``).

Search answers at most 1000 results per query, pages through ``Link`` headers (followed as given,
never rebuilt), and rate-limits hard: 10 searches a minute anonymously, 30 with a token. A primary
limit (``X-RateLimit-Remaining: 0``) is waited out until ``X-RateLimit-Reset``; a secondary limit
waits ``Retry-After``; 5xx and connection errors get a few retries with exponential backoff.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import requests
from pydantic import BaseModel, ConfigDict, Field

from pipelines.collect.sources import Source, SourceApiError, check_url

logger = logging.getLogger(__name__)

API_VERSION = "2022-11-28"
USER_AGENT = "tfpredict-collect/0.1"
SEARCH_RESULT_CAP = 1000  # GitHub search never returns more than this per query
MAX_TRIES = 4  # attempts per request on 5xx / connection errors
MAX_RATE_LIMIT_WAITS = 5  # rate-limit waits per request before giving up
BACKOFF_S = 1.0  # first retry delay; doubles each time
SECONDARY_DEFAULT_WAIT_S = 60.0  # GitHub: "wait at least one minute" when no header says how long
TIMEOUT_S = (10.0, 60.0)  # connect, read


class GitHubSearchConfig(BaseModel):
    """What to search for on GitHub; qualifiers are appended to ``query`` by build_query."""

    model_config = ConfigDict(extra="forbid")

    query: str
    language: str | None = "HCL"
    min_stars: int = Field(0, ge=0)
    include_forks: bool = False
    licenses: list[str] = []  # SPDX ids, case-insensitive; empty = any (and unlicensed repos kept)
    max_repos: int = Field(100, ge=1)
    per_page: int = Field(100, ge=1, le=100)
    sort: str = Field("stars", pattern="^(stars|forks|help-wanted-issues|updated)$")
    api_url: str = "https://api.github.com"
    token_env: str = "GITHUB_TOKEN"
    max_wait_s: float = Field(900, ge=0)  # longest single rate-limit wait before failing


def build_query(cfg: GitHubSearchConfig) -> str:
    """The ``q`` parameter: the user's terms plus language, stars and fork qualifiers."""
    parts = [cfg.query.strip()] if cfg.query.strip() else []
    if cfg.language is not None:
        lang = f'"{cfg.language}"' if " " in cfg.language else cfg.language
        parts.append(f"language:{lang}")
    if cfg.min_stars > 0:
        parts.append(f"stars:>={cfg.min_stars}")
    if not cfg.include_forks:
        parts.append("fork:false")
    return " ".join(parts)


def github_search(
    cfg: GitHubSearchConfig,
    *,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> list[Source]:
    """Search GitHub and return up to ``max_repos`` Sources (clone URL at the default branch)."""
    token = os.environ.get(cfg.token_env) or None
    headers = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": USER_AGENT,
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"
    q = build_query(cfg)
    allowed_licenses = {lic.lower() for lic in cfg.licenses}
    url: str | None = f"{cfg.api_url.rstrip('/')}/search/repositories"
    params: dict[str, Any] | None = {"q": q, "sort": cfg.sort, "order": "desc", "per_page": cfg.per_page}
    logger.info("github search q=%r (token: %s)", q, "yes" if token else f"no, ${cfg.token_env} unset")

    own_session = session is None
    http = session or requests.Session()
    kept: list[Source] = []
    seen: set[str] = set()
    dropped: Counter[str] = Counter()
    pages = results = 0
    try:
        while url and len(kept) < cfg.max_repos and results < SEARCH_RESULT_CAP:
            resp = _get(http, url, params, headers=headers, cfg=cfg, q=q, sleep=sleep, clock=clock)
            body = _json(resp)
            items = body.get("items") or []
            pages += 1
            results += len(items)
            if pages == 1 and body.get("total_count", 0) > SEARCH_RESULT_CAP:
                logger.warning(
                    "github search matches %d repos but returns at most %d: narrow the query "
                    "(e.g. split by stars ranges) to reach the rest",
                    body["total_count"],
                    SEARCH_RESULT_CAP,
                )
            if body.get("incomplete_results"):
                logger.warning("github search page %d has incomplete results (GitHub timed out)", pages)
            for item in items:
                reason = _drop_reason(item, allowed_licenses, cfg.include_forks, seen)
                if reason:
                    dropped[reason] += 1
                elif len(kept) < cfg.max_repos:
                    seen.add(item["full_name"])
                    kept.append(_to_source(item))
            logger.info(
                "github search page %d: %d items, kept %d so far, dropped %s",
                pages,
                len(items),
                len(kept),
                dict(dropped),
            )
            if not items:
                break
            url = resp.links.get("next", {}).get("url")
            params = None  # the next link carries the whole query
    finally:
        if own_session:
            http.close()
    logger.info("github search: %d pages, kept %d repos, dropped %s", pages, len(kept), dict(dropped))
    return kept


def _drop_reason(item: dict[str, Any], allowed: set[str], include_forks: bool, seen: set[str]) -> str | None:
    if item.get("full_name") in seen:
        return "duplicate"  # results can shift between pages
    if item.get("fork") and not include_forks:
        return "fork"
    if allowed and (_spdx(item) or "").lower() not in allowed:
        return "license"
    if not isinstance(item.get("clone_url"), str) or check_url(item["clone_url"]):
        return "bad_url"
    return None


def _spdx(item: dict[str, Any]) -> str | None:
    spdx = (item.get("license") or {}).get("spdx_id")
    return None if spdx in (None, "", "NOASSERTION") else spdx


def _to_source(item: dict[str, Any]) -> Source:
    labels = {"full_name": item["full_name"], "stars": str(item.get("stargazers_count", 0))}
    return Source(
        url=item["clone_url"],
        kind="git",
        ref=item.get("default_branch") or None,
        origin="github",
        labels=labels,
        license=_spdx(item),
    )


def _get(
    http: requests.Session,
    url: str,
    params: dict[str, Any] | None,
    *,
    headers: dict[str, str],
    cfg: GitHubSearchConfig,
    q: str,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> requests.Response:
    """GET with GitHub's rate-limit protocol and bounded retries; raises SourceApiError on failure."""
    failures = waits = 0
    while True:
        try:
            resp = http.get(url, params=params, headers=headers, timeout=TIMEOUT_S)
        except requests.RequestException as e:
            failures += 1
            if failures >= MAX_TRIES:
                raise SourceApiError(
                    f"GitHub API unreachable at {cfg.api_url} after {failures} tries ({e}): "
                    f"check the network or api_url"
                ) from e
            sleep(BACKOFF_S * 2 ** (failures - 1))
            continue
        status = resp.status_code
        if status in (403, 429) and (wait := _rate_limit_wait(resp, clock)) is not None:
            waits += 1
            if wait > cfg.max_wait_s or waits > MAX_RATE_LIMIT_WAITS:
                raise SourceApiError(_rate_limit_message(resp, wait, waits, cfg))
            logger.warning("github rate limit (%d): sleeping %.0f s, then retrying %s", status, wait, resp.url)
            sleep(wait)
            continue
        if status >= 500:
            failures += 1
            if failures >= MAX_TRIES:
                raise SourceApiError(
                    f"GitHub API failed with HTTP {status} {failures} times for {resp.url}: "
                    f"{_message(resp)}; GitHub may be down (https://www.githubstatus.com), retry later"
                )
            delay = BACKOFF_S * 2 ** (failures - 1)
            logger.warning("github HTTP %d, retry %d in %.0f s", status, failures, delay)
            sleep(delay)
            continue
        if status == 401:
            raise SourceApiError(
                f"GitHub rejected the token in ${cfg.token_env} (HTTP 401: {_message(resp)}): check "
                f"{cfg.token_env} (expired or revoked?) or unset it to search anonymously"
            )
        if status == 422:
            raise SourceApiError(f"GitHub rejected the search query {q!r} (HTTP 422): {_message(resp)}")
        if status >= 400:
            raise SourceApiError(f"GitHub API answered HTTP {status} for {resp.url}: {_message(resp)}")
        return resp


def _rate_limit_wait(resp: requests.Response, clock: Callable[[], float]) -> float | None:
    """Seconds to wait for a rate-limited answer, or None when the 403/429 is not a rate limit."""
    h = resp.headers
    if h.get("Retry-After", "").strip().isdigit():
        return float(h["Retry-After"])  # secondary rate limit
    if h.get("X-RateLimit-Remaining") == "0" and h.get("X-RateLimit-Reset", "").strip().isdigit():
        return max(float(h["X-RateLimit-Reset"]) - clock(), 0.0) + 1.0  # primary: until reset, +1 s
    if "rate limit" in _message(resp).lower():
        return SECONDARY_DEFAULT_WAIT_S
    return None


def _rate_limit_message(resp: requests.Response, wait: float, waits: int, cfg: GitHubSearchConfig) -> str:
    reset = resp.headers.get("X-RateLimit-Reset", "")
    when = (
        datetime.fromtimestamp(int(reset), tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        if reset.isdigit()
        else f"in {wait:.0f} s"
    )
    why = (
        f"the wait ({wait:.0f} s) exceeds max_wait_s={cfg.max_wait_s:g}"
        if wait > cfg.max_wait_s
        else f"still limited after {waits - 1} waits"
    )
    return (
        f"GitHub API rate limit hit (HTTP {resp.status_code}: {_message(resp)}); it resets at {when}, and "
        f"{why}. Rerun after the reset, raise max_wait_s, or set ${cfg.token_env} for a higher limit"
    )


def _message(resp: requests.Response) -> str:
    """GitHub's error text: ``message`` plus each ``errors[].message``."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200].strip() or resp.reason
    if not isinstance(body, dict):
        return str(body)[:200]
    parts = [str(body.get("message") or resp.reason)]
    for err in body.get("errors") or []:
        if isinstance(err, dict) and err.get("message"):
            parts.append(str(err["message"]))
        elif isinstance(err, dict):
            parts.append(", ".join(f"{k}={v}" for k, v in err.items()))
    return "; ".join(parts)


def _json(resp: requests.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError as e:
        raise SourceApiError(f"GitHub answered non-JSON for {resp.url}: check api_url ({resp.text[:120]!r})") from e
    if not isinstance(body, dict):
        raise SourceApiError(f"GitHub answered unexpected JSON for {resp.url}: check api_url")
    return body
