package stages

import "fmt"

// Labels written on every stage image by build and read back by cleanup. The digest and the
// commit labels are also manifest annotations of the stage, so a stage's digest and commits
// can be read from its manifest alone.
const (
	LabelProject = "dev.strata.project"
	LabelDigest  = "dev.strata.digest"
	LabelParent  = "dev.strata.parent" // the parent stage's tag
	LabelImage   = "dev.strata.image"
	LabelStage   = "dev.strata.stage"
	LabelVersion = "dev.strata.version" // the Strata version that built the stage
	// LabelBuiltAt is the commit a stage was built for (HEAD of its build), on every stage,
	// with git content or not: cleanup keeps the stages of the commits its policies keep.
	LabelBuiltAt = "dev.strata.built.commit"
	// LabelPrefix starts every Strata label: a stage built on another image drops the
	// parent's labels with this prefix.
	LabelPrefix = "dev.strata."
)

// CommitLabel is the label of the commit of git mapping i: dev.strata.git.<i>.commit.
func CommitLabel(i int) string { return fmt.Sprintf("dev.strata.git.%d.commit", i) }

// ImportLabel is the label of an import stage naming the tag of the stage its import i copied
// files from: dev.strata.import.<i>.source. Cleanup keeps that stage with the import stage.
func ImportLabel(i int) string { return fmt.Sprintf("dev.strata.import.%d.source", i) }
