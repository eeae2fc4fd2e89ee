#!/usr/bin/env bash
# Provide what the node tests need to run pods on a real single-node cluster without Docker: the
# Debian packages of the node (containerd, runc, the CNI plugins, and the tools the images are built
# with), and kubelet, kube-controller-manager, kube-scheduler and kube-proxy in OUT_DIR/bin.
#
#   bash tests/node/build.sh OUT_DIR
#
# - Not root: prints one line and exits 0; the node tests skip the same way, since a kubelet, its
#   mounts and containerd need root.
# - Debian packages: only what dpkg does not list as installed is installed (`apt-get update` only
#   then), with a policy-rc.d that refuses every service start in place for the duration: the node
#   tests start containerd themselves, with the configuration they need, and stop it by PID; a
#   system service would run Debian's defaults beside it. A policy-rc.d found there is put back.
# - IRSA_NODE_ASSETS naming a folder other than OUT_DIR/bin: it must hold the four binaries, and
#   nothing is built (as KUBEBUILDER_ASSETS does for kube-apiserver, etcd and kubectl).
# - OUT_DIR/bin/.stamp matches the pinned release, go.sum and this script: nothing is built.
# - Otherwise the four are built with Go from the k8s.io/kubernetes release pinned in the envtest
#   go.mod (tests/e2e/envtest), with the flags of its build.sh: ~3 minutes on 2 cores after
#   kube-apiserver has been built there (the packages they share come from Go's build cache), ~7 cold.
#
# The release is pinned at 1.36 because of the node's runtime: kubelet 1.36 warns at start that
# containerd 1.6 (Debian bookworm's) lacks the RuntimeConfig CRI call, and kubelet 1.37 drops support
# for such runtimes. Bump Kubernetes only together with a containerd that has it (1.7 or later).
#
# For this script's own tests, three variables stand in for the machine (nothing else reads them):
# IRSA_NODE_BUILD_EUID for the effective uid, IRSA_NODE_POLICY_RC_D for /usr/sbin/policy-rc.d and
# IRSA_NODE_CNI_DIR for /usr/lib/cni, where Debian's containernetworking-plugins puts the plugins.
set -euo pipefail

PACKAGES=(containerd runc umoci debootstrap iptables conntrack gcc containernetworking-plugins)
BINARIES=(kubelet kube-controller-manager kube-scheduler kube-proxy)
# What a bridge network with host-local addresses needs, and loopback for each pod's lo.
CNI_PLUGINS=(bridge host-local loopback)

out="${1:?usage: build.sh OUT_DIR}"

if [[ "${IRSA_NODE_BUILD_EUID:-$EUID}" != 0 ]]; then
	echo "node: not root, skipping (the node tests need root)"
	exit 0
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
envtest="$(cd "$here/../e2e/envtest" && pwd)"
policy_rc_d="${IRSA_NODE_POLICY_RC_D:-/usr/sbin/policy-rc.d}"
cni_dir="${IRSA_NODE_CNI_DIR:-/usr/lib/cni}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
bin="$out/bin"

# Milliseconds since the epoch: a cached run takes a fraction of a second, which $SECONDS cannot show.
now_ms() {
	local us="${EPOCHREALTIME//[.,]/}"
	echo $((us / 1000))
}
start=$(now_ms)

# --- Debian packages ----------------------------------------------------------------------------------
# One dpkg-query for all: it lists the packages dpkg knows (and fails over the others, hence || true).
declare -A installed=()
# shellcheck disable=SC2016 # ${Package} and ${Status} are dpkg-query's fields, not shell expansions
while read -r package status; do
	if [[ "$status" == "install ok installed" ]]; then installed[$package]=1; fi
done < <(dpkg-query -W -f='${Package} ${Status}\n' "${PACKAGES[@]}" 2>/dev/null || true)
missing=()
for package in "${PACKAGES[@]}"; do
	if [[ -z "${installed[$package]:-}" ]]; then missing+=("$package"); fi
done

backup=""
restore_policy_rc_d() {
	rm -f "$policy_rc_d"
	if [[ -n "$backup" ]]; then
		mv "$backup" "$policy_rc_d"
	fi
}

if ((${#missing[@]})); then
	echo "node: installing ${missing[*]} from Debian (no service started)"
	if [[ -e "$policy_rc_d" ]]; then
		backup="$policy_rc_d.irsa-node-build.$$"
		mv "$policy_rc_d" "$backup"
	fi
	# Put back on any exit, a failed install included: a policy-rc.d left behind would keep every
	# later package on the machine from starting its service.
	trap restore_policy_rc_d EXIT
	# 101 is "action forbidden" in invoke-rc.d's policy interface (deb-systemd-invoke honours it too).
	printf '#!/bin/sh\n# tests/node/build.sh: no service starts while it installs packages\nexit 101\n' >"$policy_rc_d"
	chmod 0755 "$policy_rc_d"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	restore_policy_rc_d
	trap - EXIT
	echo "node: packages installed after $(($(now_ms) - start))ms"
else
	echo "node: Debian packages present (${PACKAGES[*]}), checked in $(($(now_ms) - start))ms"
fi
for plugin in "${CNI_PLUGINS[@]}"; do
	if [[ ! -x "$cni_dir/$plugin" ]]; then
		echo "node: error: no CNI plugin $cni_dir/$plugin (Debian's containernetworking-plugins puts it there)" >&2
		exit 1
	fi
done

# --- kubelet, kube-controller-manager, kube-scheduler, kube-proxy --------------------------------------
have_all() {
	local dir="$1" b
	for b in "${BINARIES[@]}"; do [[ -x "$dir/$b" && ! -d "$dir/$b" ]] || return 1; done
}

kubernetes_version="$(awk '$1 == "k8s.io/kubernetes" { print $2 }' "$envtest/go.mod")"
if [[ ! "$kubernetes_version" =~ ^v1\.[0-9]+\.[0-9]+$ ]]; then
	echo "node: error: cannot read the k8s.io/kubernetes version from $envtest/go.mod" >&2
	exit 1
fi

if [[ -n "${IRSA_NODE_ASSETS:-}" && "$IRSA_NODE_ASSETS" != "$bin" ]]; then
	if ! have_all "$IRSA_NODE_ASSETS"; then
		echo "node: error: IRSA_NODE_ASSETS=$IRSA_NODE_ASSETS does not hold ${BINARIES[*]} (unset it to build them into $bin)" >&2
		exit 1
	fi
	bin="$IRSA_NODE_ASSETS"
	echo "node: using IRSA_NODE_ASSETS=$bin"
else
	# Everything that decides the binaries: the release, the module graph, and this script's flags.
	stamp="kubernetes=$kubernetes_version gosum=$(sha256sum "$envtest/go.sum" | cut -c1-16)"
	stamp+=" script=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"
	if have_all "$bin" && [[ -f "$bin/.stamp" && "$(cat "$bin/.stamp")" == "$stamp" ]]; then
		echo "node: cached in $bin ($stamp)"
	else
		if ! command -v go >/dev/null 2>&1; then
			echo "node: error: no ${BINARIES[*]}: set IRSA_NODE_ASSETS to a folder holding them, or install Go >= 1.26 to build them" >&2
			exit 1
		fi
		build_start=$(now_ms)
		rm -f "$bin/.stamp"
		mkdir -p "$bin"
		# The version variables, tags and flags of tests/e2e/envtest/build.sh (a test compares them), so
		# that `kubelet --version` and the Node's kubeletVersion say the release, and so that the
		# packages these share with kube-apiserver are compiled once, in Go's build cache, for both.
		# CGO off for the kubelet too, unlike Kubernetes' own release (its hack/lib/golang.sh leaves the
		# kubelet out of KUBE_STATIC_BINARIES): a cgo kubelet would compile every package again,
		# minutes on 2 cores, and needs nothing cgo gives it here (name lookups and os/user work pure Go).
		minor="${kubernetes_version#v1.}"
		minor="${minor%%.*}"
		ldflags="-s -w"
		for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
			ldflags+=" -X $pkg.gitVersion=$kubernetes_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
			ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
		done
		packages=()
		for b in "${BINARIES[@]}"; do packages+=("k8s.io/kubernetes/cmd/$b"); done
		echo "node: building ${BINARIES[*]} $kubernetes_version with $(go version | cut -d' ' -f3) (~3 min after make envtest, ~7 cold)"
		(
			cd "$envtest"
			CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -tags=notest,grpcnotrace -ldflags="$ldflags" \
				-o "$bin/" "${packages[@]}"
		)
		echo "$stamp" >"$bin/.stamp"
		echo "node: built in $((($(now_ms) - build_start) / 1000))s"
	fi
fi

# --- what the node will run -----------------------------------------------------------------------------
# Whole outputs cut in the shell: a pipe into head would end runc with SIGPIPE and this script with it.
containerd_version="$(containerd --version)"
runc_version="$(runc --version)"
echo "node: containerd: ${containerd_version%%$'\n'*}"
echo "node: runc: ${runc_version%%$'\n'*}"
echo "node: kubelet: $("$bin/kubelet" --version)"
echo "node: ready in $bin after $(($(now_ms) - start))ms"
