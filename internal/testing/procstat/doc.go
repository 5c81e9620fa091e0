// Package procstat measures programs run by benchmarks: wall time, CPU time and peak RSS of the
// program alone.
package procstat
