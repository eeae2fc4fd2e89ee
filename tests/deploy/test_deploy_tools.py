"""``tools.sh helm`` on a machine with nothing cached: it builds helm once, stamps it, and then does
nothing; ``HELM`` replaces the build; a failed build leaves nothing a later run would trust.

The real build takes minutes, so ``go`` is a stand-in on PATH (it answers ``go env``, ``go mod
download -json`` with a go.mod naming client-go, and writes an executable where ``GOBIN`` points on
``go install``, logging its arguments). The script itself runs unchanged, with ``set -euo pipefail``,
from a copy of the repository without .cache, as CI sees it after moving its caches away.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import REPO

from . import helm as chart

FAKE_GO = """#!/usr/bin/env bash
set -eu
echo "go $*" >>"$FAKE_GO_LOG"
case "$1" in
	env) echo "go1.26.0" ;;
	mod)
		printf 'module helm.sh/helm/v3\\n\\nrequire (\\n\\tk8s.io/client-go v0.37.2\\n)\\n' >"$FAKE_GO_DIR/helm.mod"
		mod="$FAKE_GO_DIR/helm.mod"
		printf '{\\n\\t"Path": "helm.sh/helm/v3",\\n\\t"GoMod": "%s",\\n\\t"Version": "v3.22.0"\\n}\\n' "$mod"
		;;
	install)
		echo "CGO_ENABLED=${CGO_ENABLED:-} GOFLAGS=${GOFLAGS:-}" >>"$FAKE_GO_LOG"
		if [[ -n "${FAKE_GO_FAIL:-}" ]]; then echo "go: build failed" >&2; exit 1; fi
		printf '#!/usr/bin/env bash\\necho v3.22.0\\n' >"$GOBIN/helm"
		chmod +x "$GOBIN/helm"
		;;
esac
"""


def _executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


class Tools:
    """A copy of the repository's tools.sh with a stand-in go on PATH."""

    def __init__(self, tmp_path: Path) -> None:
        self.repo = tmp_path / "repo"
        (self.repo / "tests" / "deploy").mkdir(parents=True)
        shutil.copy(chart.TOOLS, self.repo / "tests" / "deploy" / "tools.sh")
        _executable(tmp_path / "fakebin" / "go", FAKE_GO)
        self.log = tmp_path / "go.log"
        self.env = {k: v for k, v in os.environ.items() if k != "HELM"}
        self.env |= {
            "PATH": f"{tmp_path / 'fakebin'}{os.pathsep}{self.env['PATH']}",
            "FAKE_GO_LOG": str(self.log),
            "FAKE_GO_DIR": str(tmp_path),
            "GOFLAGS": "-mod=vendor",  # someone else's setting: must not reach the build
        }
        self.dir = self.repo / ".cache" / "helm" / chart.pinned_version()

    def run(self, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(self.repo / "tests" / "deploy" / "tools.sh"), "helm"],
            env=self.env | env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def go_calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


def test_cold_build_reaches_the_stamp_and_then_does_nothing(tmp_path: Path) -> None:
    tools = Tools(tmp_path)
    first = tools.run()
    assert first.returncode == 0, first.stderr
    pin = f"helm.sh/helm/v3/cmd/helm@{chart.pinned_version()}"
    assert (tools.dir / ".stamp").read_text().strip() == pin
    assert os.access(tools.dir / "bin" / "helm", os.X_OK)
    (install,) = [line for line in tools.go_calls() if line.startswith("go install")]
    assert install.endswith(pin)
    assert "-trimpath" in install
    # What helm reports as its own version and as .Capabilities.KubeVersion (client-go 0.37 -> 1.37).
    assert f"-X helm.sh/helm/v3/internal/version.version={chart.pinned_version()}" in install
    assert "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37" in install
    assert "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=37" in install
    assert "CGO_ENABLED=0 GOFLAGS=" in tools.go_calls()
    assert not (tools.dir.parent / f"{tools.dir.name}.tmp").exists()

    calls = tools.go_calls()
    again = tools.run()
    assert again.returncode == 0, again.stderr
    assert (again.stdout, again.stderr) == ("", "")
    assert tools.go_calls() == calls  # the stamp answered: no go at all


def test_failed_build_leaves_nothing_to_trust(tmp_path: Path) -> None:
    tools = Tools(tmp_path)
    failed = tools.run(FAKE_GO_FAIL="1")
    assert failed.returncode != 0
    assert not tools.dir.exists()
    retried = tools.run()
    assert retried.returncode == 0, retried.stderr
    assert (tools.dir / ".stamp").is_file()


def test_helm_env_replaces_the_build(tmp_path: Path) -> None:
    tools = Tools(tmp_path)
    mine = tmp_path / "mine" / "helm"
    _executable(mine, "#!/usr/bin/env bash\necho v3.99.0\n")
    used = tools.run(HELM=str(mine))
    assert used.returncode == 0, used.stderr
    assert tools.go_calls() == []
    assert not tools.dir.exists()
    missing = tools.run(HELM=str(tmp_path / "nothing"))
    assert missing.returncode != 0
    assert "is not an executable file" in missing.stderr


def test_python_side_finds_the_same_helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HELM", raising=False)
    built = REPO / ".cache" / "helm" / chart.pinned_version() / "bin" / "helm"
    if built.is_file():
        assert chart.find_helm() == built
    else:
        with pytest.raises(chart.MissingHelm, match="make helm"):
            chart.find_helm()
    mine = tmp_path / "helm"
    _executable(mine, "#!/usr/bin/env bash\n")
    monkeypatch.setenv("HELM", str(mine))
    assert chart.find_helm() == mine
    monkeypatch.setenv("HELM", str(tmp_path))  # a folder is not a helm
    with pytest.raises(chart.MissingHelm, match="HELM="):
        chart.find_helm()
