package cleanup

import (
	"time"

	"strata.dev/strata/config"
)

// The policy cleanup applies is read with the rest of strata.yaml by package config (the
// `cleanup:` key of the project document).
type (
	Policy = config.Policy
	Rule   = config.Rule
)

// DefaultPolicy is the policy when strata.yaml has no `cleanup:` key: per branch the last 10
// commits within 7 days, the last 10 tags, everything built within 2 hours.
func DefaultPolicy() Policy { return config.DefaultPolicy() }

func formatDuration(d time.Duration) string { return config.FormatDuration(d) }
