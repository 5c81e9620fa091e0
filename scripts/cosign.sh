#!/usr/bin/env bash
# cosign.sh — build (once, cached) the real cosign CLI the signing interop tests run against.
#
#   scripts/cosign.sh          build if needed, then print `export STRATA_TEST_COSIGN=…`
#   scripts/cosign.sh path     print the cached binary's path (building it if needed)
#
# cosign v2.6.5 is built from the Go module proxy in its own module (scripts/cosigntools: cosign
# pins other versions of many libraries than Strata does). Cold build: ~4 min; the binary is
# cached under .testenv/bin/<hash of that go.mod + go.sum>/cosign, and .testenv/bin/cosign links
# to it, where internal/testing/testenv.Cosign finds it. scripts/testenv.sh may call this script
# from `up`; CI should cache .testenv/bin.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
W=${STRATA_TESTENV_DIR:-$ROOT/.testenv}
MOD=$ROOT/scripts/cosigntools

log() { printf 'cosign.sh: %s\n' "$*" >&2; }
die() { printf 'cosign.sh: error: %s\n' "$*" >&2; exit 1; }

key=$(cat "$MOD/go.mod" "$MOD/go.sum" | sha256sum | cut -c1-16)
bin=$W/bin/$key/cosign

if [ ! -x "$bin" ]; then
  command -v go >/dev/null || die "go is needed to build cosign (scripts/cosigntools)"
  mkdir -p "$(dirname "$bin")" "$W/log"
  log "building cosign from github.com/sigstore/cosign/v2 (cold: ~4 min, cached after)"
  # Flags must stay identical between runs, or Go recompiles everything.
  (cd "$MOD" && go build -ldflags "-s -w" -o "$bin.tmp" github.com/sigstore/cosign/v2/cmd/cosign) \
    >"$W/log/cosign-build.log" 2>&1 ||
    die "building cosign failed; see $W/log/cosign-build.log: $(tail -n 5 "$W/log/cosign-build.log")"
  mv "$bin.tmp" "$bin"
fi
ln -sfn "$key/cosign" "$W/bin/cosign"

case "${1:-env}" in
  path) echo "$bin" ;;
  env) echo "export STRATA_TEST_COSIGN=$bin" ;;
  *) die "usage: $0 [env|path]" ;;
esac
