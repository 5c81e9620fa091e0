// Package bench holds the build benchmarks (go test -bench, see run.sh): an idle rebuild of a
// five-image project with `strata build` against `docker pull` + `docker build --cache-from` of
// the same images, reported as a ratio in the same run.
package bench
