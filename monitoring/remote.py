"""Where the retraining snapshot goes when the repository has no DVC remote that outlives a runner.

On a GitHub-hosted runner a local-directory DVC remote (the template's default `../../dvc-storage`) is a
folder that is thrown away with the runner: `dvc push` there succeeds, and the PR would name data that
exists nowhere. So inside GitHub Actions such a remote (or none) is refused, unless DVC_REMOTE_URL names
it: a path there is a deliberate choice, such as a self-hosted runner's persistent mount. The snapshot is
then kept instead, as `data.dvc` plus the DVC objects it names, laid out as a DVC remote, for the
workflow to upload as an artifact; a README in it says how to propose it by hand.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import yaml

REMOTE_ENV = "DVC_REMOTE_URL"
KEPT = "retrain-snapshot"  # the folder under monitoring.report_dir, and the workflow's artifact name


def default_remote() -> tuple[str, str] | None:
    """(name, url) of the DVC default remote, the URL as DVC resolves it; None when there is none."""
    from dvc.repo import Repo

    with Repo(".") as repo:
        name = repo.config["core"].get("remote")
        remotes = repo.config["remote"]
        if not name or name not in remotes:
            return None
        return name, str(remotes[name]["url"])


def is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def throwaway_remote() -> str | None:
    """Why a push from this runner would lose the snapshot, or None (outside GitHub Actions, or a remote
    that is not a local folder, or one DVC_REMOTE_URL chose)."""
    if os.environ.get("GITHUB_ACTIONS") != "true" or os.environ.get(REMOTE_ENV):
        return None
    remote = default_remote()
    if remote is None:
        return f"no DVC remote is configured and {REMOTE_ENV} is not set"
    name, url = remote
    if is_local(url):
        return f"the DVC remote '{name}' is a local directory ({url}) and {REMOTE_ENV} is not set"
    return None


def cache_objects(dvc_text: str) -> list[tuple[Path, Path]]:
    """(file in the local DVC cache, its path in a remote's layout) for each object a .dvc file names:
    the output itself and, for a directory, its `.dir` listing and every file in it."""
    from dvc.repo import Repo

    with Repo(".") as repo:
        found = []
        for out in yaml.safe_load(dvc_text)["outs"]:
            legacy = out.get("hash") != "md5"  # DVC 2 hashes live at the cache root
            cache = Path(repo.cache.legacy.path if legacy else repo.cache.local.path)
            prefix = Path() if legacy else Path("files", "md5")
            md5s = [out["md5"]]
            if out["md5"].endswith(".dir"):
                listing = cache / out["md5"][:2] / out["md5"][2:]
                md5s += [entry["md5"] for entry in json.loads(listing.read_text())]
            found += [(cache / m[:2] / m[2:], prefix / m[:2] / m[2:]) for m in md5s]
        return found


def keep(dvc_text: str, folder: Path, readme: str) -> int:
    """Write the snapshot to `folder` (emptied first) as a DVC remote holds it; return the object count."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    objects = cache_objects(dvc_text)
    for source, rel in objects:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, folder / rel)
    (folder / "data.dvc").write_text(dvc_text)
    (folder / "README.md").write_text(readme)
    return len(objects)


def instructions(reason: str, rows: int, base: str, branch: str) -> str:
    """What to do, for the job summary and the kept folder's README."""
    run = os.environ.get("GITHUB_RUN_ID") or "<run id>"
    return "\n".join(
        [
            f"### Retraining PR: not opened, the new data snapshot (+{rows} rows) is kept as the artifact"
            f" `{KEPT}`",
            "",
            f"Not pushed: {reason}. On a GitHub-hosted runner that folder is thrown away with the runner,"
            " so the PR would name data that exists nowhere.",
            "",
            f"1. Give the repository a DVC remote that outlives a runner: set the repository variable"
            f" `{REMOTE_ENV}` (Settings > Secrets and variables > Actions > Variables, or"
            f" `gh variable set {REMOTE_ENV} --body s3://bucket/dvc`) and its write credentials in the"
            " `registry` environment (docs/monitoring.md). The next drift run pushes the snapshot and opens"
            " the PR by itself (re-run this workflow to do it now).",
            "2. Or propose this snapshot by hand, from a clone with a persistent default DVC remote:",
            "",
            "```bash",
            f"gh run download {run} -n {KEPT} -D {KEPT}",
            f"git fetch origin {base} && git switch -c {branch} origin/{base}",
            f"cp {KEPT}/data.dvc data.dvc",
            f'dvc remote add --local {KEPT} "$PWD/{KEPT}" && dvc pull -r {KEPT} data.dvc',
            "dvc push data.dvc",
            f'git commit -m "Retrain: new data snapshot" data.dvc && git push -u origin {branch}',
            "```",
        ]
    )
