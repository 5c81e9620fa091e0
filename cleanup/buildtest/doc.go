// Package buildtest holds the acceptance tests that run strata build and strata cleanup together
// on the real engine and registry (kept apart so package cleanup's own tests do not depend on
// package build).
package buildtest
