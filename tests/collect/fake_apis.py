"""Fake GitHub search and Azure DevOps REST APIs for tests: third-party SaaS, faked at the HTTP layer.

Each fake is a real ``http.server.ThreadingHTTPServer`` on 127.0.0.1 (port 0) in a daemon thread,
answering with the JSON shapes, pagination (GitHub ``Link`` headers; Azure ``x-ms-continuationtoken``),
auth answers (GitHub 401 "Bad credentials"; Azure 203 sign-in page / 401) and rate-limit headers of
the real services. Every request is recorded (``.requests``) so tests can assert what was sent, and
``inject`` makes one chosen request get a canned reply (rate limits, 5xx, 422) instead.
"""

from __future__ import annotations

import base64
import json
import math
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

GITHUB_DOCS = "https://docs.github.com/rest"


@dataclass(frozen=True)
class Request:
    """One request the fake received."""

    method: str
    target: str  # raw path?query exactly as sent
    path: str  # percent-decoded path
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names


@dataclass
class Reply:
    """One answer: a dict/list body is sent as JSON, a str as text/html."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class LoopbackHttp:
    """A threaded HTTP server on 127.0.0.1 (port 0) whose GET and POST requests go to ``self._serve``; a
    context manager. The base of every fake SaaS API in the tests."""

    def __init__(self) -> None:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                api._serve(self)

            def do_POST(self) -> None:
                api._serve(self)

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class FakeApi(LoopbackHttp):
    """A threaded HTTP server that records requests and answers via ``handle`` (or an injected Reply)."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Request] = []
        self._injected: dict[int, Reply] = {}
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.base_url

    def inject(self, reply: Reply, *, at: int | None = None) -> None:
        """Answer request number ``at`` (0-based; default: the next one) with ``reply``, once."""
        with self._lock:
            self._injected[len(self.requests) if at is None else at] = reply

    def handle(self, req: Request) -> Reply:
        raise NotImplementedError

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        req = Request(
            method=h.command,
            target=h.path,
            path=unquote(parts.path),
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in h.headers.items()},
        )
        with self._lock:
            index = len(self.requests)
            self.requests.append(req)
            reply = self._injected.pop(index, None)
        if reply is None:
            reply = self.handle(req)
        if isinstance(reply.body, str):
            data, ctype = reply.body.encode(), "text/html; charset=utf-8"
        else:
            data, ctype = json.dumps(reply.body).encode(), "application/json; charset=utf-8"
        h.send_response(reply.status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        for k, v in reply.headers.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)


# ---------------------------------------------------------------- GitHub


def github_repo(
    full_name: str,
    stars: int,
    *,
    license: str | None = "MIT",
    fork: bool = False,
    language: str | None = "HCL",
    default_branch: str = "main",
    description: str = "Terraform modules",
) -> dict[str, Any]:
    """A search item shaped like GitHub's (a representative subset of its fields)."""
    owner, name = full_name.split("/")
    rid = int(uuid.uuid5(uuid.NAMESPACE_URL, full_name).int % 10**9)
    lic = None
    if license is not None:
        lic = {
            "key": license.lower(),
            "name": f"{license} License",
            "spdx_id": license,
            "url": None if license == "NOASSERTION" else f"https://api.github.com/licenses/{license.lower()}",
            "node_id": "MDc6TGljZW5zZTEz",
        }
    return {
        "id": rid,
        "node_id": f"R_{rid}",
        "name": name,
        "full_name": full_name,
        "private": False,
        "owner": {"login": owner, "id": rid + 1, "type": "Organization"},
        "html_url": f"https://github.com/{full_name}",
        "description": description,
        "fork": fork,
        "url": f"https://api.github.com/repos/{full_name}",
        "git_url": f"git://github.com/{full_name}.git",
        "ssh_url": f"git@github.com:{full_name}.git",
        "clone_url": f"https://github.com/{full_name}.git",
        "default_branch": default_branch,
        "stargazers_count": stars,
        "watchers_count": stars,
        "forks_count": 0,
        "size": 120,
        "language": language,
        "license": lic,
        "archived": False,
        "disabled": False,
        "topics": ["terraform"],
        "visibility": "public",
        "created_at": "2020-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
        "pushed_at": "2024-01-01T00:00:00Z",
        "score": 1.0,
    }


def github_primary_rate_limit(reset_epoch: int) -> Reply:
    """403 with X-RateLimit-Remaining: 0, as GitHub answers when the hourly/minute quota is spent."""
    return Reply(
        403,
        {
            "message": "API rate limit exceeded for 127.0.0.1. (But here's the good news: Authenticated "
            "requests get a higher rate limit. Check out the documentation for more details.)",
            "documentation_url": f"{GITHUB_DOCS}/overview/rate-limits-for-the-rest-api",
        },
        {
            "X-RateLimit-Limit": "10",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(reset_epoch),
            "X-RateLimit-Used": "10",
            "X-RateLimit-Resource": "search",
        },
    )


def github_secondary_rate_limit(retry_after: int, status: int = 403) -> Reply:
    """403/429 with Retry-After, GitHub's secondary (abuse) rate limit."""
    return Reply(
        status,
        {
            "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            "documentation_url": f"{GITHUB_DOCS}/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
        },
        {"Retry-After": str(retry_after)},
    )


def github_error(status: int, message: str, errors: list[dict[str, str]] | None = None) -> Reply:
    body: dict[str, Any] = {"message": message, "documentation_url": GITHUB_DOCS, "status": str(status)}
    if errors is not None:
        body["errors"] = errors
    return Reply(status, body)


class FakeGitHub(FakeApi):
    """``GET /search/repositories`` over a fixed list of repos, with GitHub's qualifiers and paging."""

    def __init__(self, repos: list[dict[str, Any]], *, valid_token: str | None = None) -> None:
        super().__init__()
        self.repos = repos
        self.valid_token = valid_token
        self.links_served: list[str] = []  # every rel="next" URL handed out, in order

    def handle(self, req: Request) -> Reply:
        if req.path != "/search/repositories":
            return github_error(404, "Not Found")
        auth = req.headers.get("authorization")
        if auth is not None and auth != f"Bearer {self.valid_token}":
            return github_error(401, "Bad credentials")
        q = req.query.get("q", "").strip()
        if not q:
            return github_error(422, "Validation Failed", [{"resource": "Search", "field": "q", "code": "missing"}])
        per_page = min(int(req.query.get("per_page", 30)), 100)
        page = int(req.query.get("page", 1))
        if (page - 1) * per_page >= 1000:
            return github_error(422, "Only the first 1000 search results are available")
        matches = self._search(q)
        items = matches[(page - 1) * per_page : page * per_page]
        last = max(math.ceil(min(len(matches), 1000) / per_page), 1)
        links = {}
        if page < last:
            links["next"] = page + 1
        links["last"] = last
        if page > 1:
            links["prev"] = page - 1
            links["first"] = 1
        rels = {
            rel: f"{self.url}/search/repositories?{urlencode({**req.query, 'page': n})}" for rel, n in links.items()
        }
        if "next" in rels:
            self.links_served.append(rels["next"])
        headers = {
            "Link": ", ".join(f'<{u}>; rel="{rel}"' for rel, u in rels.items()),
            "X-RateLimit-Limit": "30",
            "X-RateLimit-Remaining": "29",
            "X-RateLimit-Reset": "4102444800",
            "X-RateLimit-Used": "1",
            "X-RateLimit-Resource": "search",
        }
        body = {"total_count": len(matches), "incomplete_results": False, "items": items}
        return Reply(200, body, headers)

    def _search(self, q: str) -> list[dict[str, Any]]:
        """Free-text terms match name/description; language:, stars:>=, fork: qualifiers filter."""
        repos = [r for r in self.repos if not r["fork"]]  # GitHub leaves forks out unless asked
        for term in q.split():
            key, _, value = term.partition(":")
            if key == "language":
                repos = [r for r in repos if (r["language"] or "").lower() == value.strip('"').lower()]
            elif key == "stars" and value.startswith(">="):
                repos = [r for r in repos if r["stargazers_count"] >= int(value[2:])]
            elif key == "fork" and value in ("true", "only"):
                forks = [r for r in self.repos if r["fork"]]
                repos = forks if value == "only" else repos + forks
            elif key != "fork":
                repos = [r for r in repos if term.lower() in f"{r['name']} {r['description']}".lower()]
        return sorted(repos, key=lambda r: (-r["stargazers_count"], r["full_name"]))


# ---------------------------------------------------------------- Azure DevOps

AZURE_SIGN_IN_PAGE = """<!DOCTYPE html>
<html><head><title>Azure DevOps Services | Sign In</title></head>
<body><form id="signin" action="https://login.microsoftonline.com/">Sign in to your account</form>
</body></html>
"""


def azure_repo(
    org: str,
    project: str,
    name: str,
    *,
    disabled: bool = False,
    default_branch: str | None = "refs/heads/main",
) -> dict[str, Any]:
    """A git repository shaped like Azure DevOps' ``GitRepository`` (API 7.1)."""
    pid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{org}/{project}"))
    rid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{org}/{project}/{name}"))
    p, n = quote_path(project), quote_path(name)
    repo: dict[str, Any] = {
        "id": rid,
        "name": name,
        "url": f"https://dev.azure.com/{org}/{pid}/_apis/git/repositories/{rid}",
        "project": {
            "id": pid,
            "name": project,
            "url": f"https://dev.azure.com/{org}/_apis/projects/{pid}",
            "state": "wellFormed",
            "revision": 11,
            "visibility": "private",
            "lastUpdateTime": "2024-01-01T00:00:00Z",
        },
        "size": 0 if default_branch is None else 2048,
        "remoteUrl": f"https://{org}@dev.azure.com/{org}/{p}/_git/{n}",
        "sshUrl": f"git@ssh.dev.azure.com:v3/{org}/{p}/{n}",
        "webUrl": f"https://dev.azure.com/{org}/{p}/_git/{n}",
        "isDisabled": disabled,
        "isInMaintenance": False,
    }
    if default_branch is not None:
        repo["defaultBranch"] = default_branch
    return repo


def quote_path(segment: str) -> str:
    return quote(segment, safe="")


def azure_throttled(retry_after: int) -> Reply:
    """429 as Azure DevOps answers when a user's TSTU budget is exceeded."""
    return Reply(
        429,
        {
            "$id": "1",
            "innerException": None,
            "message": "TF400733: The request has been canceled: Request was blocked due to exceeding "
            "usage of resource 'Global' in namespace 'User'.",
            "typeKey": "RequestBlockedException",
            "errorCode": 0,
            "eventId": 3000,
        },
        {
            "Retry-After": str(retry_after),
            "X-RateLimit-Resource": "Global",
            "X-RateLimit-Delay": "0.5",
            "X-RateLimit-Limit": "200",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": "4102444800",
        },
    )


def _azure_error(status: int, message: str, type_key: str) -> Reply:
    body = {
        "$id": "1",
        "innerException": None,
        "message": message,
        "typeKey": type_key,
        "errorCode": 0,
        "eventId": 3000,
    }
    return Reply(status, body)


class FakeAzureDevOps(FakeApi):
    """``/{org}/_apis/projects`` and ``/{org}/{project}/_apis/git/repositories`` for one organization."""

    def __init__(
        self,
        organization: str,
        projects: Mapping[str, list[dict[str, Any]]],
        *,
        pat: str | None = None,
        projects_page_size: int = 100,
    ) -> None:
        super().__init__()
        self.organization = organization
        self.projects = dict(projects)
        self.pat = pat  # when set, requests must carry basic auth ":<pat>"
        self.projects_page_size = projects_page_size

    def handle(self, req: Request) -> Reply:
        if self.pat is not None:
            auth = req.headers.get("authorization")
            if auth is None:
                return Reply(203, AZURE_SIGN_IN_PAGE)
            if auth != _basic("", self.pat):
                return Reply(401, "Access Denied: The Personal Access Token used has expired.")
        if "api-version" not in req.query:
            return _azure_error(
                400,
                'No api-version was supplied for the "GET" request. The version must be supplied either as '
                "part of the Accept header or as a query parameter (e.g., '?api-version=1.0').",
                "VssVersionNotSpecifiedException",
            )
        parts = req.path.strip("/").split("/")
        if not parts or parts[0] != self.organization:
            return Reply(404, "<html><body>The resource cannot be found.</body></html>")
        if parts[1:] == ["_apis", "projects"]:
            return self._projects(req)
        if len(parts) == 5 and parts[2:] == ["_apis", "git", "repositories"]:
            project = parts[1]
            if project not in self.projects:
                return _azure_error(
                    404,
                    f"TF200016: The following project does not exist: {project}. Verify that the name of the "
                    "project is correct and that the project exists on the specified Azure DevOps Server.",
                    "ProjectDoesNotExistWithNameException",
                )
            repos = self.projects[project]
            return Reply(200, {"value": repos, "count": len(repos)})
        return Reply(404, "<html><body>The resource cannot be found.</body></html>")

    def _projects(self, req: Request) -> Reply:
        names = list(self.projects)
        skip = int(req.query.get("continuationToken", "0"))
        page = names[skip : skip + self.projects_page_size]
        value = [
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.organization}/{name}")),
                "name": name,
                "url": f"https://dev.azure.com/{self.organization}/_apis/projects/{name}",
                "state": "wellFormed",
                "revision": 11,
                "visibility": "private",
                "lastUpdateTime": "2024-01-01T00:00:00Z",
            }
            for name in page
        ]
        headers = {}
        if skip + self.projects_page_size < len(names):
            headers["x-ms-continuationtoken"] = str(skip + self.projects_page_size)
        return Reply(200, {"count": len(value), "value": value}, headers)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
