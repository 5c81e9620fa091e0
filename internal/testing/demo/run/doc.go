// Command run is `make demo`: the whole Strata chain on examples/quickstart, with a summary.
package main
