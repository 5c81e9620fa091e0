// Package fuzztest holds what the fuzz targets of every package assert besides "no panic": one
// input runs within a time and heap bound (Bounded), and a directory tree is what it was
// (Snapshot, Tree.Same), so that nothing is written outside a target directory.
package fuzztest
