// Package version reports the version of the running strata binary.
package version
