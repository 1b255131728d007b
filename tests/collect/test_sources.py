"""Tests for pipelines.collect.sources / github / azure_devops.

GitHub and Azure DevOps are third-party SaaS: they are faked at the HTTP layer by real local HTTP
servers on 127.0.0.1 (tests/collect/fake_apis.py) that reproduce the services' JSON shapes, paging
and rate-limit headers. Nothing sleeps for real: ``sleep`` (and GitHub's ``clock``) are injected.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pydantic
import pytest

from pipelines.collect.azure_devops import AzureDevOpsConfig, azure_devops_repos
from pipelines.collect.github import GitHubSearchConfig, github_search
from pipelines.collect.sources import (
    Source,
    SourceApiError,
    SourceError,
    dedupe,
    from_local_dirs,
    from_manifest,
    from_urls,
)
from pipelines.ids import repo_id
from tests.collect.fake_apis import (
    FakeAzureDevOps,
    FakeGitHub,
    Reply,
    azure_repo,
    azure_throttled,
    github_error,
    github_primary_rate_limit,
    github_repo,
    github_secondary_rate_limit,
)


@pytest.fixture(autouse=True)
def _no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("AZURE_DEVOPS_PAT", raising=False)


def git(url: str, ref: str | None = None, origin: str = "manifest", **kw: object) -> Source:
    return Source(url=url, kind="git", ref=ref, origin=origin, **kw)  # type: ignore[arg-type]


def error_lines(exc: pytest.ExceptionInfo[BaseException]) -> list[str]:
    return str(exc.value).splitlines()


# ---------------------------------------------------------------- Source


def test_source_row_round_trip_and_hashing() -> None:
    s = git("https://github.com/acme/a.git", "v1", labels={"tier": "gold", "team": "net"}, license="MIT")
    row = s.to_row()
    assert row == {
        "url": "https://github.com/acme/a.git",
        "kind": "git",
        "ref": "v1",
        "origin": "manifest",
        "labels": '{"team": "net", "tier": "gold"}',
        "license": "MIT",
        "history": False,
        "trusted": False,
        "repo_id": repo_id("https://github.com/acme/a.git"),
    }
    assert Source.from_row(row) == s
    assert s.labels == {"team": "net", "tier": "gold"}
    same = git("https://github.com/acme/a.git", "v1", labels={"team": "net", "tier": "gold"}, license="MIT")
    assert len({s, same}) == 1


def test_history_requires_trusted() -> None:
    with pytest.raises(SourceError, match="only allowed for trusted"):
        Source(url="file:///repos/gen", kind="git", origin="synthetic", history=True)
    ok = Source(url="file:///repos/gen", kind="git", origin="synthetic", history=True, trusted=True)
    assert Source.from_row(ok.to_row()) == ok


def test_a_synthetic_repo_id_names_the_corpus_repo_not_where_it_was_written() -> None:
    def synth(url: str, name: str = "synth-0001-aws-vpc", seed: str = "0", origin: str = "synthetic") -> str:
        return Source(
            url=url, kind="git", origin=origin, trusted=True, labels={"synthetic": name, "seed": seed}
        ).repo_id

    here = synth("file:///tmp/pytest-1/data/synthetic/synth-0001-aws-vpc")
    assert here == synth("file:///check/work/main/data/synthetic/synth-0001-aws-vpc")
    assert (
        here
        == Source.from_row(
            Source(
                url="file:///x/synth-0001-aws-vpc",
                kind="git",
                origin="synthetic",
                labels={"synthetic": "synth-0001-aws-vpc", "seed": "0"},
            ).to_row()
        ).to_row()["repo_id"]
    )
    assert len({here, synth("file:///a", seed="1"), synth("file:///a", name="synth-0002-aws-vpc")}) == 3
    # only the synthetic origin is named this way: a manifest or URL source that carries the same labels keeps
    # its URL's id, so it cannot take a corpus repo's identity (and split)
    assert synth("file:///a", origin="manifest") == repo_id("file:///a") != here


# ---------------------------------------------------------------- from_urls


def test_from_urls_accepts_allowed_forms() -> None:
    urls = [
        "https://github.com/acme/a.git",
        "ssh://git@gitlab.example.com/team/b",
        "git@github.com:acme/c.git",
        "file:///srv/git/d.git",
        "  https://github.com/acme/e  ",
    ]
    assert from_urls(urls, ref="main") == [
        git("https://github.com/acme/a.git", "main", "url"),
        git("ssh://git@gitlab.example.com/team/b", "main", "url"),
        git("git@github.com:acme/c.git", "main", "url"),
        git("file:///srv/git/d.git", "main", "url"),
        git("https://github.com/acme/e", "main", "url"),
    ]


def test_from_urls_lists_every_bad_entry_at_once() -> None:
    urls = [
        "https://github.com/acme/ok.git",
        "",
        "http://github.com/acme/a.git",
        "ext::sh -c touch% /tmp/pwned",
        "fd::17",
        "-uhttps://github.com/acme/a",
        "ssh://-oProxyCommand=calc/x",
        "ftp://example.com/a.git",
        "/srv/plain",
        "https://bob:ghp_secret@github.com/acme/a.git",
    ]
    with pytest.raises(SourceError) as exc:
        from_urls(urls)
    assert error_lines(exc) == [
        "bad source URLs: 9 problems:",
        "  url #2 '': empty entry: remove it",
        "  url #3 'http://github.com/acme/a.git': plain http:// is not allowed (no transport security): "
        "use https://github.com/acme/a.git",
        "  url #4 'ext::sh -c touch% /tmp/pwned': contains whitespace or control characters: "
        "percent-encode them or fix the entry",
        "  url #5 'fd::17': git transport 'fd::' is not allowed (remote helpers such as ext:: and fd:: run "
        "commands): use an https:// or ssh:// URL",
        "  url #6 '-uhttps://github.com/acme/a': starts with '-', which git would read as a command-line "
        "option: remove the leading '-'",
        "  url #7 'ssh://-oProxyCommand=calc/x': a host or user starting with '-' would be read as an ssh "
        "option: fix the entry",
        "  url #8 'ftp://example.com/a.git': scheme 'ftp://' is not allowed: use one of file://, https://, ssh://",
        "  url #9 '/srv/plain': is a local path, not a URL: write file:///absolute/path for a local git "
        "repository, or list a plain directory under local_dirs",
        "  url #10 'https://bob:ghp_secret@github.com/acme/a.git': contains a password or token, which would "
        "be written to repos.parquet: remove it and use a git credential helper",
    ]


def test_from_urls_ext_transport_without_spaces_is_rejected() -> None:
    with pytest.raises(SourceError, match=r"url #1 'ext::ssh%20evil': git transport 'ext::' is not allowed"):
        from_urls(["ext::ssh%20evil"])


def test_from_urls_scheme_allowlist_is_a_parameter() -> None:
    urls = ["ssh://host.example/a/b", "git@host.example:a/b", "https://host.example/a/b"]
    with pytest.raises(SourceError) as exc:
        from_urls(urls, allowed_schemes={"https"})
    assert error_lines(exc) == [
        "bad source URLs: 2 problems:",
        "  url #1 'ssh://host.example/a/b': scheme 'ssh://' is not allowed: use one of https://",
        "  url #2 'git@host.example:a/b': scp-like ssh address is not allowed here (allowed schemes: https://)",
    ]
    assert from_urls(urls[2:], allowed_schemes={"https"}) == [git("https://host.example/a/b", origin="url")]


# ---------------------------------------------------------------- manifests


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def git_dir(path: Path) -> Path:
    (path / ".git").mkdir(parents=True)
    return path


@pytest.mark.parametrize("name", ["repos.txt", "repos"])
def test_manifest_txt(tmp_path: Path, name: str) -> None:
    local = git_dir(tmp_path / "checkouts" / "mine")
    manifest = write(
        tmp_path / name,
        "# Terraform repos\n"
        "https://github.com/acme/infra.git v1.2\n"
        "\n"
        "   git@github.com:acme/modules.git   # pinned later\n"
        "ssh://git@gitlab.example.com/team/net.git\tmain\n"
        "checkouts/mine\n",
    )
    assert from_manifest(manifest) == [
        git("https://github.com/acme/infra.git", "v1.2"),
        git("git@github.com:acme/modules.git"),
        git("ssh://git@gitlab.example.com/team/net.git", "main"),
        git(local.resolve().as_uri()),
    ]


def test_manifest_txt_errors_name_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    manifest = write(
        tmp_path / "repos.txt",
        "https://github.com/acme/ok.git\n"
        "http://github.com/acme/plain.git\n"
        "# fine\n"
        "https://github.com/acme/x.git main extra\n"
        "fd::17\n"
        "plain\n"
        "./missing\n",
    )
    with pytest.raises(SourceError) as exc:
        from_manifest(manifest)
    m = str(manifest)
    assert error_lines(exc) == [
        f"bad manifest {m}: 5 problems:",
        f"  {m}:2: 'http://github.com/acme/plain.git': plain http:// is not allowed (no transport security): "
        "use https://github.com/acme/plain.git",
        f"  {m}:4: expected 'URL [REF]', got 3 fields: 'https://github.com/acme/x.git main extra'",
        f"  {m}:5: 'fd::17': git transport 'fd::' is not allowed (remote helpers such as ext:: and fd:: run "
        "commands): use an https:// or ssh:// URL",
        f"  {m}:6: 'plain': {tmp_path / 'plain'} is a plain directory, not a git repository: list it under "
        "local_dirs instead",
        f"  {m}:7: './missing': local path {tmp_path / 'missing'} does not exist or is not a directory",
    ]


def test_manifest_csv(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "repos.csv",
        "url,ref,license,team,tier\n"
        "https://github.com/acme/a.git,v1,MIT,platform,gold\n"
        "git@github.com:acme/b.git,,,network,\n"
        ",,,,\n",
    )
    assert from_manifest(manifest) == [
        git("https://github.com/acme/a.git", "v1", license="MIT", labels={"team": "platform", "tier": "gold"}),
        git("git@github.com:acme/b.git", labels={"team": "network"}),
    ]


def test_manifest_csv_errors(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "repos.csv",
        "url,ref\nhttps://github.com/acme/a.git,main\nhttp://github.com/acme/b.git,\n"
        "https://github.com/acme/c.git,main,oops\n,v2\n",
    )
    with pytest.raises(SourceError) as exc:
        from_manifest(manifest)
    m = str(manifest)
    assert error_lines(exc) == [
        f"bad manifest {m}: 3 problems:",
        f"  {m}:3: 'http://github.com/acme/b.git': plain http:// is not allowed (no transport security): "
        "use https://github.com/acme/b.git",
        f"  {m}:4: more fields than the header has columns",
        f"  {m}:5: empty url",
    ]
    no_url = write(tmp_path / "bad.csv", "repo,ref\nhttps://github.com/acme/a.git,main\n")
    with pytest.raises(SourceError, match=r"bad\.csv:1: the CSV header must have a 'url' column"):
        from_manifest(no_url)


YAML_ENTRIES = """\
- url: https://github.com/acme/a.git
  ref: v1.0.0
  license: Apache-2.0
  labels: {team: platform, priority: 1}
- git@github.com:acme/b.git
"""


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("repos.yaml", YAML_ENTRIES),
        ("repos.yml", "repos:\n" + "".join(f"  {line}\n" for line in YAML_ENTRIES.splitlines())),
    ],
)
def test_manifest_yaml_both_shapes(tmp_path: Path, name: str, text: str) -> None:
    assert from_manifest(write(tmp_path / name, text)) == [
        git(
            "https://github.com/acme/a.git",
            "v1.0.0",
            license="Apache-2.0",
            labels={"team": "platform", "priority": "1"},
        ),
        git("git@github.com:acme/b.git"),
    ]


def test_manifest_yaml_errors_name_entry_and_line(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "repos.yaml",
        "repos:\n"
        "  - url: https://github.com/acme/a.git\n"
        "  - ref: main\n"
        "  - url: https://github.com/acme/c.git\n"
        "    ref: 1.10\n"
        "    branch: x\n"
        "  - url: http://github.com/acme/d.git\n"
        "  - [not, a, mapping]\n",
    )
    with pytest.raises(SourceError) as exc:
        from_manifest(manifest)
    m = str(manifest)
    assert error_lines(exc) == [
        f"bad manifest {m}: 5 problems:",
        f"  {m}: entry 2 (line 3): 'url' is missing or not a string",
        f"  {m}: entry 3 (line 4): 'ref' must be a string: quote it (ref: \"1.1\")",
        f"  {m}: entry 3 (line 4): unknown keys ['branch']: allowed are ['url', 'ref', 'labels', 'license'] "
        "(put others under labels)",
        f"  {m}: entry 4 (line 7): 'http://github.com/acme/d.git': plain http:// is not allowed "
        "(no transport security): use https://github.com/acme/d.git",
        f"  {m}: entry 5 (line 8): expected a mapping {{url, ref?, labels?, license?}} or a URL string",
    ]


def test_manifest_format_and_file_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"unknown manifest format '\.json': use \.txt"):
        from_manifest(write(tmp_path / "repos.json", "[]"))
    with pytest.raises(SourceError, match=r"nope\.txt: cannot read manifest \(No such file or directory\)"):
        from_manifest(tmp_path / "nope.txt")
    with pytest.raises(SourceError, match=r"a YAML manifest is a list of repos or a mapping \{repos: \[\.\.\.\]\}"):
        from_manifest(write(tmp_path / "other.yaml", "sources: []\n"))


# ---------------------------------------------------------------- local dirs and dedupe


def test_from_local_dirs(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    assert from_local_dirs([a, str(tmp_path / "b" / ".." / "b")]) == [
        Source(url=str(a), kind="local", origin="local"),
        Source(url=str(b), kind="local", origin="local"),
    ]
    write(tmp_path / "f.tf", "")
    with pytest.raises(SourceError) as exc:
        from_local_dirs([a, tmp_path / "f.tf", tmp_path / "gone"])
    assert error_lines(exc) == [
        "bad local_dirs: 2 problems:",
        f"  '{tmp_path / 'f.tf'}': is not a directory ({tmp_path / 'f.tf'})",
        f"  '{tmp_path / 'gone'}': does not exist ({tmp_path / 'gone'})",
    ]


def test_dedupe_keeps_first_per_normalized_url_and_ref(caplog: pytest.LogCaptureFixture) -> None:
    sources = [
        git("https://GitHub.com/acme/a.git", origin="url"),
        git("https://github.com/acme/a/", origin="manifest"),
        git("https://github.com/acme/a", "v1", origin="url"),
        git("git@github.com:acme/a.git", origin="url"),
        git("ssh://git@github.com/acme/a", origin="manifest"),
        Source(url="/srv/plain", kind="local", origin="local"),
    ]
    with caplog.at_level(logging.INFO, logger="pipelines.collect.sources"):
        assert dedupe(sources) == [sources[0], sources[2], sources[3], sources[5]]
    assert "dedupe: kept 4 sources, dropped 2 duplicates" in caplog.messages


# ---------------------------------------------------------------- GitHub


def search_cfg(fake: FakeGitHub, **kw: object) -> GitHubSearchConfig:
    return GitHubSearchConfig(query="terraform", api_url=fake.url, **kw)  # type: ignore[arg-type]


def gh_source(full_name: str, stars: int, license: str | None = "MIT", ref: str = "main") -> Source:
    return Source(
        url=f"https://github.com/{full_name}.git",
        kind="git",
        ref=ref,
        origin="github",
        labels={"full_name": full_name, "stars": str(stars)},
        license=license,
    )


HCL_REPOS = [github_repo(f"acme/tf-{i}", 100 - i) for i in range(7)]
NOISE = [
    github_repo("fork/tf-x", 500, fork=True),
    github_repo("py/terraform-tool", 400, language="Python"),
    github_repo("small/tf-tiny", 3),
]


def test_github_pagination_over_three_pages(caplog: pytest.LogCaptureFixture) -> None:
    sleeps: list[float] = []
    with (
        FakeGitHub(HCL_REPOS + NOISE) as fake,
        caplog.at_level(logging.INFO, logger="pipelines.collect.github"),
    ):
        got = github_search(search_cfg(fake, min_stars=10, per_page=3), sleep=sleeps.append)
    assert got == [gh_source(f"acme/tf-{i}", 100 - i) for i in range(7)]
    assert sleeps == []
    first = fake.requests[0]
    assert (first.path, first.query) == (
        "/search/repositories",
        {
            "q": "terraform language:HCL stars:>=10 fork:false",
            "sort": "stars",
            "order": "desc",
            "per_page": "3",
        },
    )
    assert first.headers["accept"] == "application/vnd.github+json"
    assert first.headers["x-github-api-version"] == "2022-11-28"
    assert first.headers["user-agent"].startswith("tfpredict-collect/")
    assert "authorization" not in first.headers
    # pages 2 and 3 are exactly the rel="next" links the server handed out
    assert len(fake.requests) == 3
    assert [fake.url + r.target for r in fake.requests[1:]] == fake.links_served
    assert [r.query.get("page") for r in fake.requests] == [None, "2", "3"]
    assert "github search: 3 pages, kept 7 repos, dropped {}" in caplog.messages


def test_github_query_without_language_or_stars_and_with_forks() -> None:
    with FakeGitHub(HCL_REPOS[:1]) as fake:
        github_search(search_cfg(fake, language=None, include_forks=True), sleep=[].append)
    assert fake.requests[0].query["q"] == "terraform"


def test_github_authorization_header_only_with_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_good")
    with FakeGitHub(HCL_REPOS[:2], valid_token="ghp_good") as fake:
        got = github_search(search_cfg(fake), sleep=[].append)
    assert [s.labels["full_name"] for s in got] == ["acme/tf-0", "acme/tf-1"]
    assert [r.headers.get("authorization") for r in fake.requests] == ["Bearer ghp_good"]


def test_github_license_allowlist_and_max_repos() -> None:
    repos = [
        github_repo("l/mit", 90, license="MIT"),
        github_repo("l/apache", 80, license="Apache-2.0"),
        github_repo("l/gpl", 70, license="GPL-3.0"),
        github_repo("l/none", 60, license=None),
        github_repo("l/other", 50, license="NOASSERTION"),
        github_repo("l/mit2", 40, license="MIT", default_branch="master"),
    ]
    with FakeGitHub(repos) as fake:
        got = github_search(search_cfg(fake, licenses=["mit", "apache-2.0"]), sleep=[].append)
        assert got == [
            gh_source("l/mit", 90),
            gh_source("l/apache", 80, "Apache-2.0"),
            gh_source("l/mit2", 40, ref="master"),
        ]
        anything = github_search(search_cfg(fake, per_page=2), sleep=[].append)
        assert [s.license for s in anything] == ["MIT", "Apache-2.0", "GPL-3.0", None, None, "MIT"]
        fake.requests.clear()
        capped = github_search(search_cfg(fake, per_page=2, max_repos=2), sleep=[].append)
    assert [s.labels["full_name"] for s in capped] == ["l/mit", "l/apache"]
    assert len(fake.requests) == 1  # stopped paging once max_repos was reached


def test_github_drops_unsafe_clone_urls() -> None:
    evil = github_repo("evil/tf", 99)
    evil["clone_url"] = "ext::sh -c touch% /tmp/pwned"
    with FakeGitHub([evil, HCL_REPOS[0]]) as fake:
        assert github_search(search_cfg(fake), sleep=[].append) == [gh_source("acme/tf-0", 100)]


@pytest.mark.parametrize(("reset", "expected_sleep"), [(1_000_030, 31.0), (999_000, 1.0)])
def test_github_primary_rate_limit_waits_until_reset(reset: int, expected_sleep: float) -> None:
    sleeps: list[float] = []
    with FakeGitHub(HCL_REPOS[:4]) as fake:
        fake.inject(github_primary_rate_limit(reset), at=1)  # page 2 is rate-limited once
        got = github_search(search_cfg(fake, per_page=2), sleep=sleeps.append, clock=lambda: 1_000_000.0)
    assert [s.labels["full_name"] for s in got] == [f"acme/tf-{i}" for i in range(4)]
    assert sleeps == [expected_sleep]
    assert len(fake.requests) == 3
    assert fake.requests[2].target == fake.requests[1].target  # the same URL was retried


def test_github_rate_limit_beyond_max_wait_fails_with_reset_time() -> None:
    sleeps: list[float] = []
    with FakeGitHub(HCL_REPOS[:2]) as fake:
        fake.inject(github_primary_rate_limit(1_003_600))
        with pytest.raises(SourceApiError) as exc:
            github_search(search_cfg(fake, max_wait_s=900), sleep=sleeps.append, clock=lambda: 1_000_000.0)
    assert str(exc.value) == (
        "GitHub API rate limit hit (HTTP 403: API rate limit exceeded for 127.0.0.1. (But here's the "
        "good news: Authenticated requests get a higher rate limit. Check out the documentation for more "
        "details.)); it resets at 1970-01-12 14:46:40 UTC, and the wait (3601 s) exceeds max_wait_s=900. "
        "Rerun after the reset, raise max_wait_s, or set $GITHUB_TOKEN for a higher limit"
    )
    assert sleeps == []
    assert len(fake.requests) == 1


@pytest.mark.parametrize("status", [403, 429])
def test_github_secondary_rate_limit_uses_retry_after(status: int) -> None:
    sleeps: list[float] = []
    with FakeGitHub(HCL_REPOS[:1]) as fake:
        fake.inject(github_secondary_rate_limit(7, status=status))
        got = github_search(search_cfg(fake), sleep=sleeps.append)
    assert [s.labels["full_name"] for s in got] == ["acme/tf-0"]
    assert sleeps == [7.0]
    assert [r.target for r in fake.requests] == [fake.requests[0].target] * 2


def test_github_server_errors_back_off_then_give_up() -> None:
    sleeps: list[float] = []
    with FakeGitHub(HCL_REPOS[:1]) as fake:
        fake.inject(github_error(502, "Server Error"), at=0)
        fake.inject(github_error(503, "Service Unavailable"), at=1)
        assert len(github_search(search_cfg(fake), sleep=sleeps.append)) == 1
        assert sleeps == [1.0, 2.0]
        sleeps.clear()
        for i in range(3, 7):
            fake.inject(github_error(500, "Server Error"), at=i)
        with pytest.raises(SourceApiError, match=r"failed with HTTP 500 4 times .*: Server Error; GitHub may be down"):
            github_search(search_cfg(fake), sleep=sleeps.append)
    assert sleeps == [1.0, 2.0, 4.0]
    assert len(fake.requests) == 7


def test_github_401_points_at_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_GH", "ghp_expired")
    with FakeGitHub(HCL_REPOS, valid_token="ghp_good") as fake, pytest.raises(SourceApiError) as exc:
        github_search(search_cfg(fake, token_env="MY_GH"), sleep=[].append)
    assert str(exc.value) == (
        "GitHub rejected the token in $MY_GH (HTTP 401: Bad credentials): check MY_GH (expired or revoked?) "
        "or unset it to search anonymously"
    )


def test_github_422_shows_githubs_message() -> None:
    msg = (
        "The listed users and repositories cannot be searched either because the resources do not exist "
        "or you do not have permission to view them."
    )
    with FakeGitHub(HCL_REPOS) as fake:
        fake.inject(github_error(422, "Validation Failed", [{"message": msg, "resource": "Search", "code": "invalid"}]))
        with pytest.raises(SourceApiError) as exc:
            github_search(GitHubSearchConfig(query="user:nobody", api_url=fake.url), sleep=[].append)
    assert str(exc.value) == (
        f"GitHub rejected the search query 'user:nobody language:HCL fork:false' (HTTP 422): Validation Failed; {msg}"
    )


def test_config_models_forbid_unknown_keys_and_bad_values() -> None:
    with pytest.raises(pydantic.ValidationError) as exc:
        GitHubSearchConfig(query="x", per_page=101, sort="random", bogus=1)  # type: ignore[call-arg]
    assert sorted(e["loc"][0] for e in exc.value.errors()) == ["bogus", "per_page", "sort"]
    with pytest.raises(pydantic.ValidationError, match="extra_forbidden"):
        AzureDevOpsConfig(organization="o", projects=["p"])  # type: ignore[call-arg]


# ---------------------------------------------------------------- Azure DevOps

ORG = "contoso"
AZ_PROJECTS = {
    "Infra Platform": [
        azure_repo(ORG, "Infra Platform", "landing-zone"),
        azure_repo(ORG, "Infra Platform", "old-stuff", disabled=True),
    ],
    "Networking": [
        azure_repo(ORG, "Networking", "vnets", default_branch="refs/heads/develop"),
        azure_repo(ORG, "Networking", "empty", default_branch=None),
    ],
}


def az_source(project: str, name: str, ref: str = "main") -> Source:
    p = project.replace(" ", "%20")
    return Source(
        url=f"https://{ORG}@dev.azure.com/{ORG}/{p}/_git/{name}",
        kind="git",
        ref=ref,
        origin="azure_devops",
        labels={"project": project, "name": name},
    )


def test_azure_two_projects_with_continuation_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_DEVOPS_PAT", "pat123")
    with FakeAzureDevOps(ORG, AZ_PROJECTS, pat="pat123", projects_page_size=1) as fake:
        got = azure_devops_repos(AzureDevOpsConfig(organization=ORG, base_url=fake.url), sleep=[].append)
    assert got == [az_source("Infra Platform", "landing-zone"), az_source("Networking", "vnets", "develop")]
    assert [(r.path, r.query) for r in fake.requests] == [
        (f"/{ORG}/_apis/projects", {"api-version": "7.1"}),
        (f"/{ORG}/_apis/projects", {"api-version": "7.1", "continuationToken": "1"}),
        (f"/{ORG}/Infra Platform/_apis/git/repositories", {"api-version": "7.1"}),
        (f"/{ORG}/Networking/_apis/git/repositories", {"api-version": "7.1"}),
    ]
    assert {r.headers["authorization"] for r in fake.requests} == {"Basic OnBhdDEyMw=="}  # base64(":pat123")


def test_azure_single_project_and_include_disabled() -> None:
    with FakeAzureDevOps(ORG, AZ_PROJECTS) as fake:
        cfg = AzureDevOpsConfig(organization=ORG, project="Infra Platform", base_url=fake.url, include_disabled=True)
        got = azure_devops_repos(cfg, sleep=[].append)
    assert got == [az_source("Infra Platform", "landing-zone"), az_source("Infra Platform", "old-stuff")]
    assert [r.target for r in fake.requests] == [f"/{ORG}/Infra%20Platform/_apis/git/repositories?api-version=7.1"]
    assert "authorization" not in fake.requests[0].headers


def test_azure_sign_in_page_means_pat_problem() -> None:
    with FakeAzureDevOps(ORG, AZ_PROJECTS, pat="pat123") as fake, pytest.raises(SourceApiError) as exc:
        azure_devops_repos(AzureDevOpsConfig(organization=ORG, base_url=fake.url), sleep=[].append)
    assert str(exc.value) == (
        "Azure DevOps answered a sign-in page (HTTP 203) for organization 'contoso': set $AZURE_DEVOPS_PAT "
        "to a personal access token with the Code (Read) scope (and Project and Team (Read) to list projects)"
    )


def test_azure_rejected_pat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_DEVOPS_PAT", "stale")
    with FakeAzureDevOps(ORG, AZ_PROJECTS, pat="pat123") as fake, pytest.raises(SourceApiError) as exc:
        azure_devops_repos(AzureDevOpsConfig(organization=ORG, base_url=fake.url), sleep=[].append)
    assert str(exc.value).startswith(
        "Azure DevOps rejected the personal access token in $AZURE_DEVOPS_PAT (401 Unauthorized, HTTP 401)"
    )


def test_azure_429_retry_after() -> None:
    sleeps: list[float] = []
    with FakeAzureDevOps(ORG, AZ_PROJECTS) as fake:
        fake.inject(azure_throttled(5), at=1)
        got = azure_devops_repos(AzureDevOpsConfig(organization=ORG, base_url=fake.url), sleep=sleeps.append)
    assert got == [az_source("Infra Platform", "landing-zone"), az_source("Networking", "vnets", "develop")]
    assert sleeps == [5.0]
    assert fake.requests[2].target == fake.requests[1].target
    assert len(fake.requests) == 4


def test_azure_unknown_project_and_server_error() -> None:
    sleeps: list[float] = []
    with FakeAzureDevOps(ORG, AZ_PROJECTS) as fake:
        cfg = AzureDevOpsConfig(organization=ORG, project="Nope", base_url=fake.url)
        with pytest.raises(SourceApiError, match=r"404 .*TF200016: The following project does not exist: Nope"):
            azure_devops_repos(cfg, sleep=sleeps.append)
        for i in range(1, 5):
            fake.inject(Reply(500, {"message": "boom"}), at=i)
        with pytest.raises(SourceApiError, match=r"failed with HTTP 500 4 times .*: boom; retry later"):
            azure_devops_repos(cfg.model_copy(update={"project": "Networking"}), sleep=sleeps.append)
    assert sleeps == [1.0, 2.0, 4.0]


def test_no_user_entry_becomes_a_synthetic_source(tmp_path: Path) -> None:
    """Only the synthetic config makes sources that workers build from a spec (origin=synthetic): a URL, a CSV
    label named like the spec, or a YAML ``origin`` key never does."""
    with pytest.raises(SourceError, match=r"scheme 'synthetic://' is not allowed"):
        from_urls(["synthetic://0123456789abcdef/synth-0000-app"])
    csv = write(tmp_path / "r.csv", "url,spec,synthetic\nhttps://github.com/acme/a.git,{},synth-0000-app\n")
    [src] = from_manifest(csv)
    assert src.origin == "manifest" and src.labels["spec"] == "{}"  # a plain label; collect never reads it
    yml = write(tmp_path / "r.yaml", "- url: https://github.com/acme/a.git\n  origin: synthetic\n")
    with pytest.raises(SourceError, match="origin"):
        from_manifest(yml)
