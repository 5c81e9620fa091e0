// Package logging builds the log/slog logger every Strata command uses.
//
// Logs always go to stderr; stdout is reserved for command output (reports, refs, manifests).
package logging
