#!/bin/sh
# Build benchmarks, same run, same machine (needs the test environment: scripts/testenv.sh up).
#   - idle rebuild of 5 images: strata build vs docker pull + docker build --cache-from (ratio)
#   - stage digests of a 20,000-file repository, and the uncommitted-changes check on it
set -e
cd "$(dirname "$0")/.."
go test -run '^$' -bench BenchmarkIdleRebuild -benchtime "${BENCHTIME:-3x}" ./bench/
go test -run '^$' -bench '20k' -benchtime "${BENCHTIME:-5x}" ./build/
