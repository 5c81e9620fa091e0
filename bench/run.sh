#!/bin/sh
# Every benchmark of the issues' targets, same run, same machine. Needs the test environment:
#   scripts/testenv.sh up
# Each prints its ratio against a baseline measured in the same run (or the absolute numbers the
# target is stated in). BENCHTIME overrides the iteration counts; ONLY=<regexp> selects by name.
set -e
cd "$(dirname "$0")/.."
only="${ONLY:-.}"
run() { # name package benchtime
	echo "$1" | grep -Eq "$only" || return 0
	echo "== $1 ($2)"
	go test -run '^$' -bench "$1" -benchtime "${BENCHTIME:-$3}" "$2"
}
# build: idle rebuild of 5 images vs docker pull + docker build --cache-from (target >= 20x)
run BenchmarkIdleRebuild ./bench/ 10x
# build: one-file change in the stapel image of a stapel + Dockerfile project (the Dockerfile image
# reused, no engine) vs docker pull + docker build --cache-from of both images (issue 20)
run BenchmarkDockerfileReuse ./bench/ 5x
# build: one-file source change in a project of 3 staged Dockerfile images (RUN reused, late COPY
# rebuilt registry-side, no engine) vs docker pull + docker build --cache-from of the 3 (issue 20: >= 10x)
run BenchmarkStagedSourceChange ./bench/ 5x
# build: idle rebuild of a stapel + staged Dockerfile project vs docker, and the git + listing floor
# (issue 20: >= 20x)
run BenchmarkIdleTwoImages ./bench/ 10x
# build: stage digests of a 20,000-file repository (target < 300 ms; stapel and Dockerfile images)
# and the dirty check on it
run 20k ./build/ 5x
# synchronization: 8 cold concurrent builders vs 1 (ratio, duplicate pushes, discarded results)
run BenchmarkSyncBuilders ./bench/ 1x
# sync-server: p99 acquire latency, 200 concurrent clients
run BenchmarkAcquire ./internal/lock/httplock/ 2000x
# bundles: publish of a 10-image bundle whose images are present (bytes sent, ratio to helm push)
run BenchmarkPublish10Images ./bundle/ 5x
# cmp: strata cmp generate vs helm template on a 300-object bundle (ratio, peak RSS)
run BenchmarkCMPGenerate300 ./cmp/ 10x
# image updater: 1,000 Applications over 100 repositories (listings per repository, duration)
run BenchmarkCycle ./imageupdater/ 5x
# image updater: registry notification to new targetRevision (target <= 2 s)
run BenchmarkNotificationToUpdate ./imageupdater/ 10x
# reliability: every registry operation through random faults at 5 % and 20 % (success rates;
# the registry checked whole after every run). RUNS sets the runs per operation and rate.
echo "faults" | grep -Eq "$only" && { echo "== fault campaign"; bench/faults.sh; }
