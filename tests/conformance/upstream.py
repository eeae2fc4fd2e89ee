"""Reading the upstream webhook's test pods (``pkg/handler/testdata``) as the corpus README says.

Each file is one Pod whose ``testing.eks.amazonaws.com/...`` annotations describe the world it is
admitted into (namespace ``default``, ServiceAccount ``default``); every other annotation is a real
pod annotation. This module decodes those into our inputs and normalises upstream's result so that
outcomes, not bytes, are compared.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.cases import apply_patch, load_yaml
from tests.support.paths import REPO
from webhook.core.goparse import parse_go_bool
from webhook.core.marker import MARKER_ANNOTATION
from webhook.core.settings import MIN_TOKEN_EXPIRATION, Settings

TESTING = "testing.eks.amazonaws.com/"
PREFIX = "eks.amazonaws.com"
NAMESPACE = "default"
SERVICE_ACCOUNT = "default"
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
CONTAINER_FIELDS = ("initContainers", "containers")
# Go's strconv.ParseInt, base 10.
GO_INT = re.compile(r"[+-]?\d+")


def corpus_dir() -> Path:
    """``$IRSA_CONFORMANCE_DIR``, else ``<repo>/../shared/conformance/upstream-testdata``."""
    override = os.environ.get("IRSA_CONFORMANCE_DIR")
    return Path(override) if override else REPO.parent / "shared" / "conformance" / "upstream-testdata"


@dataclass(frozen=True, slots=True)
class UpstreamCase:
    name: str  # path relative to the corpus, without ``.pod.yaml``
    pod: dict[str, Any]  # as the upstream harness admits it, testing annotations included
    testing: dict[str, str]  # the testing annotations, prefix removed

    @property
    def skipped(self) -> bool:
        return self.testing.get("skip") == "true"

    @property
    def pod_identity(self) -> bool:
        """An EKS Pod Identity (container credentials) case rather than an IRSA one."""
        return self.name.startswith("containercredentials/") or bool(self.testing.get("containercredentials/uri"))

    def upstream_pod(self) -> Any:
        """The pod upstream produces: its expected patch applied to the input."""
        return apply_patch(self.pod, json.loads(self.testing["expectedPatch"]))


def load_cases(root: Path) -> list[UpstreamCase]:
    cases = []
    for path in sorted(root.rglob("*.pod.yaml")):
        pod = load_yaml(path)
        annotations = pod.get("metadata", {}).get("annotations") or {}
        testing = {k.removeprefix(TESTING): str(v) for k, v in annotations.items() if k.startswith(TESTING)}
        name = path.relative_to(root).as_posix().removesuffix(".pod.yaml")
        cases.append(UpstreamCase(name, pod, testing))
    return cases


def _first(testing: Mapping[str, str], *keys: str) -> str | None:
    return next((testing[k] for k in keys if k in testing), None)


def service_account(case: UpstreamCase) -> dict[str, Any]:
    """The ``default/default`` ServiceAccount the case describes, as a raw manifest."""
    testing = case.testing
    annotations: dict[str, str] = {}
    if "serviceAccount/roleArn" in testing:
        annotations[f"{PREFIX}/role-arn"] = testing["serviceAccount/roleArn"]
    # Absent: the flag default, sts.amazonaws.com, as in the upstream fake.
    if "serviceAccount/audience" in testing:
        annotations[f"{PREFIX}/audience"] = testing["serviceAccount/audience"]
    sts = _first(testing, "serviceAccount/sts-regional-endpoints", "handler/injectSTS")
    if sts is not None:  # the first present wins; a value ParseBool rejects means false
        annotations[f"{PREFIX}/sts-regional-endpoints"] = str(bool(parse_go_bool(sts))).lower()
    expiration = _first(testing, "serviceAccount/token-expiration", "handler/expiration")
    if expiration is not None and GO_INT.fullmatch(expiration):  # invalid: 86400, the flag default
        annotations[f"{PREFIX}/token-expiration"] = expiration
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": SERVICE_ACCOUNT, "namespace": NAMESPACE, "annotations": annotations},
    }


def below_minimum_expiration(account: Mapping[str, Any]) -> bool:
    """The upstream fake applies no minimum to a ServiceAccount's lifetime; we raise it to 600."""
    raw = account["metadata"]["annotations"].get(f"{PREFIX}/token-expiration")
    return raw is not None and int(raw) < MIN_TOKEN_EXPIRATION


def raise_token_lifetime(pod: dict[str, Any], seconds: int) -> None:
    for volume in (pod.get("spec") or {}).get("volumes") or ():
        for source in (volume.get("projected") or {}).get("sources") or ():
            token = source.get("serviceAccountToken")
            if isinstance(token, dict) and token.get("expirationSeconds", seconds) < seconds:
                token["expirationSeconds"] = seconds


# The Pod Identity flags the containercredentials/* testing annotations stand for.
CONTAINER_CREDENTIALS_FLAGS = {
    "containercredentials/uri": "container_credentials_full_uri",
    "containercredentials/audience": "container_credentials_audience",
    "containercredentials/mountPath": "container_credentials_mount_path",
    "containercredentials/volumeName": "container_credentials_volume_name",
    "containercredentials/tokenPath": "container_credentials_token_path",
}
# The corpus README: Pod Identity cases assume the jitter of a 86400 s lifetime returns its minimum.
UPSTREAM_JITTERED = 79200
JITTER_RANGE = (79200, 86400)


def settings(case: UpstreamCase) -> Settings:
    flags: dict[str, Any] = {}
    if "handler/region" in case.testing:
        flags["aws_default_region"] = case.testing["handler/region"]
    if "handler/mountPath" in case.testing:
        flags["token_mount_path"] = case.testing["handler/mountPath"]
    for key, name in CONTAINER_CREDENTIALS_FLAGS.items():
        if key in case.testing:
            flags[name] = case.testing[key]
    return Settings(**flags)


def identities_file(case: UpstreamCase) -> bytes:
    """The Pod Identity file of a case's world: ``default/default`` when the case is a Pod Identity one."""
    listed = [{"namespace": NAMESPACE, "serviceAccount": SERVICE_ACCOUNT}] if case.pod_identity else []
    return json.dumps({"identities": listed}).encode()


def token_lifetimes(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The serviceAccountToken projections of ``pod``'s volumes (mutable, in volume order)."""
    tokens = []
    for volume in (pod.get("spec") or {}).get("volumes") or ():
        for source in (volume.get("projected") or {}).get("sources") or ():
            token = source.get("serviceAccountToken")
            if isinstance(token, dict):
                tokens.append(token)
    return tokens


def settle_jitter(ours: dict[str, Any], theirs: Mapping[str, Any]) -> int:
    """Where upstream's fixed random source gave 79200, ours must lie in [79200, 86400]; then it is set
    to 79200 so the rest compares as equal. Returns how many lifetimes were settled."""
    settled = 0
    wanted = {str(t.get("path")): t.get("expirationSeconds") for t in token_lifetimes(theirs)}
    for token in token_lifetimes(ours):
        if wanted.get(str(token.get("path"))) == UPSTREAM_JITTERED:
            low, high = JITTER_RANGE
            assert low <= token["expirationSeconds"] <= high, f"lifetime {token['expirationSeconds']} not jittered"
            token["expirationSeconds"] = UPSTREAM_JITTERED
            settled += 1
    return settled


def strip_testing_annotations(pod: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(pod))
    meta = out.get("metadata") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if not k.startswith(TESTING)}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return out


def without_marker(pod: Mapping[str, Any]) -> dict[str, Any]:
    """``pod`` without our admission marker (``irsa-webhook.io/injected``), which upstream does not
    write; it must be there, and nothing else of the metadata may differ because of it."""
    out = copy.deepcopy(dict(pod))
    meta = out.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    assert MARKER_ANNOTATION in annotations, "a mutated pod carries no admission marker"
    del annotations[MARKER_ANNOTATION]
    if not annotations:
        meta.pop("annotations", None)
    return out


def normalise_upstream(upstream: Mapping[str, Any], original: Mapping[str, Any]) -> dict[str, Any]:
    """Remove what upstream adds only because Go re-serialises the containers it replaces.

    Per the corpus README: ``"resources": {}`` on containers that had none, ``"service": null`` in
    grpc probes, ``"mountPath": ""`` on a pre-existing mount that had none. Only fields absent from
    the original are removed, so nothing the pod really carried can be normalised away.
    """
    out = strip_testing_annotations(upstream)
    spec, old_spec = out.get("spec") or {}, original.get("spec") or {}
    for field in CONTAINER_FIELDS:
        old_by_name = {c.get("name"): c for c in old_spec.get(field) or ()}
        for container in spec.get(field) or ():
            old = old_by_name.get(container.get("name"), {})
            if container.get("resources") == {} and "resources" not in old:
                del container["resources"]
            for probe in PROBES:
                grpc = (container.get(probe) or {}).get("grpc")
                old_grpc = (old.get(probe) or {}).get("grpc") or {}
                if isinstance(grpc, dict) and grpc.get("service") is None and "service" not in old_grpc:
                    grpc.pop("service", None)
            old_mounts = {m.get("name"): m for m in old.get("volumeMounts") or ()}
            for mount in container.get("volumeMounts") or ():
                previous = old_mounts.get(mount.get("name"))
                if mount.get("mountPath") == "" and previous is not None and "mountPath" not in previous:
                    del mount["mountPath"]
    return out


def volumes_in_name_order(pod: Mapping[str, Any]) -> dict[str, Any]:
    """``pod`` with ``spec.volumes`` sorted by name.

    Kubernetes keys pod volumes by name (patchMergeKey ``name``): their order means nothing. Upstream
    inserts the token volume first (``add /spec/volumes/0``) when the pod has volumes; we append it
    (the patch appends rather than reorders). Containers, env and mounts keep their order.
    """
    out = copy.deepcopy(dict(pod))
    spec = out.get("spec") or {}
    if isinstance(spec.get("volumes"), list):
        spec["volumes"] = sorted(spec["volumes"], key=lambda v: str(v.get("name")))
    return out


def env_names(pod: Mapping[str, Any]) -> list[list[str]]:
    spec = pod.get("spec") or {}
    return [[e["name"] for e in c.get("env") or ()] for f in CONTAINER_FIELDS for c in spec.get(f) or ()]


def remove_region_partners(
    ours: dict[str, Any], theirs: Mapping[str, Any]
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Take out of ``ours`` the ``AWS_DEFAULT_REGION`` we add where upstream left ``AWS_REGION`` alone.

    Returns (container, upstream's ``AWS_REGION`` entry, the entry removed from ours) for each such
    container; a container of ours without the entry fails. What remains of ``ours`` must then be
    upstream's pod.
    """
    removed = []
    spec, their_spec = ours.get("spec") or {}, theirs.get("spec") or {}
    for field in CONTAINER_FIELDS:
        for container, their_container in zip(spec.get(field) or (), their_spec.get(field) or (), strict=True):
            their_env = {e["name"]: e for e in their_container.get("env") or ()}
            if "AWS_REGION" not in their_env or "AWS_DEFAULT_REGION" in their_env:
                continue
            env = container.get("env") or []
            index = next((i for i, e in enumerate(env) if e["name"] == "AWS_DEFAULT_REGION"), None)
            assert index is not None, f"{container.get('name')}: AWS_REGION alone and no AWS_DEFAULT_REGION added"
            removed.append((str(container.get("name")), their_env["AWS_REGION"], env.pop(index)))
    return removed
