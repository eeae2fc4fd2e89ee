#!/usr/bin/env bash
# The two container images of the local node, as OCI archives that `ctr -n k8s.io images import`
# names right, built without a registry or a Docker engine:
#
#   OUT_DIR/pause.tar  localhost/irsa-pause:1   the pod sandbox's pause (pause.c, static), /pause only
#   OUT_DIR/app.tar    localhost/irsa-app:dev   Debian bookworm minbase + python3 with a venv at
#                      /opt/irsa-webhook: uv.lock's runtime dependencies, the provisioner extra and
#                      the node-image group (awscli) in one layer, the package's own wheel in a top
#                      layer of its own; the Dockerfile's ENTRYPOINT, USER and /webhook shim, so the
#                      chart can run it in place of the Dockerfile's image.
#   OUT_DIR/images.stamp  the key each part was built from, and each archive's manifest digest.
#
# Usage: bash tests/node/images.sh OUT_DIR         build what is stale, print `name sha256:digest` lines
#        bash tests/node/images.sh --plan OUT_DIR  print `part key fresh|stale` lines, build nothing
#
# Three parts, each skipped while its key is unchanged: pause (pause.c, the compiler, its recipe),
# base (suite, mirror, packages, the requirements exported from uv.lock, its recipe) and app (base's
# key, webhook/, pyproject.toml, README.md, the Dockerfile, its recipe). A recipe is the text of the
# function that builds the part, so editing one function rebuilds that part only. A code edit
# rebuilds the app's top layer alone (seconds): the base rootfs and its layer stay cached in
# OUT_DIR/base. Root only (debootstrap, chroot); without root it says so and exits 0.
set -euo pipefail

PAUSE_NAME=localhost/irsa-pause:1
APP_NAME=localhost/irsa-app:dev
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
# The minimum: python3-venv brings the pip wheel that installs the venv (the venv itself gets no pip).
PACKAGES=python3,python3-venv,ca-certificates
VENV=/opt/irsa-webhook
# Debian's python3 of the suite above: the wheels are chosen for it, not for the host's Python.
PY_VERSION=3.11
# bookworm's glibc is 2.36: every manylinux wheel up to that runs on it.
GLIBC_MINOR=36
# The Dockerfile's final stage's environment, with this image's venv on PATH, and one difference:
# HOME is /tmp, not /nonexistent. The AWS CLI caches the credentials of its web-identity provider in
# ~/.aws/cli/cache and fails when it cannot create that folder, so `aws sts get-caller-identity` in a
# pod (uid 65532, writable root) needs a HOME it can write; on the webhook's read-only root /tmp is
# as unwritable as /nonexistent.
IMAGE_ENV=(
    "PATH=$VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    "PYTHONDONTWRITEBYTECODE=1"
    "PYTHONUNBUFFERED=1"
    "HOME=/tmp"
    "LANG=C.UTF-8"
)

plan=false
if [[ ${1:-} == --plan ]]; then
    plan=true
    shift
fi
if [[ $# -ne 1 ]]; then
    echo "usage: $0 [--plan] OUT_DIR" >&2
    exit 2
fi
if ! $plan && [[ $(id -u) -ne 0 ]]; then
    echo "images: not root, skipping (the node tests need root)"
    exit 0
fi

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=$(realpath --canonicalize-missing "$1")
STAMP=$OUT/images.stamp
UV=${UV:-$REPO/.cache/uv/bin/uv}
# As the Makefile: the machine's python3, never an interpreter uv would download.
export UV_PYTHON=${UV_PYTHON:-python3} UV_PYTHON_DOWNLOADS=never
unset VIRTUAL_ENV
# Everything written into the images must be readable by uid 65532.
umask 022

log() { echo "images: $*" >&2; }

# --- tools ------------------------------------------------------------------------------------------
ensure_tools() {
    local missing=()
    command -v umoci >/dev/null || missing+=(umoci)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v gcc >/dev/null || missing+=(gcc)
    # gcc -static links libc.a, which is libc6-dev's, not gcc's.
    [[ $(gcc -print-file-name=libc.a 2>/dev/null || true) == /* ]] || missing+=(libc6-dev)
    command -v tar >/dev/null || missing+=(tar)
    command -v chroot >/dev/null || missing+=(coreutils)
    if ((${#missing[@]})); then
        log "installing ${missing[*]} from Debian"
        # Another session may hold dpkg's lock: wait for it rather than fail.
        DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=300 update >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=300 install -y \
            --no-install-recommends "${missing[@]}" >/dev/null
    fi
    if [[ ! -x $UV ]]; then
        make -C "$REPO" --no-print-directory uv >/dev/null
    fi
}

# --- keys and the stamp -----------------------------------------------------------------------------
digest16() { sha256sum | cut -c1-16; }

# The files under the given paths of the repository, names and contents (no bytecode).
tree_sum() {
    (cd "$REPO" && find "$@" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 |
        LC_ALL=C sort -z | xargs -0 sha256sum)
}

requirements() {
    "$UV" export --project "$REPO" --frozen --no-dev --no-emit-project --extra provisioner \
        --group node-image --no-header --quiet
}

pause_key() {
    {
        sha256sum <"$REPO/tests/node/pause.c"
        gcc --version | head -n1
        declare -f build_pause layer_tar export_archive
    } | digest16
}

base_key() {
    {
        echo "$SUITE $MIRROR $PACKAGES $VENV $PY_VERSION $GLIBC_MINOR"
        requirements
        declare -f build_base layer_tar in_root
    } | digest16
}

app_key() {
    {
        echo "$1"
        tree_sum webhook pyproject.toml README.md Dockerfile
        printf '%s\n' "${IMAGE_ENV[@]}"
        declare -f build_app layer_tar export_archive in_root dockerfile_final
    } | digest16
}

stamp_get() {
    [[ -f $STAMP ]] || return 0
    sed -n "s/^$1=//p" "$STAMP"
}

# Replace (or add) KEY=VALUE lines in the stamp, written whole and renamed into place.
stamp_set() {
    local new=$STAMP.new key
    {
        echo "# tests/node/images.sh: the keys this folder's images were built from; a key that changes rebuilds its part."
        for key in pause pause.tar base app app.tar; do
            local value
            value=$(stamp_get "$key")
            local i
            for ((i = 1; i < $#; i += 2)); do
                if [[ ${!i} == "$key" ]]; then
                    local j=$((i + 1))
                    value=${!j}
                fi
            done
            [[ -z $value ]] || echo "$key=$value"
        done
    } >"$new"
    mv -f "$new" "$STAMP"
}

# --- building blocks --------------------------------------------------------------------------------
# A layer as an uncompressed GNU tar of DIR's contents (umoci compresses it): numeric root owners, file
# capabilities kept, no device nodes or mount points' contents (the runtime provides /dev, /proc, /sys).
layer_tar() {
    local dir=$1 out=$2
    tar --create --file "$out" --directory "$dir" --numeric-owner --xattrs \
        --xattrs-include='security.capability' --xattrs-include='user.*' \
        --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' --exclude='./run/*' --exclude='./tmp/*' \
        .
}

# Write the image TAG of LAYOUT as an OCI archive OUT named NAME, and print its manifest digest. The
# layout's own index holds every tag (and umoci's ref names are short); the archive holds one image,
# named in full in its index. containerd 1.6's importer reads io.containerd.image.name first, then
# org.opencontainers.image.ref.name: a full name there is taken as is, a short one becomes
# import-<date>:<ref> (without --base-name), and a manifest with neither is not imported at all.
export_archive() {
    python3 - "$@" <<'PY'
import io, json, sys, tarfile
from pathlib import Path

layout, tag, name, out = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
index = json.loads((layout / "index.json").read_text())
(manifest,) = [m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]


def blob(digest):
    return layout / "blobs" / "sha256" / digest.removeprefix("sha256:")


body = json.loads(blob(manifest["digest"]).read_text())
digests = [manifest["digest"], body["config"]["digest"], *(layer["digest"] for layer in body["layers"])]
manifest["annotations"] = {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name}
archive_index = json.dumps({"schemaVersion": 2, "manifests": [manifest]}).encode()


def entry(path, size=0, directory=False):
    info = tarfile.TarInfo(path)
    info.size, info.mode = size, 0o755 if directory else 0o644
    if directory:
        info.type = tarfile.DIRTYPE
    return info


with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as archive:
    layout_file = (layout / "oci-layout").read_bytes()
    archive.addfile(entry("oci-layout", len(layout_file)), io.BytesIO(layout_file))
    archive.addfile(entry("index.json", len(archive_index)), io.BytesIO(archive_index))
    archive.addfile(entry("blobs", directory=True))
    archive.addfile(entry("blobs/sha256", directory=True))
    for digest in digests:
        with blob(digest).open("rb") as data:
            archive.addfile(entry(f"blobs/sha256/{digest.removeprefix('sha256:')}", blob(digest).stat().st_size), data)
print(manifest["digest"])
PY
}

# Run a command inside ROOT with a clean environment (the image's python, not the host's).
in_root() {
    local root=$1
    shift
    chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root "$@"
}

# The Dockerfile's final stage, as `key<TAB>value` lines: entrypoint (one line per element), user, and
# shim: the RUN that writes /webhook.
dockerfile_final() {
    python3 - "$REPO/Dockerfile" <<'PY'
import json, re, sys

text = open(sys.argv[1]).read()
lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
logical = re.sub(r"\\\n", " ", "\n".join(lines)).splitlines()
final = []
for line in logical:
    keyword, _, rest = line.strip().partition(" ")
    if keyword.upper() == "FROM":
        final = []
    elif keyword:
        final.append((keyword.upper(), rest.strip()))
for keyword, rest in final:
    if keyword == "ENTRYPOINT":
        for word in json.loads(rest):
            print(f"entrypoint\t{word}")
    elif keyword == "USER":
        print(f"user\t{rest}")
    elif keyword == "RUN" and re.search(r"> /webhook\b", rest):
        print(f"shim\t{rest}")
PY
}

# --- the three parts --------------------------------------------------------------------------------
build_pause() {
    local work=$1
    mkdir -p "$work/layer"
    # Static and stripped: the image holds nothing else, not even a libc (~330 KB).
    gcc -static -Os -s -Wall -Wextra -Werror -o "$work/layer/pause" "$REPO/tests/node/pause.c"
    chmod 0755 "$work/layer/pause"
    layer_tar "$work/layer" "$work/layer.tar"
    umoci init --layout "$work/oci" >&2
    umoci new --image "$work/oci:pause" >&2
    umoci raw add-layer --image "$work/oci:pause" --history.created_by "tests/node/images.sh: pause.c" "$work/layer.tar" >&2
    umoci config --image "$work/oci:pause" --config.entrypoint /pause --config.workingdir / --no-history >&2
    export_archive "$work/oci" pause "$PAUSE_NAME" "$work/pause.tar"
}

build_base() {
    local work=$1 root=$1/base/rootfs
    mkdir -p "$work/base" "$OUT/debs" "$OUT/wheels"
    log "debootstrap $SUITE minbase + $PACKAGES (minutes on a cold cache)"
    if ! debootstrap --variant=minbase --include="$PACKAGES" --cache-dir="$OUT/debs" \
        "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1; then
        tail -n 30 "$work/debootstrap.log" >&2
        return 1
    fi
    # The host's identity and apt's indexes have no place in an image; the runtime writes
    # /etc/hostname, /etc/hosts and /etc/resolv.conf itself.
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
        "$root"/var/log/* "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
    # Message translations (30 MB); glibc's locale.alias stays.
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
    : >"$root/etc/hostname"
    : >"$root/etc/resolv.conf"
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"

    # Wheels on the host (pinned and hash-checked, for the image's CPython and glibc, never built),
    # installed offline by the image's own python into a venv without pip.
    requirements >"$work/requirements.txt"
    local platforms=() minor
    for ((minor = GLIBC_MINOR; minor >= 17; minor--)); do
        platforms+=(--platform "manylinux_2_${minor}_x86_64")
    done
    "$(dirname "$UV")/python" -m pip download --quiet --disable-pip-version-check --require-hashes \
        --no-deps --only-binary=:all: --implementation cp --python-version "$PY_VERSION" \
        --abi "cp${PY_VERSION/./}" --abi abi3 --abi none "${platforms[@]}" --platform manylinux2014_x86_64 \
        --dest "$OUT/wheels" --requirement "$work/requirements.txt"
    in_root "$root" python3 -m venv --without-pip "$VENV"
    mkdir -p "$root/tmp/wheels"
    cp "$work/requirements.txt" "$root/tmp/wheels/"
    cp --link "$OUT"/wheels/*.whl "$root/tmp/wheels/" 2>/dev/null || cp "$OUT"/wheels/*.whl "$root/tmp/wheels/"
    local pip
    pip=$(cd "$root" && ls usr/share/python-wheels/pip-*.whl)
    # pip runs from its wheel (python pip.whl/pip): the venv never holds an installer. Byte-compiled
    # (pip's default): the image runs on a read-only root with PYTHONDONTWRITEBYTECODE.
    in_root "$root" "$VENV/bin/python" "/$pip/pip" install --quiet --disable-pip-version-check \
        --no-cache-dir --root-user-action=ignore --no-index --find-links /tmp/wheels --require-hashes \
        --no-deps --requirement /tmp/wheels/requirements.txt
    rm -rf "$root/tmp/wheels"
    layer_tar "$root" "$work/base/layer.tar"
    umoci init --layout "$work/base/oci" >&2
    umoci new --image "$work/base/oci:base" >&2
    umoci raw add-layer --image "$work/base/oci:base" --history.created_by \
        "tests/node/images.sh: debootstrap $SUITE minbase + $PACKAGES, $VENV from uv.lock" "$work/base/layer.tar" >&2
    rm -f "$work/base/layer.tar"
}

build_app() {
    local work=$1 root=$OUT/base/rootfs
    local stage=$root/tmp/app
    rm -rf "$stage"
    mkdir -p "$stage/dist"
    "$UV" build --project "$REPO" --wheel --quiet --out-dir "$stage/dist"
    local wheel
    wheel=$(cd "$stage/dist" && ls ./*.whl)
    # Installed into a staging root by the image's python: the files land where they will run
    # (scripts' #! is the venv's python), the cached base stays as its layer has it.
    in_root "$root" "$VENV/bin/python" "/$(cd "$root" && ls usr/share/python-wheels/pip-*.whl)/pip" install \
        --quiet --disable-pip-version-check --no-cache-dir --root-user-action=ignore --no-index --no-deps \
        --no-compile --no-warn-script-location --root /tmp/app/layer "/tmp/app/dist/${wheel#./}"
    # Compiled with the paths they run from (not the staging root's), for tracebacks.
    in_root "$root" "$VENV/bin/python" -m compileall -q -s /tmp/app/layer -p / /tmp/app/layer
    local entrypoint=() user="" shim=""
    local key value
    while IFS=$'\t' read -r key value; do
        case $key in
            entrypoint) entrypoint+=(--config.entrypoint "$value") ;;
            user) user=$value ;;
            shim) shim=$value ;;
        esac
    done < <(dockerfile_final)
    if [[ ${#entrypoint[@]} -eq 0 || -z $user || -z $shim ]]; then
        log "the Dockerfile's final stage has no ENTRYPOINT, USER or RUN writing /webhook"
        return 1
    fi
    # The Dockerfile's own RUN writes /webhook, here into the rootfs, from where it moves to the layer.
    in_root "$root" /bin/sh -c "$shim"
    mv "$root/webhook" "$stage/layer/webhook"
    layer_tar "$stage/layer" "$work/layer.tar"
    rm -rf "$stage"

    # A copy of the base layout to add to: its blobs are immutable, linked; its index is copied.
    mkdir -p "$work/oci"
    cp "$OUT/base/oci/index.json" "$OUT/base/oci/oci-layout" "$work/oci/"
    cp -R --link "$OUT/base/oci/blobs" "$work/oci/"
    umoci raw add-layer --image "$work/oci:base" --tag app \
        --history.created_by "tests/node/images.sh: ${wheel#./} into $VENV" "$work/layer.tar" >&2
    local env=() item
    for item in "${IMAGE_ENV[@]}"; do
        env+=(--config.env "$item")
    done
    umoci config --image "$work/oci:app" "${env[@]}" "${entrypoint[@]}" --config.user "$user" \
        --config.workingdir / --no-history >&2
    export_archive "$work/oci" app "$APP_NAME" "$work/app.tar"
}

# --- main -------------------------------------------------------------------------------------------
part_state() { # NAME KEY OUTPUT...: fresh when the stamp holds KEY and every output exists
    local name=$1 key=$2 output
    shift 2
    [[ $(stamp_get "$name") == "$key" ]] || return 1
    for output in "$@"; do
        [[ -e $output ]] || return 1
    done
}

if $plan; then
    [[ -x $UV ]] || make -C "$REPO" --no-print-directory uv >/dev/null
    key=$(pause_key)
    if part_state pause "$key" "$OUT/pause.tar"; then echo "pause $key fresh"; else echo "pause $key stale"; fi
    base=$(base_key)
    base_state=stale
    if part_state base "$base" "$OUT/base/rootfs" "$OUT/base/oci"; then base_state=fresh; fi
    echo "base $base $base_state"
    key=$(app_key "$base")
    # A rebuilt base (even from the same key: its rootfs was gone) is a new bottom layer for the app.
    if [[ $base_state == fresh ]] && part_state app "$key" "$OUT/app.tar"; then
        echo "app $key fresh"
    else
        echo "app $key stale"
    fi
    exit 0
fi

mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock 9
ensure_tools
WORK=$(mktemp -d "$OUT/.build.XXXXXX")
trap 'rm -rf "$WORK" "$OUT/base/rootfs/tmp/app"' EXIT

key=$(pause_key)
if ! part_state pause "$key" "$OUT/pause.tar"; then
    started=$SECONDS
    mkdir "$WORK/pause"
    digest=$(build_pause "$WORK/pause")
    mv -f "$WORK/pause/pause.tar" "$OUT/pause.tar"
    stamp_set pause "$key" pause.tar "$PAUSE_NAME $digest"
    log "pause built in $((SECONDS - started)) s"
fi

base=$(base_key)
base_built=false
if ! part_state base "$base" "$OUT/base/rootfs" "$OUT/base/oci"; then
    base_built=true
    started=$SECONDS
    mkdir "$WORK/base-build"
    build_base "$WORK/base-build"
    rm -rf "$OUT/base"
    mv "$WORK/base-build/base" "$OUT/base"
    stamp_set base "$base"
    log "base built in $((SECONDS - started)) s"
fi

key=$(app_key "$base")
# A rebuilt base (even from the same key: its rootfs was gone) is a new bottom layer for the app.
if $base_built || ! part_state app "$key" "$OUT/app.tar"; then
    started=$SECONDS
    mkdir "$WORK/app"
    digest=$(build_app "$WORK/app")
    mv -f "$WORK/app/app.tar" "$OUT/app.tar"
    stamp_set app "$key" app.tar "$APP_NAME $digest"
    log "app built in $((SECONDS - started)) s"
fi

stamp_get pause.tar
stamp_get app.tar
