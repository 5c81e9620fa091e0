// Package bench holds the benchmarks that span several packages (go test -bench; run.sh runs
// them together with the per-package ones): an idle rebuild of a five-image project with
// `strata build` against `docker pull` + `docker build --cache-from` of the same images, a
// one-file change in the stapel image of a stapel + Dockerfile project (the Dockerfile image
// reused without the engine) against the same docker workflow, and 8
// cold concurrent builders against 1 per lock backend, each reported as a ratio measured in the
// same run. The fault campaign (faults_test.go, bench/faults.sh) runs every registry operation
// through random faults and reports success rates, checking the registry whole after every run.
package bench
