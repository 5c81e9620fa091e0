package version

import "runtime/debug"

// version is set at link time: -ldflags "-X strata.dev/strata/internal/version.version=v1.2.3".
var version string

// String returns the strata version: the link-time version, else the module version, else "dev".
func String() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
