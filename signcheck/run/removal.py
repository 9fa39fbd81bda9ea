"""The one way a run's objects are removed from a cluster and a registry: found by its run id,
not remembered, so the same code serves the end of every run, SEED-08's miniature run and
`signcheck cleanup` of a run whose owner died.

Removal never stops halfway: each kind of object is attempted and every failure is reported.
Helm releases are removed here only for runs whose owner is gone (`releases=True`); a live
run's provider uninstalls its own, after this and before its infrastructure goes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from signcheck.artefacts import indexes
from signcheck.clients.k8s import Cluster
from signcheck.errors import SigncheckError
from signcheck.kyverno import cpol, install, lockout
from signcheck.run import scenarios, shared
from signcheck.run.context import RunContext
from signcheck.target import RUN_LABEL, Target
from signcheck.tools import helm
from signcheck.wait import until

IMAGES = ("signed", "unsigned", "otherkey")
"""signed: signed with the policy's key; unsigned: never signed; otherkey: signed with a key
the policy does not list."""


def repositories(target: Target) -> list[str]:
    """Every repository a run may push to."""
    reg, run_id = target.registry, target.run_id
    roles = [*IMAGES, *scenarios.IMAGES, *indexes.REPOSITORIES]
    return [reg.repository(run_id, r) for r in roles] + [scenarios.outside_repository(target)]


@dataclass
class Removed:
    actions: list[str] = field(default_factory=list)
    """What was done beyond deleting the run's own objects (a lockout undone, a release)."""
    errors: list[str] = field(default_factory=list)


def remove(ctx: RunContext, *, releases: bool = False) -> Removed:
    """Delete everything of the run `ctx` names; namespace deletion is started, not awaited
    (`leftovers(wait=...)` waits)."""
    out = Removed()
    run_id = ctx.target.run_id
    if releases:
        # First: their uninstall hooks need the namespaces deleted below.
        for name, ns in helm_releases(ctx.cluster, run_id):
            try:
                h = helm.Helm.pinned(ctx.target.kubeconfig, ctx.target.context)
                release = install.Release(name, ns, chart="")
                install.uninstall(ctx.cluster, h, release, ctx.settings.timeouts.release_delete)
                out.actions.append(f"uninstalled helm release {ns}/{name}")
            except SigncheckError as err:
                out.errors.append(f"helm release {ns}/{name}: {err.message}")
    try:
        cpol.delete_run_policies(ctx.cluster, run_id)
    except Exception as err:
        out.errors.append(f"policies: {err}")
    try:
        for ns in ctx.cluster.run_namespaces(run_id):
            ctx.cluster.delete_namespace(ns, wait=None)
    except Exception as err:
        out.errors.append(f"namespaces: {err}")
    for repository in run_repositories(ctx):
        try:
            ctx.registry.delete_repository(repository)
        except SigncheckError as err:
            out.errors.append(f"images {repository}: {err.message}")
    # Manifests a tag no longer names (a re-pointed tag's signed original) are invisible to a
    # listing of tags but still stored: delete them by the digests the run recorded.
    for repository, digest in _recorded_digests(ctx):
        try:
            ctx.registry.delete(repository, digest)
        except SigncheckError as err:
            out.errors.append(f"images {repository}@{digest}: {err.message}")
    try:
        for ns, name in labelled_secrets(ctx.cluster, run_id):
            ctx.cluster.delete_secret(ns, name)
    except Exception as err:
        out.errors.append(f"secrets: {err}")
    try:
        # With Kyverno gone, its fail-closed webhook still holds the pod rules our policy put
        # there, and refuses pods in every namespace: never leave a cluster so.
        out.actions += lockout.release(ctx.cluster)
    except SigncheckError as err:
        out.errors.append(f"lockout: {err.message}")
    except Exception as err:
        out.errors.append(f"lockout check: {type(err).__name__}: {err}")
    return out


def leftovers(
    ctx: RunContext, *, wait: float = 0.0, releases: bool = False
) -> dict[str, list[str]]:
    """What of the run still exists (waiting up to `wait` s for its namespaces to go)."""
    run_id = ctx.target.run_id
    if wait:
        with contextlib.suppress(SigncheckError):
            until(
                lambda: not ctx.cluster.run_namespaces(run_id),
                what=f"the namespaces of run {run_id} to be deleted",
                timeout=wait,
                interval=0.5,
            )
    found: dict[str, list[str]] = {}
    if namespaces := ctx.cluster.run_namespaces(run_id):
        found["namespaces"] = namespaces
    if policies := cpol.run_policies(ctx.cluster, run_id):
        found["policies"] = policies
    tags = [f"{repo}:{tag}" for repo in run_repositories(ctx) for tag in ctx.registry.tags(repo)]
    if tags:
        found["images"] = tags
    if secrets := [f"{ns}/{name}" for ns, name in labelled_secrets(ctx.cluster, run_id)]:
        found["secrets"] = secrets
    if releases and (named := [f"{ns}/{n}" for n, ns in helm_releases(ctx.cluster, run_id)]):
        found["helm releases"] = named
    return found


def run_repositories(ctx: RunContext) -> list[str]:
    """Every repository the run pushed: the ones the suite knows it uses, and whatever the
    registry's catalog (where it has one) lists under a path component naming the run."""
    target, run_id = ctx.target, ctx.target.run_id
    known = set(repositories(target))
    try:
        names = ctx.registry.catalog()
    except Exception:  # oras raises more than RegistryError on refused auth
        names = None
    prefix = f"{target.registry.repository_prefix}/"
    for name in names or []:
        parts = name[len(prefix) :].split("/") if name.startswith(prefix) else []
        if parts and (parts[0] == run_id or parts[0].startswith(f"{run_id}-")):
            known.add(f"{target.registry.host}/{name}")
    return sorted(known)


def _recorded_digests(ctx: RunContext) -> list[tuple[str, str]]:
    """(repository, digest) of every image the scenarios recorded, in this run's
    repositories only."""
    state = shared.read(ctx.target.run_dir, "resources") or {}
    mine = set(repositories(ctx.target))
    found = []
    for image in ((state.get("scenarios") or {}).get("images") or {}).values():
        if isinstance(image, dict) and image.get("repository") in mine:
            found.append((str(image["repository"]), str(image["digest"])))
    return found


def helm_releases(cluster: Cluster, run_id: str) -> list[tuple[str, str]]:
    """(release, namespace) of the Helm releases the run installed: `helm install --labels`
    puts the run label on the release's storage secrets."""
    found = set()
    for labels, namespace, _ in cluster.labelled_secrets(f"owner=helm,{RUN_LABEL}={run_id}"):
        if labels.get("name") and labels.get("status") != "uninstalled":
            found.add((labels["name"], namespace))
    return sorted(found)


def labelled_secrets(cluster: Cluster, run_id: str) -> list[tuple[str, str]]:
    """The run's own secrets (Helm's release records go with `helm uninstall`)."""
    selector = f"{RUN_LABEL}={run_id},owner!=helm"
    return sorted((ns, name) for _, ns, name in cluster.labelled_secrets(selector))
