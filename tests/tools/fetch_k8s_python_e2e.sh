#!/usr/bin/env bash
# Fetch the Kubernetes Python client's own e2e suite (kubernetes/e2e_test), idempotently, outside
# the repository, at the tag matching the installed `kubernetes` package (pyproject pins it).
#
# The PyPI wheel and sdist ship without kubernetes/e2e_test, so it comes from the client's git
# repository: a shallow, blobless clone of one tag, checked out sparsely (only the suite).
# Usage: fetch_k8s_python_e2e.sh VERSION (e.g. 37.0.2). Result: $CORRAL_TOOLS/kubernetes-python-e2e/vVERSION
# (default ~/.cache/corral-tools), holding kubernetes/e2e_test/. Prints that directory.
# Exits non-zero (with the reason) when it cannot fetch it.
set -euo pipefail
VERSION="${1:?usage: fetch_k8s_python_e2e.sh VERSION}"
REPOSITORY="${K8S_PYTHON_REPOSITORY:-https://github.com/kubernetes-client/python}"
TOOLS="${CORRAL_TOOLS:-$HOME/.cache/corral-tools}"
DEST="$TOOLS/kubernetes-python-e2e/v$VERSION"
if [[ -f "$DEST/.fetched" && -d "$DEST/kubernetes/e2e_test" ]]; then
    echo "$DEST"
    exit 0
fi
command -v git >/dev/null || { echo "git is needed to fetch the Kubernetes Python client's e2e suite" >&2; exit 1; }
rm -rf "$DEST"
mkdir -p "$(dirname "$DEST")"
git clone --quiet --depth 1 --branch "v$VERSION" --filter=blob:none --no-checkout "$REPOSITORY" "$DEST" >&2
git -C "$DEST" sparse-checkout set --no-cone /kubernetes/e2e_test/ >&2
git -C "$DEST" checkout --quiet >&2
test -f "$DEST/kubernetes/e2e_test/base.py"
touch "$DEST/.fetched"
echo "$DEST"
