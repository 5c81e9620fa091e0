package stages

import "strings"

const buildingSuffix = "#building"

// PublishLock is the lock under which a stage of digest is published (check, lock, re-check,
// push), and under which cleanup deletes the stages of digest: <project>/<digest>.
func PublishLock(project, digest string) string { return project + "/" + digest }

// BuildingLock is the lock a builder holds while it builds and publishes a stage of digest,
// so that builders waiting for it reuse its result: <project>/<digest>#building.
func BuildingLock(project, digest string) string {
	return PublishLock(project, digest) + buildingSuffix
}

// IsBuildingLock reports whether name is a BuildingLock.
func IsBuildingLock(name string) bool { return strings.HasSuffix(name, buildingSuffix) }

// CleanupLock is the lock a cleanup of project holds while it runs: <project>/cleanup.
func CleanupLock(project string) string { return project + "/cleanup" }
