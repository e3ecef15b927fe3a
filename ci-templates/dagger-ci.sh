#!/bin/sh
# Template for any other runner (Jenkins, Buildkite, Woodpecker, Drone, a cron
# job...): POSIX sh, needs curl and a container runtime for the Dagger engine.
#
#   dagger-ci.sh check             on every change: end-to-end test, release dry run
#   dagger-ci.sh release vX.Y.Z    on a tag: build, publish, sign; dist/ written here
#
# Configuration (environment; secrets from the runner's secret store, never argv):
#   REGISTRY            registry host, e.g. ghcr.io               (release)
#   REGISTRY_NAMESPACE  repository prefix, e.g. my-org            (release)
#   REGISTRY_USERNAME   registry user                             (release)
#   REGISTRY_PASSWORD   registry password or token     (secret)   (release)
#   COSIGN_PRIVATE_KEY  cosign private key (PEM)       (secret)   (release)
#   COSIGN_PASSWORD     its password                   (secret)   (release)
# They reach Dagger as env:// references: the values never appear in argv or logs.
set -eu

# = engineVersion in dagger.json (Renovate keeps them together).
DAGGER_VERSION="0.21.11"
BIN_DIR="${DAGGER_BIN_DIR:-$HOME/.local/bin}"

die() { printf 'dagger-ci: %s\n' "$*" >&2; exit 2; }

need() {
  for name in "$@"; do
    eval "value=\${$name:-}"
    # shellcheck disable=SC2154 # value is set by the eval above
    [ -n "$value" ] || die "set $name (from the runner's secret store or settings)"
  done
}

ensure_dagger() {
  if command -v dagger >/dev/null 2>&1 &&
    dagger version 2>/dev/null | grep -q "v$DAGGER_VERSION "; then
    return 0
  fi
  mkdir -p "$BIN_DIR"
  curl -fsSL https://dl.dagger.io/dagger/install.sh |
    BIN_DIR="$BIN_DIR" DAGGER_VERSION="$DAGGER_VERSION" sh
  PATH="$BIN_DIR:$PATH"
  export PATH
}

[ $# -ge 1 ] || die "usage: $0 check | release vX.Y.Z"
case "$1" in
  check)
    ensure_dagger
    dagger check
    ;;
  release)
    [ $# -eq 2 ] || die "usage: $0 release vX.Y.Z"
    version=$2
    case "$version" in
      v[0-9]*.[0-9]*.[0-9]*) ;;
      *) die "release needs a tag vX.Y.Z, not '$version'" ;;
    esac
    need REGISTRY REGISTRY_NAMESPACE REGISTRY_USERNAME REGISTRY_PASSWORD \
      COSIGN_PRIVATE_KEY COSIGN_PASSWORD
    ensure_dagger
    # --version is the module's constructor flag: it comes before the function.
    dagger call --version "$version" release \
      --registry "$REGISTRY" \
      --namespace "$REGISTRY_NAMESPACE" \
      --username "$REGISTRY_USERNAME" \
      --password env://REGISTRY_PASSWORD \
      --signing-key env://COSIGN_PRIVATE_KEY \
      --signing-password env://COSIGN_PASSWORD \
      export --path dist
    ;;
  *) die "unknown command '$1': use check or release" ;;
esac
