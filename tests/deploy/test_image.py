"""What the images hold: the webhook's (`make image`) and the provisioner's (`make image-provisioner`),
two builds of the one Dockerfile that differ only by the build argument EXTRAS (image.py rebuilds
both as their Makefile targets say). The webhook's stays lean: the provisioner's AWS client, boto3,
is the package's optional extra `provisioner`, and only the provisioner's image installs it.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from collections.abc import Sequence
from typing import Any

import pytest
import yaml

from tests.support.paths import MANIFESTS, REPO

from .image import (
    DOCKERFILE,
    PROVISIONER_TARGET,
    WEBHOOK_TARGET,
    Build,
    Image,
    distributions,
    env_pairs,
    exec_form,
    make_build,
    parse_dockerfile,
    sandboxed,
    site_packages,
)

EXTRA = "provisioner"  # pyproject.toml's optional extra, the provisioner's image's EXTRAS
# Creating a client reads botocore's service models from site-packages, on the read-only root.
BOTO3_PROBE = "import boto3, webhook.cli; print(boto3.client('s3', region_name='us-east-1').meta.endpoint_url)"


@pytest.fixture(params=[WEBHOOK_TARGET, PROVISIONER_TARGET])
def each_image(request: pytest.FixtureRequest) -> Image:
    built: Image = request.getfixturevalue("image" if request.param == WEBHOOK_TARGET else "provisioner_image")
    return built


def run_read_only(image: Image, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """ARGV with the image's ENV, on the read-only root without capabilities, as in the pod."""
    return subprocess.run(
        sandboxed(argv, image.workdir), env=image.env, capture_output=True, text=True, timeout=60, check=False
    )


def extra_closure(extra: str) -> dict[str, str]:
    """{name: version} of what uv.lock installs for the project's optional EXTRA, dependencies included."""
    packages: list[dict[str, Any]] = tomllib.loads((REPO / "uv.lock").read_text())["package"]
    (project,) = [p for p in packages if p["name"] == "irsa-webhook"]
    found: dict[str, str] = {}
    todo = list(project["optional-dependencies"][extra])
    while todo:
        dependency = todo.pop()
        if dependency["name"] in found:
            continue
        # A name locked at two versions (another group's pin) is named with its version.
        (package,) = [
            p
            for p in packages
            if p["name"] == dependency["name"] and dependency.get("version", p["version"]) == p["version"]
        ]
        found[package["name"]] = package["version"]
        todo += package.get("dependencies", [])
    return found


# --- the Dockerfile and the Makefile ------------------------------------------------------------------
def test_dockerfile_shape() -> None:
    stages = parse_dockerfile(DOCKERFILE.read_text())
    final = stages[-1]
    assert exec_form(final.all("ENTRYPOINT")[-1]) == ["irsa-webhook", "serve"]
    assert final.all("USER") == ["65532:65532"]
    env: dict[str, str] = {}
    for rest in final.all("ENV"):
        env.update(env_pairs(rest))
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    # Dependencies are installed before the source is copied: a source edit keeps the layer cached.
    builder = [kw + " " + rest for kw, rest in stages[0].instructions]
    deps = next(i for i, line in enumerate(builder) if "--no-install-project" in line)
    source = next(i for i, line in enumerate(builder) if line.startswith("COPY webhook"))
    assert deps < source
    # Everything comes from a lock: uv from .ci/requirements-uv.txt's hashes, the rest from uv.lock.
    installs = [line for line in builder if re.search(r"\b(pip|uv) (install|sync)\b", line)]
    assert installs
    for line in installs:
        assert "--require-hashes" in line if "pip install" in line else "--locked" in line, line
    # Base images pinned by full version (x.y.z), the same for both stages.
    bases = re.findall(r"^FROM (\S+)", DOCKERFILE.read_text(), flags=re.MULTILINE)
    assert len(set(bases)) == 1
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", bases[0])


def test_both_uv_syncs_install_the_extra() -> None:
    """The dependencies' layer installs the extra too, so that a source edit keeps boto3 cached (the
    package's sync alone would install it on every build), and the package's sync keeps it (uv sync
    is exact: without the extra it would remove boto3 again, which the replay would show)."""
    builder = parse_dockerfile(DOCKERFILE.read_text())[0]
    syncs = [rest for rest in builder.all("RUN") if "uv sync" in rest]
    assert len(syncs) == 2
    for rest in syncs:
        assert rest.endswith(' ${EXTRAS:+--extra "$EXTRAS"}'), rest
    # Declared after uv's own layer, which both images then share (an ARG invalidates what follows it).
    keywords = [kw + " " + rest for kw, rest in builder.instructions]
    arg = keywords.index('ARG EXTRAS=""')
    assert all("uv sync" not in line for line in keywords[:arg])
    assert any("requirements-uv.txt" in line for line in keywords[:arg] if line.startswith("RUN"))


def test_the_makefile_builds_two_images_of_one_dockerfile() -> None:
    assert make_build(WEBHOOK_TARGET) == Build("irsa-webhook:dev", {})
    assert make_build(PROVISIONER_TARGET) == Build("irsa-webhook-provisioner:dev", {"EXTRAS": EXTRA})
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert [re.split(r"[<>=~ ]", d)[0] for d in pyproject["project"]["optional-dependencies"][EXTRA]] == ["boto3"]


# --- what each image holds ------------------------------------------------------------------------
def test_final_image_has_no_build_tools(each_image: Image) -> None:
    bin_dir = each_image.root / "opt/venv/bin"
    assert (bin_dir / "irsa-webhook").is_file()
    assert not (bin_dir / "pip").exists()
    assert not (bin_dir / "uv").exists(), "uv is an installer"
    site = site_packages(each_image)
    assert not list(site.glob("setuptools*")), "setuptools is a build tool"
    assert not list(site.glob("pip")), "pip is an installer"
    # Installed, not editable: the code lives in site-packages, not in the source tree.
    assert (site / "webhook" / "cli.py").is_file()
    assert not list(site.glob("__editable__*"))


def test_image_holds_the_locked_versions(each_image: Image) -> None:
    """Every distribution in the image is the one uv.lock names, at its version, and no dev tool."""
    locked: dict[str, set[str]] = {}
    for package in tomllib.loads((REPO / "uv.lock").read_text())["package"]:
        locked.setdefault(package["name"], set()).add(package["version"])
    installed = distributions(each_image)
    assert "irsa-webhook" in installed
    assert {name: v for name, v in installed.items() if v not in locked.get(name, set())} == {}
    assert not {"pytest", "mypy", "ruff", "moto", "checkov"} & installed.keys()
    # The node-image group (awscli) is for the local node's app image alone: no uv sync here names it.
    assert "awscli" not in installed


def test_only_the_provisioner_image_has_boto3(image: Image, provisioner_image: Image) -> None:
    """The provisioner's image is the webhook's, every version the same, plus the extra's closure."""
    webhook, provisioner = distributions(image), distributions(provisioner_image)
    assert not {"boto3", "botocore", "s3transfer"} & webhook.keys()
    assert {name: provisioner.get(name) for name in webhook} == webhook
    added = {name: v for name, v in provisioner.items() if name not in webhook}
    assert added == {name: v for name, v in extra_closure(EXTRA).items() if name not in webhook}
    assert {"boto3", "botocore"} <= added.keys()


def test_boto3_runs_read_only_in_the_provisioner_image(image: Image, provisioner_image: Image) -> None:
    result = run_read_only(provisioner_image, ["python", "-c", BOTO3_PROBE])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "https://s3.amazonaws.com"
    assert "Read-only file system" not in result.stderr
    lean = run_read_only(image, ["python", "-c", BOTO3_PROBE])
    assert lean.returncode == 1
    assert "No module named 'boto3'" in lean.stderr


def test_the_controller_command_starts_in_the_provisioner_image(provisioner_image: Image) -> None:
    """The command the provisioner's Deployment runs (the component's; the chart's is the same,
    test_deploy_provisioner.py) is in the image and starts read-only."""
    deployment = yaml.safe_load((MANIFESTS / "components" / "provisioner" / "deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    result = run_read_only(provisioner_image, [*container["command"], "--help"])
    assert result.returncode == 0, result.stderr
    assert "--cluster-name" in result.stdout
