"""The image, rebuilt from its Dockerfile without Docker, and run as a pod runs it.

Shared by the deploy tests (test_entrypoint.py: the webhook's entrypoint; test_image_provisioner.py:
the provisioner's image) through the fixtures of conftest.py.

No Docker engine runs on these machines, so the image is rebuilt the way its Dockerfile says, in a
temporary "root": the builder stage's ARG, COPY and RUN instructions are executed with /opt/venv,
the builder's /opt/uv (and /webhook) mapped into that root, then the final stage's ENV, RUN, WORKDIR
and ENTRYPOINT are read back and used verbatim. The build arguments are the ones the Makefile's own
target passes to `docker build` (read with `make -n`): `make image` builds the webhook's image,
`make image-provisioner` the provisioner's.

How "read-only root filesystem" is enforced: a command runs in a private mount namespace
(`unshare --mount`) in which `/` is remounted read-only, so any write anywhere on the disk (cwd,
HOME, /tmp, site-packages, a .pyc) fails with EROFS exactly as in a pod with
readOnlyRootFilesystem: true, whatever the uid. A chmod 0555 directory would not do: the tests run
as root, and root ignores permission bits. `setpriv` then drops every capability and sets
no_new_privs, like the Deployment's `capabilities: drop: [ALL]` and `allowPrivilegeEscalation:
false`. The uid stays 0 (the image's 65532 cannot read this machine's Python under /root); the
read-only mount is what makes the check real, and test_the_sandbox_refuses_writes proves it does.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.paths import REPO

DOCKERFILE = REPO / "Dockerfile"
# Paths of the image that the replay maps into its temporary root.
VENV = "/opt/venv"
UV_VENV = "/opt/uv"  # the builder stage's uv, never copied into the final image
SHIM = "/webhook"
KNOWN_INSTRUCTIONS = {"FROM", "ARG", "ENV", "RUN", "COPY", "WORKDIR", "USER", "LABEL", "ENTRYPOINT", "CMD"}
# The Makefile's targets that build the two images of the one Dockerfile.
WEBHOOK_TARGET = "image"
PROVISIONER_TARGET = "image-provisioner"


# --- reading the Dockerfile ---------------------------------------------------------------------------
@dataclass
class Stage:
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [rest for kw, rest in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages of instructions (keyword, rest): continuation lines joined, comment lines dropped."""
    stages: list[Stage] = []
    logical = ""
    for line in text.splitlines():
        if line.strip().startswith("#"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        if logical.strip():
            keyword, _, rest = logical.strip().partition(" ")
            keyword = keyword.upper()
            assert keyword in KNOWN_INSTRUCTIONS, f"{keyword}: teach tests/deploy/image.py what it means"
            if keyword == "FROM":
                parts = rest.split()
                stages.append(Stage(parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else ""))
            else:
                stages[-1].instructions.append((keyword, rest.strip()))
        logical = ""
    return stages


def exec_form(rest: str) -> list[str]:
    value = json.loads(rest)
    assert isinstance(value, list), "ENTRYPOINT/CMD must be exec form (a JSON array)"
    return [str(v) for v in value]


def env_pairs(rest: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in shlex.split(rest))


def declare_arg(rest: str, build_args: dict[str, str], declared: dict[str, str]) -> None:
    """`ARG NAME[=default]`: as Docker, the build argument's value (else the default) is in the
    environment of the stage's later RUN instructions, and only there (never in the image's ENV)."""
    name, _, default = shlex.split(rest)[0].partition("=")
    declared[name] = build_args.get(name, default)


# --- the Makefile's `docker build` -------------------------------------------------------------------------
@dataclass(frozen=True)
class Build:
    """What a Makefile target passes to `docker build`: the tag and the build arguments."""

    tag: str
    args: dict[str, str]


def make_build(target: str) -> Build:
    """TARGET's `docker build` command as make would run it (`make -n`: printed, nothing run)."""
    env = {k: v for k, v in os.environ.items() if k not in {"IMAGE", "PROVISIONER_IMAGE", "MAKEFLAGS", "MAKELEVEL"}}
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", target],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (command,) = [shlex.split(line) for line in result.stdout.splitlines() if line.startswith("docker build ")]
    tag, args = "", {}
    words = iter(command[2:])
    for word in words:
        flag, _, value = word.partition("=")
        if flag in {"--tag", "-t", "--build-arg"} and not value:
            value = next(words)
        if flag in {"--tag", "-t"}:
            tag = value
        elif flag == "--build-arg":
            name, _, arg = value.partition("=")
            args[name] = arg
        else:
            assert word == ".", f"{target}: teach tests/deploy/image.py what {word} means"
    return Build(tag, args)


# --- the image, rebuilt in a temporary root --------------------------------------------------------------
@dataclass
class Image:
    root: Path
    env: dict[str, str]
    workdir: Path
    entrypoint: list[str]

    def map(self, text: str) -> str:
        """Image paths -> paths under the temporary root."""
        for path in (VENV, UV_VENV):
            text = text.replace(path, str(self.root / path.lstrip("/")))
        return re.sub(r"(?<![\w/.-])/webhook(?![\w/.-])", str(self.root / SHIM.lstrip("/")), text)


def run_instruction(command: str, cwd: Path, env: dict[str, str]) -> None:
    result = subprocess.run(
        ["sh", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, f"RUN {command}\n{result.stdout}\n{result.stderr}"


def build_image(root: Path, build_args: dict[str, str]) -> Image:
    """The image `docker build` with BUILD_ARGS would make, its venv under ROOT."""
    stages = parse_dockerfile(DOCKERFILE.read_text())
    assert len(stages) >= 2, "multi-stage: a builder and the final image"
    builder, final = stages[0], stages[-1]
    image = Image(root=root, env={}, workdir=root, entrypoint=[])
    # `python` of the base image is this interpreter; nothing else of the machine's PATH is needed
    # beyond the basic tools (sh, printf, chmod).
    tools = root / "_tools"
    tools.mkdir(parents=True)
    (tools / "python").symlink_to(sys.executable)
    base_env = {"PATH": f"{tools}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}

    context = root  # Docker's default WORKDIR is /
    env = dict(base_env)
    args: dict[str, str] = {}
    for keyword, rest in builder.instructions:
        if keyword == "ARG":
            declare_arg(rest, build_args, args)
        elif keyword == "ENV":
            env.update({k: image.map(v.replace("$PATH", env["PATH"])) for k, v in env_pairs(rest).items()})
            # The image build must not cache; this test may (the wheels are the same either way, uv
            # checks them against uv.lock's hashes), in the caches `make install` filled.
            env.pop("PIP_NO_CACHE_DIR", None)
            env.pop("UV_NO_CACHE", None)
            env.update({k: v for k, v in os.environ.items() if k in {"HOME", "XDG_CACHE_HOME", "UV_CACHE_DIR"}})
        elif keyword == "WORKDIR":
            context = root / rest.lstrip("/")
            context.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            *sources, dest = shlex.split(rest)
            assert not any(s.startswith("--") for s in sources), f"COPY {rest}: only context copies here"
            target = context / dest
            if dest.endswith("/"):  # as Docker: a destination ending in / is a folder, made if missing
                target.mkdir(parents=True, exist_ok=True)
            for source in sources:
                path = REPO / source
                assert path.exists(), f"COPY {source}: not in the repository (the build would fail)"
                if path.is_dir():
                    shutil.copytree(path, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy2(path, target)
        elif keyword == "RUN":
            run_instruction(image.map(rest), context, env | args)

    env = dict(base_env)
    used, args = set(args), {}
    for keyword, rest in final.instructions:
        if keyword == "ARG":
            declare_arg(rest, build_args, args)
        elif keyword == "ENV":
            env.update({k: image.map(v.replace("$PATH", env["PATH"])) for k, v in env_pairs(rest).items()})
        elif keyword == "COPY":
            flags = [a for a in shlex.split(rest) if a.startswith("--")]
            paths = [a for a in shlex.split(rest) if not a.startswith("--")]
            # The only copy is the builder's venv to the same path, which the mapping already shares.
            assert flags == [f"--from={builder.name}"], rest
            assert paths == [VENV, VENV], rest
        elif keyword == "RUN":
            run_instruction(image.map(rest), root, env | args)
        elif keyword == "WORKDIR":
            image.workdir = root / rest.lstrip("/")
        elif keyword == "USER":
            assert rest == "65532:65532", "the Deployment's runAsUser/runAsGroup"
        elif keyword == "ENTRYPOINT":
            image.entrypoint = exec_form(rest)
        elif keyword == "CMD":
            image.entrypoint += exec_form(rest)
    # Docker warns of a build argument no stage declares, and builds without it: a typo in the Makefile.
    assert set(build_args) <= used | set(args), f"build arguments the Dockerfile never declares: {build_args}"
    image.env = env
    return image


def site_packages(image: Image) -> Path:
    return next((image.root / "opt/venv/lib").glob("python3*/site-packages"))


def distributions(image: Image) -> dict[str, str]:
    """{normalized name: version} of every distribution installed in the image's venv."""
    installed = {}
    for info in site_packages(image).glob("*.dist-info"):
        name, version = info.name.removesuffix(".dist-info").rsplit("-", 1)
        installed[re.sub(r"[-_.]+", "-", name).lower()] = version
    return installed


# --- running it read-only ----------------------------------------------------------------------------------
SANDBOX = (
    # Inside a private mount namespace: `/` read-only, then no capabilities and no_new_privs.
    'mount -o remount,bind,ro / || exit 97; cd "$0" || exit 98; '
    'exec setpriv --no-new-privs --bounding-set=-all --inh-caps=-all -- "$@"'
)


def sandboxed(argv: Sequence[str], cwd: Path) -> list[str]:
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", SANDBOX, str(cwd), *argv]
