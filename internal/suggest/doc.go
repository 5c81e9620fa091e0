// Package suggest finds the known name a misspelt one was meant to be, for "did you mean"
// hints in configuration errors.
package suggest
