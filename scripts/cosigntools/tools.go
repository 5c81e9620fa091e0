//go:build tools

// Package tools pins the cosign CLI for scripts/cosign.sh.
package tools

import _ "github.com/sigstore/cosign/v2/cmd/cosign"
