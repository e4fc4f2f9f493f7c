"""Hand a PR run's DVC outputs to the trusted release job, without PR code ever writing the DVC remote.

PR jobs read the remote but cannot write it (docs/security.md): what they could write there, a later
"Stage 'train' is cached - skipping run" would restore for everyone as if it had been reviewed. So:

- `pack` (PR job): the cache objects that the run's dvc.lock names, plus the run-cache entries, laid out
  as `.dvc/cache` is, and under `branch/` the run's dvc.lock and git-tracked outputs (eval/), go into
  the workflow artifact `dvc-outputs`.
- `adopt` (the PR author, or a maintainer): downloads that artifact for the run the lock check named,
  refuses it unless the run trained the local HEAD and every member is where the layout allows, then
  puts the objects in `.dvc/cache`, writes the branch files, `dvc checkout`, commits and pushes.
- `fetch` (trusted job on main): finds that artifact for the merged commit through the GitHub REST API
  (commit -> its PR -> the PR head's completed pr.yml runs, any conclusion -> the newest artifact) and
  unpacks it into a quarantine;
  `receive` tries every such run, newest first, for main's recent commits until nothing dvc.lock names
  is missing; a run whose artifact fails `admit` is skipped and alerted on.
- `admit` (trusted job): copies into `.dvc/cache` only the objects that the MERGED dvc.lock names and whose
  bytes hash to their names (a `.dir` list checked against its own hash first). Nothing else is taken:
  not the run-cache entries, not extra objects. `seal` then writes the run-cache entries from the
  checked-out, verified workspace, and the job pushes with its own (environment) credentials.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mlops.config.errors import UserError
from mlops.release.lock_check import git_tracked_outputs

LOCK = Path("dvc.lock")
CACHE = Path(".dvc/cache")
OBJECTS = Path("files/md5")
ARTIFACT = "dvc-outputs"
BRANCH = "branch"  # in the artifact: dvc.lock and the git-tracked outputs as the run left them
PR_WORKFLOW = ".github/workflows/pr.yml"


def _object(root: Path, digest: str) -> Path:
    return root / OBJECTS / digest[:2] / digest[2:]


def cached_outs(lock: Path = LOCK) -> dict[str, str]:
    """{output path: md5} of every output dvc.lock records in the DVC cache (not `cache: false` ones)."""
    if not lock.exists():
        raise UserError(f"{lock} not found: run `dvc repro` first")
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    pipeline = lock.parent / "dvc.yaml"
    in_git = set(git_tracked_outputs(pipeline)) if pipeline.exists() else set()  # dvc.lock omits `cache`
    return {
        out["path"]: out["md5"]
        for stage in stages.values()
        for out in stage.get("outs", [])
        if out.get("md5") and out.get("cache", True) is not False and out["path"] not in in_git
    }


def _dir_entries(manifest: Path, digest: str) -> list[dict]:
    from mlops.release.artifacts import read_manifest  # one place verifies a .dir list against its own hash

    return read_manifest(manifest, digest)


def pack(dest: Path, lock: Path = LOCK, cache: Path = CACHE) -> list[str]:
    """Copy the objects dvc.lock names (and the run-cache) from `cache` to `dest`; returns what was copied.

    Also the branch files, under `branch/`: dvc.lock and every git-tracked output (`cache: false`) as
    the run left them, which `mlops adopt` commits. An output whose objects are not in the cache (a stage
    left as on the base branch, not reproduced on a fresh fork) is left out and named."""
    copied = []
    for path, digest in sorted(cached_outs(lock).items()):
        wanted = [digest]
        if digest.endswith(".dir"):
            manifest = _object(cache, digest)
            if not manifest.exists():
                print(f"outputs: {path} ({digest}) is not in {cache} (not reproduced here): left out")
                continue
            wanted += [entry["md5"] for entry in _dir_entries(manifest, digest)]
        missing = [name for name in wanted if not _object(cache, name).exists()]
        if missing:
            print(f"outputs: {path}: {len(missing)} object(s) not in {cache} (not reproduced here): left out")
            continue
        for name in wanted:
            target = _object(dest, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(_object(cache, name), target)
            copied.append(str(target.relative_to(dest)))
    runs = cache / "runs"
    if runs.is_dir():
        shutil.copytree(runs, dest / "runs", dirs_exist_ok=True)
        copied += [str(p.relative_to(dest)) for p in sorted((dest / "runs").rglob("*")) if p.is_file()]
    root = lock.parent
    tracked = git_tracked_outputs(root / "dvc.yaml") if (root / "dvc.yaml").exists() else []
    for rel in [lock.name, *tracked]:
        if (root / rel).is_file():
            target = dest / BRANCH / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / rel, target)
            copied.append(str(target.relative_to(dest)))
    return copied


@dataclass
class Admission:
    admitted: list[str] = field(default_factory=list)  # verified, copied into the cache
    present: list[str] = field(default_factory=list)  # already in the cache (from the trusted remote)
    absent: list[str] = field(default_factory=list)  # neither here nor in the quarantine: `dvc pull` next
    ignored: int = 0  # files in the quarantine that the merged dvc.lock does not name (run-cache included)
    skipped: list[str] = field(default_factory=list)  # runs whose artifact failed verification, and why

    def lines(self) -> list[str]:
        return [
            f"admitted {len(self.admitted)} verified object(s) from the PR run's artifact",
            f"{len(self.present)} already in the cache; {len(self.absent)} left to `dvc pull`",
            f"ignored {self.ignored} file(s) the merged dvc.lock does not name (run-cache entries included)",
            *(f"SKIPPED {line}" for line in self.skipped),
        ]


def admit(quarantine: Path, lock: Path = LOCK, cache: Path = CACHE) -> Admission:
    """Take from `quarantine` only the objects the merged dvc.lock names, each verified against its hash.

    A mismatch is refused outright (the release stops: someone tampered with the artifact, or the PR run
    did not produce what was merged)."""
    result = Admission()
    problems: list[str] = []
    named: set[str] = set()

    def take(name: str, label: str) -> Path | None:
        named.add(name)
        target = _object(cache, name)
        if target.exists():
            result.present.append(label)
            return target
        source = _object(quarantine, name)
        if not source.exists():
            result.absent.append(label)
            return None
        actual = hashlib.md5(source.read_bytes()).hexdigest()
        if actual != name.removesuffix(".dir"):
            problems.append(f"{label}: the artifact's object hashes to {actual}, dvc.lock names {name}")
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        result.admitted.append(label)
        return target

    for path, digest in sorted(cached_outs(lock).items()):
        manifest = take(digest, path)
        if digest.endswith(".dir") and manifest is not None:
            for entry in _dir_entries(manifest, digest):
                take(entry["md5"], f"{path}/{entry['relpath']}")
    if quarantine.is_dir():
        for file in quarantine.rglob("*"):
            if not file.is_file():
                continue
            rel = file.relative_to(quarantine).parts
            name = "".join(rel[2:]) if rel[:2] == OBJECTS.parts else None
            result.ignored += name not in named
    if problems:
        raise UserError(
            "the PR run's outputs do not match the merged dvc.lock; nothing was pushed:\n  "
            + "\n  ".join(problems)
        )
    return result


def seal(repo_root: Path = Path(".")) -> int:
    """Write the run-cache entries of every stage from the verified workspace (trusted job only).

    Run after `dvc checkout` and a clean `dvc status`: each entry then maps the merged code, params and
    data to the merged outputs, which is exactly what the PR's run-cache entries claimed, but written
    here, by reviewed code, instead of taken from PR code."""
    from dvc.repo import Repo

    with Repo(str(repo_root)) as repo:
        stages = [stage for stage in repo.index.stages if stage.cmd]
        for stage in stages:
            repo.stage_cache.save(stage)
    return len(stages)


# -- fetch: the PR run's artifact for a merged commit, through the GitHub REST API ---------------------


def _api(url: str, token: str, raw: bool = False):
    request = urllib.request.Request(
        url,
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        },
    )
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=60) as response:
            body = response.read()
    except urllib.error.HTTPError as err:
        if raw and err.code in (301, 302, 303, 307, 308) and err.headers.get("Location"):
            # the archive lives at a signed URL that must be fetched WITHOUT the API token
            with urllib.request.urlopen(err.headers["Location"], timeout=300) as response:
                return response.read()
        raise UserError(f"GitHub API {url}: HTTP {err.code} {err.read()[:200]!r}") from None
    return body if raw else json.loads(body)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # surface the redirect: the token must not follow it
        return None


def _api_env() -> tuple[str, str, str]:
    api = os.environ.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
    repo = os.environ.get("GITHUB_REPOSITORY", "")
    token = os.environ.get("GITHUB_TOKEN", "")
    if not (repo and token):
        raise UserError("fetch needs GITHUB_REPOSITORY, GITHUB_TOKEN and GITHUB_SHA")
    return api, repo, token


def pr_artifacts(sha: str) -> list[tuple[dict, dict, str]]:
    """(run, artifact, PR label) of every completed pr.yml run of the PR head behind merged commit `sha`
    that kept a `dvc-outputs` artifact, newest run first. Empty (reason printed) when there is none."""
    api, repo, token = _api_env()
    pulls = _api(f"{api}/repos/{repo}/commits/{sha}/pulls", token)
    if not pulls:
        print(f"outputs: commit {sha[:7]} belongs to no pull request; nothing to fetch")
        return []
    head = pulls[0]["head"]["sha"]
    label = f"PR #{pulls[0]['number']}, head {head[:7]}"
    # Any completed run, whatever its conclusion: the train job uploads the artifact before the checks that
    # may fail after it, and a failure of another job (the non-required PR comment) must not lose it.
    # Any PR's run with that head counts (a fork's runs name no PR): what is taken is decided object by
    # object against the merged dvc.lock (`admit`), so a run that fails that check is skipped, not fatal.
    query = urllib.parse.urlencode({"head_sha": head, "event": "pull_request", "status": "completed"})
    runs = [
        run
        for run in _api(f"{api}/repos/{repo}/actions/runs?{query}", token).get("workflow_runs", [])
        if run.get("path", PR_WORKFLOW).split("@")[0] == PR_WORKFLOW and run.get("head_sha") == head
    ]
    found = []
    for run in sorted(runs, key=lambda r: (r["id"], r.get("run_attempt", 1)), reverse=True):  # newest first
        listed = _api(f"{api}/repos/{repo}/actions/runs/{run['id']}/artifacts?name={ARTIFACT}", token)
        found += [
            (run, a, label)
            for a in listed.get("artifacts", [])
            if a["name"] == ARTIFACT and not a.get("expired")
        ][:1]
    if not found:
        print(f"outputs: no completed pr.yml run of {head[:7]} has a {ARTIFACT} artifact (expired?)")
    return found


def _run_name(run: dict) -> str:
    return f"run {run['id']} ({run.get('html_url', 'no link')})"


def download(run: dict, artifact: dict, dest: Path, label: str = "") -> str:
    """Unpack one run's artifact into `dest` (a quarantine); returns the run's URL."""
    _, _, token = _api_env()
    data = _api(artifact["archive_download_url"], token, raw=True)
    try:
        _unzip(data, dest)
    except zipfile.BadZipFile as err:
        raise UserError(f"the {ARTIFACT} artifact is not a zip archive: {err}") from None
    print(f"outputs: unpacked {ARTIFACT} of run {run['id']} ({label})")
    return run.get("html_url", str(run["id"]))


def fetch(dest: Path, sha: str | None = None) -> str | None:
    """Unpack the `dvc-outputs` artifact of the newest PR run behind merged commit `sha` into `dest`.

    Returns the run's URL, or None (with the reason printed) when the commit came from no PR, or the PR
    run left no artifact: the outputs must then already be in the remote. `receive` tries every run."""
    sha = sha or os.environ.get("GITHUB_SHA", "")
    if not sha:
        raise UserError("fetch needs GITHUB_REPOSITORY, GITHUB_TOKEN and GITHUB_SHA")
    found = pr_artifacts(sha)
    if not found:
        return None
    run, artifact, label = found[0]
    return download(run, artifact, dest, label)


def receive(quarantine: Path, depth: int = 10, lock: Path = LOCK, cache: Path = CACHE) -> Admission:
    """Fetch and admit PR artifacts, newest merged commit first, until the cache holds all dvc.lock names.

    GitHub keeps one pending run per concurrency group and cancels the one waiting when another arrives,
    so a release may be the first run after several merges: the outputs its dvc.lock names may come
    from an earlier merged PR than its own. Walking main's first-parent history (up to `depth` commits)
    covers the runs that were superseded. Within a commit every completed run with an artifact is tried,
    newest first: one whose artifact fails verification (another PR's run with the same head, a planted
    upload) is skipped, named in the log and alerted on, and is fatal only if nothing else fills the gap."""
    result = admit(quarantine / "none", lock, cache)  # what the trusted remote left missing
    history = subprocess.run(
        ["git", "rev-list", "--first-parent", f"--max-count={depth}", "HEAD"],
        text=True,
        capture_output=True,
    ).stdout.split()
    skipped: list[str] = []
    for sha in history:
        if not result.absent:
            break
        for run, artifact, label in pr_artifacts(sha):
            if not result.absent:
                break
            target = quarantine / sha[:12] / str(run["id"])
            try:
                download(run, artifact, target, label)
                taken = admit(target, lock, cache)
            except UserError as err:
                skipped.append(f"{_run_name(run)} of {label}: {err}")
                print(f"::warning::outputs: skipped {_run_name(run)}: its {ARTIFACT} failed verification")
                continue
            result = Admission(
                result.admitted + taken.admitted, taken.present, taken.absent, taken.ignored, result.skipped
            )
    result.skipped = skipped
    if skipped:
        from mlops.release.alerts import release_alert

        body = "\n".join(
            [
                f"Release of {os.environ.get('GITHUB_SHA', 'HEAD')[:12]}: {ARTIFACT} artifact(s) refused:",
                *skipped,
            ]
        )
        release_alert(f"{len(skipped)} poisoned {ARTIFACT} artifact(s) skipped", body)
        if result.absent:
            raise UserError(
                f"no good {ARTIFACT} artifact holds what dvc.lock names ({len(result.absent)} missing); "
                "refused:\n  " + "\n  ".join(skipped)
            )
    return result


def _unzip(data: bytes, dest: Path) -> None:
    """Unpack a zip into `dest`, refusing any member that would land outside it."""
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for member in archive.infolist():
            target = (dest / member.filename).resolve()
            if not target.is_relative_to(root):
                raise UserError(f"artifact member {member.filename!r} points outside {dest}; refused")
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(member))


# -- adopt: commit what a PR's CI run produced --------------------------------------------------------
