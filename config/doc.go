// Package config is the one reader of a project's strata.yaml or werf.yaml (the two share one
// schema). It finds the file among the accepted names (FileNames), reads it and the template
// partials it uses from git objects of a commit (never from the work tree: a committed symlink is
// an error, sizes are bounded), renders it as a Go template with werf's functions (Render), and
// parses every section — the project document with build: and cleanup:, then one document per
// image — into typed values (Parse). Errors name the file, the line and the field; an unknown key
// names the nearest known one.
//
// build, cleanup and `strata config render` take its result; nothing else parses the file.
package config
