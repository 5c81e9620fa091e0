// Package cienv wires strata into a CI system: it reads the variables GitLab CI, GitHub Actions
// or a generic runner provide, derives the stages repository and the bundle metadata, and logs in
// to the registry with the CI-provided token by writing the docker config (never argv, never
// stdout).
package cienv
