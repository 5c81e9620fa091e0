// Command strata is the CI-to-GitOps delivery chain: build, bundle, cmp, image-updater.
//
// This package only parses flags and calls the packages that do the work.
package main
