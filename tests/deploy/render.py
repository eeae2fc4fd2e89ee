"""Render the kustomize overlays in manifests/ the way a user would, with the project's own kubectl.

Shared by the deploy tests, the e2e server-side dry run and `make lint-deploy`:

    python -m tests.deploy.render --out DIR     writes DIR/<overlay>.yaml for every overlay (and each
                                                COMPONENT_RENDERS entry), and
                                                DIR/helm-<values>.yaml for the Helm chart (helm.py)

The overlays are rendered from a copy of manifests/ so that the self-signed component's
certificates (normally copied in by `make self-signed-certs`, git-ignored) can be generated for the
run without touching the checkout. kubectl is the one the e2e suite builds (``KUBEBUILDER_ASSETS``,
else .cache/envtest/bin), never whatever happens to be on PATH: the kustomize version it embeds is
pinned with the Kubernetes release.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.support.certs import CERT_FILES, cli_certs
from tests.support.controlplane import assets_folder
from tests.support.paths import MANIFESTS

from . import helm

# Where the self-signed component reads ca.crt, tls.crt and tls.key (see its kustomization.yaml).
SELF_SIGNED_GENERATED = Path("components") / "self-signed" / "generated"
# kustomize of a few files takes well under a second; this only bounds a hung process.
KUBECTL_TIMEOUT = 60


class MissingKubectl(RuntimeError):
    """The project's kubectl is not built yet."""


def find_kubectl() -> Path:
    """kubectl from KUBEBUILDER_ASSETS or .cache/envtest/bin, or MissingKubectl with the remedy."""
    folder = assets_folder()
    kubectl = folder / "kubectl"
    if not os.access(kubectl, os.X_OK):
        raise MissingKubectl(f"no kubectl in {folder}: run `make envtest` (builds it once) or set KUBEBUILDER_ASSETS")
    return kubectl


def overlays() -> list[str]:
    """Every overlay under manifests/overlays, so a new one is rendered and tested without a list."""
    return sorted(p.name for p in (MANIFESTS / "overlays").iterdir() if (p / "kustomization.yaml").is_file())


def stage(dest: Path, certs: Path) -> Path:
    """Copy manifests/ to DEST/manifests with CERTS' files in the self-signed component; return it."""
    root = dest / "manifests"
    shutil.copytree(MANIFESTS, root, ignore=shutil.ignore_patterns(*CERT_FILES))
    for name in CERT_FILES:
        shutil.copy2(certs / name, root / SELF_SIGNED_GENERATED / name)
    return root


def kustomize(kubectl: Path, directory: Path) -> str:
    """`kubectl kustomize DIRECTORY`; RuntimeError with kubectl's message when it fails."""
    result = subprocess.run(
        [str(kubectl), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=KUBECTL_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory} failed: {result.stderr.strip()}")
    return result.stdout


def documents(text: str) -> list[dict[str, Any]]:
    """The objects of a multi-document YAML stream (empty documents dropped)."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render_all(workdir: Path, kubectl: Path | None = None) -> dict[str, str]:
    """Render every overlay from a staged copy in WORKDIR: {overlay: YAML text}."""
    kubectl = kubectl or find_kubectl()
    certs = workdir / "certs"
    certs.mkdir(parents=True)
    cli_certs(certs)
    root = stage(workdir, certs)
    return {name: kustomize(kubectl, root / "overlays" / name) for name in overlays()}


# Opt-in components no overlay uses, each rendered on top of the default overlay as a user adds it
# to theirs: {render name: components, in order}. Scanned like the overlays, under these names.
COMPONENT_RENDERS: dict[str, tuple[str, ...]] = {
    "default+audit": ("audit",),
    "default+audit-evict": ("audit", "audit-evict"),
    "default+provisioner": ("provisioner",),
    "default+provisioner-prometheus": ("provisioner", "provisioner-prometheus"),
}


def render_components(kubectl: Path, root: Path, name: str, namespace: str = "") -> str:
    """COMPONENT_RENDERS[NAME] from a kustomization written into ROOT (a staged or copied manifests/),
    optionally moved to NAMESPACE as a user's overlay would."""
    folder = root / "component-renders" / (f"{name}-{namespace}" if namespace else name)
    folder.mkdir(parents=True)
    kustomization: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["../../overlays/default"],
        "components": [f"../../components/{component}" for component in COMPONENT_RENDERS[name]],
    }
    if namespace:
        kustomization["namespace"] = namespace
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return kustomize(kubectl, folder)


def render_all_components(workdir: Path, kubectl: Path | None = None) -> dict[str, str]:
    """Every COMPONENT_RENDERS entry, from a copy of manifests/ in WORKDIR: {render name: YAML text}."""
    kubectl = kubectl or find_kubectl()
    root = workdir / "manifests"
    shutil.copytree(MANIFESTS, root, ignore=shutil.ignore_patterns(*CERT_FILES))
    return {name: render_components(kubectl, root, name) for name in COMPONENT_RENDERS}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.deploy.render", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder for the renders (replaced)")
    args = parser.parse_args(argv)
    out: Path = args.out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    try:
        rendered = render_all(out / "work")
        rendered |= render_all_components(out / "work" / "components")
        # The chart gets the same checkov scan: its default values and every documented example.
        rendered |= helm.render_all()
    except (MissingKubectl, helm.MissingHelm, RuntimeError) as exc:
        print(f"render: {exc}", file=sys.stderr)
        return 1
    shutil.rmtree(out / "work")
    for name, text in rendered.items():
        (out / f"{name}.yaml").write_text(text)
        print(f"render: {out / name}.yaml ({len(documents(text))} objects)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
