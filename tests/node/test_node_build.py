"""``tests/node/build.sh``: packages, binaries and stamp, with the machine replaced by stand-ins.

The real script installs Debian packages and builds for minutes, so ``go``, ``apt-get``,
``dpkg-query``, ``containerd`` and ``runc`` are stand-ins first on PATH that record what they were
asked, and the three variables the script documents for its tests stand in for the effective uid,
/usr/sbin/policy-rc.d and /usr/lib/cni. The script itself runs unchanged from a copy of the
repository's layout (it reads the envtest go.mod and go.sum two folders over).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
ENVTEST = TESTS / "e2e" / "envtest"
NODE_BINARIES = ("kubelet", "kube-controller-manager", "kube-scheduler", "kube-proxy")
PACKAGES = (
    "containerd",
    "runc",
    "umoci",
    "debootstrap",
    "iptables",
    "conntrack",
    "gcc",
    "containernetworking-plugins",
)

# Records one line per call: the working folder, the two variables the build sets, then every
# argument quoted; a build writes an executable for each k8s.io/kubernetes/cmd/* into its -o folder.
# FAKE_GO_FAIL makes the build fail after recording (the envtest script then stops at it).
FAKE_GO = """#!/usr/bin/env bash
set -eu
if [[ "$1" == version ]]; then echo "go version go1.26.0 linux/amd64"; exit 0; fi
{
	printf '%s CGO_ENABLED=%s GOFLAGS=%s' "$PWD" "${CGO_ENABLED:-}" "${GOFLAGS:-}"
	printf ' %q' "$@"
	echo
} >>"$FAKE_LOG/go"
if [[ -n "${FAKE_GO_FAIL:-}" ]]; then exit 1; fi
out=""
pkgs=()
while [[ $# -gt 0 ]]; do
	case "$1" in
		-o) out="$2"; shift ;;
		k8s.io/kubernetes/cmd/*) pkgs+=("${1##*/}") ;;
	esac
	shift
done
for b in "${pkgs[@]}"; do
	printf '#!/usr/bin/env bash\\necho "Kubernetes v1.36.3 (%s)"\\n' "$b" >"$out/$b"
	chmod +x "$out/$b"
done
"""

# Records each call and what the policy-rc.d in force answered at that moment ("none" when absent).
# An install puts the CNI plugins where Debian's package does; FAKE_APT_FAIL makes it fail.
FAKE_APT_GET = """#!/usr/bin/env bash
set -u
if [[ -x "$IRSA_NODE_POLICY_RC_D" ]]; then "$IRSA_NODE_POLICY_RC_D" containerd start; policy=$?; else policy=none; fi
echo "policy=$policy $*" >>"$FAKE_LOG/apt-get"
if [[ "$1" == install ]]; then
	if [[ -n "${FAKE_APT_FAIL:-}" ]]; then exit 100; fi
	mkdir -p "$IRSA_NODE_CNI_DIR"
	for p in bridge host-local loopback; do
		printf '#!/bin/sh\\n' >"$IRSA_NODE_CNI_DIR/$p"
		chmod +x "$IRSA_NODE_CNI_DIR/$p"
	done
fi
"""

# dpkg-query -W -f='${Package} ${Status}\n' PACKAGE..., answered from the list in FAKE_INSTALLED:
# like the real one it prints the packages it knows and fails over the others. A package dpkg knows
# but has removed ("deinstall ok config-files") is listed too, and is not installed.
FAKE_DPKG_QUERY = """#!/usr/bin/env bash
shift 2
echo "$*" >>"$FAKE_LOG/dpkg-query"
rc=0
for package in "$@"; do
	if grep -qx "$package" "$FAKE_INSTALLED"; then echo "$package install ok installed"
	elif grep -qx "$package removed" "$FAKE_INSTALLED"; then echo "$package deinstall ok config-files"
	else echo "dpkg-query: no packages found matching $package" >&2; rc=1; fi
done
exit $rc
"""

FAKE_CONTAINERD = """#!/usr/bin/env bash
echo "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3"
"""

# runc prints several lines, as the real one does.
FAKE_RUNC = """#!/usr/bin/env bash
echo "runc version 1.1.5+ds1"
echo "commit: 1.1.5+ds1-1+deb12u1"
echo "spec: 1.0.2-dev"
"""


def _executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@dataclass
class Machine:
    """A copy of the scripts in the repository's layout, and the stand-ins around them."""

    root: Path
    env: dict[str, str]

    @property
    def script(self) -> Path:
        return self.root / "repo" / "tests" / "node" / "build.sh"

    @property
    def out(self) -> Path:
        return self.root / "out"

    @property
    def policy_rc_d(self) -> Path:
        return Path(self.env["IRSA_NODE_POLICY_RC_D"])

    @property
    def cni_dir(self) -> Path:
        return Path(self.env["IRSA_NODE_CNI_DIR"])

    def installed(self, *packages: str) -> None:
        Path(self.env["FAKE_INSTALLED"]).write_text("".join(f"{p}\n" for p in packages))

    def calls(self, tool: str) -> list[str]:
        log = Path(self.env["FAKE_LOG"]) / tool
        return log.read_text().splitlines() if log.exists() else []

    def run(self, script: Path | None = None, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(script or self.script), str(self.out)],
            check=False,
            env={**self.env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    repo = tmp_path / "repo"
    (repo / "tests" / "node").mkdir(parents=True)
    shutil.copy(TESTS / "node" / "build.sh", repo / "tests" / "node" / "build.sh")
    (repo / "tests" / "e2e" / "envtest").mkdir(parents=True)
    for name in ("build.sh", "go.mod", "go.sum"):
        shutil.copy(ENVTEST / name, repo / "tests" / "e2e" / "envtest" / name)
    fakebin = tmp_path / "fakebin"
    for name, text in {
        "go": FAKE_GO,
        "apt-get": FAKE_APT_GET,
        "dpkg-query": FAKE_DPKG_QUERY,
        "containerd": FAKE_CONTAINERD,
        "runc": FAKE_RUNC,
    }.items():
        _executable(fakebin / name, text)
    (tmp_path / "log").mkdir()
    cni = tmp_path / "usr-lib-cni"
    for plugin in ("bridge", "host-local", "loopback"):
        _executable(cni / plugin, "#!/bin/sh\n")
    drop = {"KUBEBUILDER_ASSETS", "IRSA_NODE_ASSETS", "IRSA_NODE_BUILD_EUID"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(
        PATH=f"{fakebin}{os.pathsep}{env['PATH']}",
        FAKE_LOG=str(tmp_path / "log"),
        FAKE_INSTALLED=str(tmp_path / "installed"),
        IRSA_NODE_BUILD_EUID="0",
        IRSA_NODE_POLICY_RC_D=str(tmp_path / "usr-sbin" / "policy-rc.d"),
        IRSA_NODE_CNI_DIR=str(cni),
    )
    (tmp_path / "usr-sbin").mkdir()
    made = Machine(tmp_path, env)
    made.installed(*PACKAGES)
    return made


def _built(machine: Machine) -> list[str]:
    """The binaries each recorded ``go build`` was asked for."""
    return [
        " ".join(sorted(a.rsplit("/", 1)[1] for a in shlex.split(call) if a.startswith("k8s.io/kubernetes/cmd/")))
        for call in machine.calls("go")
    ]


def test_not_root_skips_with_one_line_and_touches_nothing(machine: Machine) -> None:
    done = machine.run(IRSA_NODE_BUILD_EUID="1000")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "node: not root, skipping (the node tests need root)\n"
    assert machine.calls("dpkg-query") == machine.calls("apt-get") == machine.calls("go") == []
    assert not machine.out.exists()


def test_missing_packages_are_installed_with_no_service_started(machine: Machine) -> None:
    others = [p for p in PACKAGES if p not in {"containerd", "containernetworking-plugins"}]
    machine.installed(*others, "containerd removed")
    shutil.rmtree(machine.cni_dir)
    done = machine.run()
    assert done.returncode == 0, done.stdout + done.stderr
    assert machine.calls("dpkg-query") == [" ".join(PACKAGES)]
    # The policy-rc.d answered 101 ("forbidden") while apt-get ran, and is gone afterwards.
    assert machine.calls("apt-get") == [
        "policy=101 update -qq",
        "policy=101 install -y -qq containerd containernetworking-plugins",
    ]
    assert not machine.policy_rc_d.exists()


def test_a_policy_rc_d_already_there_is_put_back_even_when_the_install_fails(machine: Machine) -> None:
    machine.policy_rc_d.write_text("#!/bin/sh\nexit 0\n")
    machine.policy_rc_d.chmod(0o755)
    machine.installed(*PACKAGES[1:])
    done = machine.run(FAKE_APT_FAIL="1")
    assert done.returncode != 0
    assert machine.calls("apt-get") == ["policy=101 update -qq", "policy=101 install -y -qq containerd"]
    assert machine.policy_rc_d.read_text() == "#!/bin/sh\nexit 0\n"
    assert sorted(p.name for p in machine.policy_rc_d.parent.iterdir()) == ["policy-rc.d"]
    assert machine.calls("go") == []


def test_nothing_is_installed_when_every_package_is_there(machine: Machine) -> None:
    done = machine.run()
    assert done.returncode == 0, done.stdout + done.stderr
    assert machine.calls("apt-get") == []
    assert "node: Debian packages present" in done.stdout
    assert not machine.policy_rc_d.exists()


def test_a_missing_cni_plugin_is_an_error(machine: Machine) -> None:
    (machine.cni_dir / "bridge").unlink()
    done = machine.run()
    assert done.returncode == 1
    assert f"no CNI plugin {machine.cni_dir}/bridge" in done.stderr
    assert machine.calls("go") == []


def test_a_stamp_miss_builds_the_four_and_a_hit_builds_nothing(machine: Machine) -> None:
    first = machine.run()
    assert first.returncode == 0, first.stdout + first.stderr
    assert _built(machine) == [" ".join(sorted(NODE_BINARIES))]
    for name in NODE_BINARIES:
        assert os.access(machine.out / "bin" / name, os.X_OK)
    stamp = (machine.out / "bin" / ".stamp").read_text()
    assert re.fullmatch(r"kubernetes=v1\.36\.\d+ gosum=[0-9a-f]{16} script=[0-9a-f]{16}\n", stamp)
    assert "node: containerd: containerd github.com/containerd/containerd 1.6.20~ds1" in first.stdout
    assert "node: runc: runc version 1.1.5+ds1\n" in first.stdout
    assert "node: kubelet: Kubernetes v1.36.3 (kubelet)" in first.stdout

    again = machine.run()
    assert again.returncode == 0, again.stdout + again.stderr
    assert "node: cached in" in again.stdout
    assert len(machine.calls("go")) == 1
    assert "node: kubelet: Kubernetes v1.36.3 (kubelet)" in again.stdout


@pytest.mark.parametrize("change", ["go.sum", "build.sh", "a binary"])
def test_a_changed_input_or_a_lost_binary_rebuilds(machine: Machine, change: str) -> None:
    assert machine.run().returncode == 0
    if change == "go.sum":
        with (machine.script.parents[1] / "e2e" / "envtest" / "go.sum").open("a") as f:
            f.write("example.com/m v1.0.0 h1:AAAA=\n")
    elif change == "build.sh":
        with machine.script.open("a") as f:
            f.write("# another flag\n")
    else:
        (machine.out / "bin" / "kube-proxy").unlink()
    done = machine.run()
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(_built(machine)) == 2


def test_node_assets_are_used_instead_of_building(machine: Machine) -> None:
    assets = machine.root / "assets"
    for name in NODE_BINARIES:
        _executable(assets / name, '#!/usr/bin/env bash\necho "Kubernetes v1.36.9-assets"\n')
    done = machine.run(IRSA_NODE_ASSETS=str(assets))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"node: using IRSA_NODE_ASSETS={assets}" in done.stdout
    assert "node: kubelet: Kubernetes v1.36.9-assets" in done.stdout
    assert machine.calls("go") == []
    assert not (machine.out / "bin").exists()


def test_node_assets_lacking_a_binary_is_an_error(machine: Machine) -> None:
    assets = machine.root / "assets"
    for name in NODE_BINARIES[:-1]:
        _executable(assets / name, "#!/bin/sh\n")
    done = machine.run(IRSA_NODE_ASSETS=str(assets))
    assert done.returncode == 1
    assert f"IRSA_NODE_ASSETS={assets} does not hold" in done.stderr
    assert machine.calls("go") == []


def _build_flags(call: str) -> list[str]:
    """A recorded ``go build``: the variables and flags, without the folder, -o and the packages."""
    args = shlex.split(call)[1:]
    keep, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "-o":
            skip = True
        elif not arg.startswith("k8s.io/kubernetes/cmd/"):
            keep.append(arg)
    return keep


def test_the_node_binaries_are_built_as_kube_apiserver_is(machine: Machine) -> None:
    """Same module folder, version variables, tags and CGO setting as the envtest build."""
    assert machine.run().returncode == 0
    node_call = machine.calls("go")[0]
    envtest = machine.run(script=machine.script.parents[1] / "e2e" / "envtest" / "build.sh", FAKE_GO_FAIL="1")
    assert envtest.returncode != 0
    envtest_call = machine.calls("go")[1]
    assert "k8s.io/kubernetes/cmd/kube-apiserver" in envtest_call
    assert node_call.split(" ", 1)[0] == envtest_call.split(" ", 1)[0]
    assert _build_flags(node_call) == _build_flags(envtest_call)
    assert "CGO_ENABLED=0" in _build_flags(node_call)
    assert any("-X k8s.io/component-base/version.gitVersion=v1.36." in f for f in _build_flags(node_call))


def test_every_node_binary_is_a_tool_of_the_envtest_module() -> None:
    """``go mod tidy`` keeps the node binaries' dependencies in go.sum only while they are tools."""
    text = (ENVTEST / "go.mod").read_text()
    block = re.search(r"^tool \((.*?)^\)", text, re.S | re.M)
    assert block is not None
    tools = set(block.group(1).split())
    assert {f"k8s.io/kubernetes/cmd/{b}" for b in NODE_BINARIES} <= tools
