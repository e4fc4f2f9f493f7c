"""`mlops promote` and `mlops rollback`: the reviewed model becomes the `champion`, or it does not.

Promotion never retrains. It ships the exact bytes the PR reviewed (every file of the train stage's
output must match its md5 in dvc.lock), registers them as a new MLflow model version tagged with the
git sha, data md5, params and metrics, and applies the gates from params.yaml. Only when they all pass
does the `champion` alias move; the previous champion is kept as alias `previous-champion` and as a
tag, so `mlops rollback` is one alias move. Rollback only goes to versions that passed their gates,
unless forced with a reason, which is recorded on the version and in the release record.

`model_store/release.json` names the champion after every alias move (promote, rollback): `make image`
and `mlops archive` stamp what it names, so it must never lag behind the registry.

In CI the alias moves last (docs/serving.md, "Release sequence"): `mlops promote --candidate` registers
and gates, records the version as the *candidate* in release.json and leaves `champion` alone; the image
is built from that candidate, smoke-tested and pushed; only then does `mlops champion` move the alias
(compare-and-set against the champion the gates compared with). A failure anywhere before that leaves
the alias where it was. After it nothing moves the alias back: the image is pushed and correct, so a
failed GitOps step (the deploy job) leaves the release standing; `mlops champion --undo` is for a person.
Promotion and the alias move refuse to run in GitHub Actions on any ref but main. Promotion also refuses
uncommitted changes to tracked files (`--allow-dirty` promotes anyway and records `git_dirty=true`): the
version is tagged with the checked-out commit, and no commit would hold what was promoted.

The "no worse than champion" baseline is the registry's champion. A fresh registry (CI without a
tracking server: an empty sqlite file) has none, so the baseline falls back to eval/metrics.json of
the previous commit on main, read from git, which is the record of what was reviewed and shipped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mlops.config import paths
from mlops.config.errors import UserError
from mlops.config.git import git
from mlops.config.params import Params, load_params
from mlops.config.sections import as_dict
from mlops.release.artifacts import (
    Baseline,
    _parent_params,
    data_md5,
    git_sha,
    previous_commit_baseline,
    require_clean,
    require_release_ref,
    verify_reviewed_artifacts,
)
from mlops.report.gates import all_passed, check_gates, floors_changed, recorded_identity, swap_reason
from mlops.report.scores import flat_scores

CHAMPION = "champion"
PREVIOUS = "previous-champion"
RELEASE = Path("model_store/release.json")  # the champion after the last alias move; `make image` reads it


def _client(params: Params):
    import mlflow
    from mlflow import MlflowClient

    from mlops.config import tracking

    mlflow.set_tracking_uri(tracking.tracking_uri())
    return MlflowClient()


def _model_name(params: Params) -> str:
    return str(params.mlflow.registered_model)


def _alias(client, name: str, alias: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _version(v) -> str:
    """MLflow returns versions as int or str depending on the store; compare and print strings."""
    return str(v.version)


def _metrics_of(version) -> dict:
    return {k[len("metric.") :]: float(v) for k, v in (version.tags or {}).items() if k.startswith("metric.")}


def _register(
    client,
    params: Params,
    metrics: dict,
    files: dict[str, str],
    sha: str,
    dirty: bool = False,
    identity: dict | None = None,
):
    """A new model version holding the reviewed files; reused if these exact bytes were registered."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from mlops.config import tracking

    name = _model_name(params)
    model_md5 = files[paths.MODEL_FILE.as_posix()]
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="Promoted by `mlops promote` on merges to main.")
    for existing in client.search_model_versions(f"name='{name}'"):
        if (existing.tags or {}).get("model_md5") == model_md5:
            return existing, False
    experiment = tracking.experiment_id(str(params.mlflow.experiment))
    tags = {
        "git_sha": sha,
        "git_dirty": "true" if dirty else "false",
        "data_md5": data_md5(),
        "model_md5": model_md5,
        "training_run_id": str(tracking.train_run(paths.MODEL_FILE).get("run_id", "")),
        "params": json.dumps(
            {"seed": params.seed, "split": as_dict(params.split), "train": as_dict(params.train)},
            sort_keys=True,
        ),
        **{f"metric.{k}": str(v) for k, v in metrics.items()},
        "dataset": json.dumps(identity or {}),  # task, label, classes: the swap check's identity
    }
    with mlflow.start_run(experiment_id=experiment, run_name=f"promote {sha[:7]}") as run:
        mlflow.set_tags({"mlops.step": "promote", "git_sha": sha})
        mlflow.log_params({"seed": params.seed, **{f"train.{k}": v for k, v in params.train.flat().items()}})
        mlflow.log_metrics(metrics)
        mlflow.log_artifacts(str(paths.MODEL_DIR), artifact_path="torchscript")
        source = f"{run.info.artifact_uri}/torchscript"
    version = client.create_model_version(
        name, source=source, run_id=run.info.run_id, tags=tags, description=f"git {sha}"
    )
    return version, True


def write_release(name: str, version, event: str, champion: bool = True, **details: str) -> dict:
    """Record `version` (a ModelVersion) after an alias move, or as the gated candidate (champion=False)."""
    tags = version.tags or {}
    record = {
        "registered_model": name,
        "version": _version(version),
        "git_sha": tags.get("git_sha", "unknown"),
        **({"git_dirty": True} if tags.get("git_dirty") == "true" else {}),
        "model_md5": tags.get("model_md5", "unknown"),
        "champion": champion,
        "event": event,
        **details,
    }
    RELEASE.parent.mkdir(parents=True, exist_ok=True)
    RELEASE.write_text(json.dumps(record, indent=2) + "\n")
    return record


def _summary(path: str | None, lines: list[str]) -> None:
    text = "\n".join(lines) + "\n"
    print(text)
    if path:
        with open(path, "a") as out:
            out.write(text + "\n")


def promote(
    summary: str | None = None,
    candidate: bool = False,
    allow_dirty: bool = False,
    remeasure: bool | None = None,
    force: bool = False,
    reason: str | None = None,
) -> int:
    """Register and gate the reviewed model; move `champion` too unless `candidate` (CI: the image first).

    A tree with uncommitted changes is refused unless `allow_dirty`, which records git_dirty=true.
    `remeasure` (default: with `candidate` or in GitHub Actions): the gates use the model's metrics as
    this checkout's code measures them (mlops/release/measure.py), refusing a PR report that disagrees; else
    the
    numbers in eval/metrics.json (a person's own run). `force` with `reason`: allow a champion that moves
    backwards in main's history."""
    require_release_ref()
    reason = _forced(force, reason)
    params = load_params()
    files = verify_reviewed_artifacts()
    dirty = require_clean(allow_dirty)
    if remeasure is None:
        remeasure = candidate or os.environ.get("GITHUB_ACTIONS") == "true"
    if remeasure:
        from mlops.release import measure

        measured = measure.trusted_metrics(params)  # refuses (and alerts) before anything is registered
        metrics, identity = measured.metrics, measured.dataset or None
        source = (
            f"re-measured by this checkout's code on the test split ({identity.get('test_rows', '?')} rows), "
            f"agreeing with {paths.METRICS} within {measure.TOLERANCE:g}"
            if identity
            else "re-measured by this checkout's code on the test split"
        )
    else:
        document = json.loads(paths.METRICS.read_text())
        metrics = flat_scores(document)
        identity, source = recorded_identity(document), f"as {paths.METRICS} reports them (not re-measured)"
    # a swapped table's derived floors use the baselines' scores of the PR run (evaluate fits them; the
    # re-measurement scores the shipped model only): docs/security.md names this
    baselines = json.loads(paths.METRICS.read_text()).get("baseline") if paths.METRICS.exists() else None
    sha = git_sha()
    client = _client(params)
    name = _model_name(params)
    version, created = _register(client, params, metrics, files, sha, dirty, identity)
    champion = _alias(client, name, CHAMPION)

    number = _version(version)
    lines = [
        f"## Promotion: `{name}` version {number}",
        "",
        f"- git sha: `{sha}`{' plus uncommitted changes (git_dirty=true)' if dirty else ''}; "
        f"model md5 `{files[paths.MODEL_FILE.as_posix()]}` matches dvc.lock",
        f"- metrics: {source}",
        f"- registry: `{_safe_uri()}` ({'new version' if created else 'already registered'})",
    ]
    current = _version(champion) if champion is not None else None
    if current != number:
        _require_forward(client, name, champion, number, sha, reason)
    if current == number:
        lines.append(f"- version {number} is already `{CHAMPION}`: nothing to do")
        _summary(summary, lines)
        write_release(name, version, "promote")
        return 0
    if champion is not None:
        baseline = Baseline(
            f"champion v{current}", _metrics_of(champion), f"the registry's `{CHAMPION}` (version {current})"
        )
    else:
        baseline = previous_commit_baseline(sha)
    swapped = swap_reason(  # another task, label or classes than the baseline: nothing to compare
        identity,
        recorded_identity(champion.tags if champion is not None else baseline.metrics),
    )
    results = check_gates(
        metrics,
        baseline.metrics,
        params.gates.rules(),
        baseline_name=baseline.name,
        no_baseline=swapped,
        baselines=baselines,  # a swapped table's floors come from its baselines, as in the PR report
        floors_set=floors_changed(_parent_params(sha), params.raw),
    )
    passed = all_passed(results)
    lines += [
        f'- baseline for "no worse than champion": {baseline.source}',
        "",
        "| gate | result |",
        "| --- | --- |",
    ]
    lines += [f"| {r.name} | {'PASS' if r.passed else 'FAIL'}: {r.detail} |" for r in results]
    client.set_model_version_tag(name, number, "gates", "passed" if passed else "failed")
    client.set_model_version_tag(name, number, "gate_baseline", baseline.name)
    if not passed:
        lines += [
            "",
            f"**Refused**: `{CHAMPION}` stays at {'version ' + current if current else 'no version'}.",
        ]
        _summary(summary, lines)
        failed = "; ".join(r.line() for r in results if not r.passed)
        raise UserError(f"version {number} failed the gates, {CHAMPION} unchanged: {failed}")
    if candidate:
        lines += [
            "",
            f"**Candidate**: version {number} passed its gates; `{CHAMPION}` stays at "
            f"{_named(current)} until its image is pushed (`mlops champion`).",
        ]
        _summary(summary, lines)
        write_release(name, version, "candidate", champion=False, expect_champion=current or "")
        return 0
    _set_champion(client, name, number, current, sha)
    was = f"was version {current}" if current else "first champion"
    lines += ["", f"**Promoted**: `{CHAMPION}` -> version {number} ({was})."]
    _summary(summary, lines)
    write_release(name, version, "promote", **({"previous": current} if current else {}))
    return 0


def _set_champion(client, name: str, number: str, current: str | None, sha: str) -> None:
    if current is not None:
        client.set_registered_model_alias(name, PREVIOUS, current)
        client.set_model_version_tag(name, number, "previous_champion", current)
    client.set_model_version_tag(name, number, RELEASED_FROM, sha)
    client.set_registered_model_alias(name, CHAMPION, number)


RELEASED_FROM = "released_from"  # the commit whose release moved `champion` to this version


def _forced(force: bool, reason: str | None) -> str | None:
    """The reason of a forced move, or None when not forced; `force` without a reason is refused."""
    reason = (reason or "").strip()
    if force and not reason:
        raise UserError('--force needs --reason "...": a forced move is recorded with why it was done')
    return reason if force else None


def _require_forward(client, name: str, champion, number: str, sha: str, forced: str | None) -> None:
    """Refuse a champion move that goes backwards in main's history, unless forced with a reason.

    Each alias move records the commit it released (`released_from`). A move is forward when that commit
    is this checkout's commit or one of its ancestors (so the jobs check out full history). A re-run of
    an older release run checks out the older commit, which does not contain the newer release's commit,
    so it is refused, whatever `expect` its re-run release job recomputed. A rollback keeps the commit it
    rolled back from, so a re-run of a release older than that one is refused too. `mlops rollback` is
    the way back."""
    if champion is None:
        return
    tags = champion.tags or {}
    released = tags.get(RELEASED_FROM) or tags.get("git_sha")  # a champion from before this tag: its commit
    if not released or "unknown" in (released, sha):
        return
    if released == sha or git("merge-base", "--is-ancestor", released, sha, check=False) is not None:
        return
    problem = (
        f"{CHAMPION} is version {_version(champion)}, released from commit {released[:12]}, which this "
        f"checkout's commit {sha[:12]} does not contain: moving it to version {number} would go backwards "
        "(a re-run of an older release run?)"
    )
    if git("cat-file", "-e", f"{released}^{{commit}}", check=False) is None:
        problem += f"; commit {released[:12]} is not in this clone at all (shallow? fetch-depth: 0)"
    if forced is None:
        raise UserError(
            f"{problem}; {CHAMPION} unchanged. To go back on purpose: `mlops rollback --to {number}`, "
            'or --force --reason "..."'
        )
    print(f"champion: forced: {problem}: {forced}")
    client.set_model_version_tag(name, number, "forced_champion_reason", forced)


def move_champion(
    version: str,
    expect: str | None,
    image: str | None = None,
    summary: str | None = None,
    force: bool = False,
    reason: str | None = None,
) -> int:
    """The last registry step of a release: `champion` -> `version`, once its image is pushed.

    `expect` is the champion the gates compared with ("" = none): if another promotion moved the alias
    in between, the gates no longer hold and the move is refused (compare-and-set). A move backwards in
    main's history (`_require_forward`) is refused too, unless `force` with a `reason`. Nothing is written
    on the version before those checks pass."""
    require_release_ref()
    forced = _forced(force, reason)
    params = load_params()
    client = _client(params)
    name = _model_name(params)
    from mlflow.exceptions import MlflowException

    try:
        chosen = client.get_model_version(name, str(version))
    except MlflowException:
        raise UserError(f"{name} has no version {version}") from None
    number = _version(chosen)
    if (chosen.tags or {}).get("gates") != "passed":
        raise UserError(f"version {number} has not passed its gates; {CHAMPION} unchanged")
    champion = _alias(client, name, CHAMPION)
    current = _version(champion) if champion is not None else None
    if current == number:
        if image and not (chosen.tags or {}).get("image"):
            client.set_model_version_tag(name, number, "image", image)
        print(f"champion: version {number} is already {CHAMPION}")
        write_release(name, client.get_model_version(name, number), "promote", **_image(image))
        return 0
    if expect is not None and (current or "") != expect:
        raise UserError(
            f"{CHAMPION} moved while this release ran (gated against {_named(expect)}, now "
            f"{_named(current)}); {CHAMPION} unchanged: run the promotion again"
        )
    sha = git_sha()
    _require_forward(client, name, champion, number, sha, forced)
    if image:
        client.set_model_version_tag(name, number, "image", image)
    _set_champion(client, name, number, current, sha)
    was = f"was version {current}" if current else "first champion"
    _summary(
        summary,
        [
            f"**Promoted**: `{CHAMPION}` -> version {number} ({was})"
            + (f", image `{image}`." if image else ".")
        ],
    )
    write_release(
        name,
        client.get_model_version(name, number),
        "promote",
        **({"previous": current} if current else {}),
        **_image(image),
    )
    return 0


def _named(version: str | None) -> str:
    return f"version {version}" if version else "no version"


def _image(image: str | None) -> dict[str, str]:
    return {"image": image} if image else {}


def undo_champion(version: str, previous: str | None) -> int:
    """Put `champion` back on `previous` ("" or None: no champion) if this release moved it to `version`.

    By hand (promote.yml never calls it: the deploy job's failure leaves the release standing); it
    changes nothing when the alias never reached `version` or someone moved it since."""
    require_release_ref()
    params = load_params()
    client = _client(params)
    name = _model_name(params)
    champion = _alias(client, name, CHAMPION)
    if champion is None or _version(champion) != str(version) or str(previous) == str(version):
        print(f"champion --undo: this release did not move {CHAMPION} to version {version}; nothing to undo")
        return 0
    if previous:
        client.set_registered_model_alias(name, CHAMPION, str(previous))
        write_release(name, client.get_model_version(name, str(previous)), "undo", undone=str(version))
    else:
        client.delete_registered_model_alias(name, CHAMPION)
        RELEASE.unlink(missing_ok=True)
    client.set_model_version_tag(name, str(version), "release", "undone: a step after the alias move failed")
    print(f"champion --undo: {CHAMPION} -> {'version ' + previous if previous else 'none'} (was {version})")
    return 0


def rollback(version: str | None = None, force: bool = False, reason: str | None = None) -> int:
    """Move `champion` back. A version whose gates did not pass needs `force` and a reason, kept on record."""
    reason = (reason or "").strip()
    if force and not reason:
        raise UserError('--force needs --reason "...": a forced rollback is recorded with why it was done')
    params = load_params()
    client = _client(params)
    name = _model_name(params)
    champion = _alias(client, name, CHAMPION)
    if champion is None:
        raise UserError(f"{name} has no {CHAMPION} to roll back")
    target = version or (champion.tags or {}).get("previous_champion")
    if not target:
        raise UserError(
            f"{CHAMPION} is version {_version(champion)}, which records no previous champion; "
            "pass --to VERSION"
        )
    from mlflow.exceptions import MlflowException

    try:
        chosen = client.get_model_version(name, str(target))
    except MlflowException:
        raise UserError(f"{name} has no version {target}") from None
    number, current = _version(chosen), _version(champion)
    if number == current:
        print(f"rollback: version {number} is already {CHAMPION}: nothing to do")
        write_release(name, champion, "rollback")
        return 0
    gates = (chosen.tags or {}).get("gates", "never run")
    details = {"previous": current}
    if gates != "passed":
        if not force:
            raise UserError(
                f"version {number} did not pass its gates (gates: {gates}); {CHAMPION} stays at version "
                f'{current}. To ship it anyway: mlops rollback --to {number} --force --reason "..."'
            )
        details.update(forced="true", reason=reason)
        client.set_model_version_tag(name, number, "forced_champion_reason", reason)
        note = f"forced {CHAMPION} by rollback from version {current} (gates: {gates}): {reason}"
        client.update_model_version(name, number, description=f"{chosen.description or ''}\n{note}".strip())
    elif reason:
        details["reason"] = reason
        client.set_model_version_tag(name, number, "rollback_reason", reason)
    client.set_registered_model_alias(name, CHAMPION, number)
    client.set_registered_model_alias(name, PREVIOUS, current)
    client.set_model_version_tag(name, current, "rolled_back_to", number)
    tags = champion.tags or {}
    if released := tags.get(RELEASED_FROM) or tags.get("git_sha"):  # no older release's re-run follows
        client.set_model_version_tag(name, number, RELEASED_FROM, released)
    write_release(name, client.get_model_version(name, number), "rollback", **details)
    forced = " (forced: gates " + gates + ")" if "forced" in details else ""
    print(f"rollback: {CHAMPION} -> version {number} (was {current}){forced}; {RELEASE} updated")
    return 0


def _safe_uri() -> str:
    """The tracking URI without credentials, for logs and summaries."""
    from mlops.config import tracking

    uri = tracking.tracking_uri()
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return uri
