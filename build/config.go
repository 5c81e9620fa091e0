package build

import "strata.dev/strata/config"

// The config types the build works from: package config reads, renders and checks the file.
type (
	Config             = config.Config
	Image              = config.Image
	GitMapping         = config.GitMapping
	BasicAuth          = config.BasicAuth
	Shell              = config.Shell
	DockerInstructions = config.DockerInstructions
	Healthcheck        = config.Healthcheck
	Import             = config.Import
)
