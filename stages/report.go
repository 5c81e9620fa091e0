package stages

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// Stage statuses in a Report.
const (
	StatusReused    = "reused"
	StatusBuilt     = "built"
	StatusDiscarded = "discarded-for-existing"
	// StatusWaited is a stage another builder stored after this build listed the storage:
	// with build's WaitForInFlight this build waited for the builder in flight (or found the
	// stage when re-checking under the BuildingLock) and reused the stored result.
	StatusWaited = "reused-after-wait"
)

// Report is what a build produced: written by `strata build --report FILE`, read by
// `strata bundle publish --build-report FILE`.
type Report struct {
	Project string `json:"project"`
	Repo    string `json:"repo"`
	Commit  string `json:"commit"`
	Dev     bool   `json:"dev,omitempty"`
	// Config is the file name of the config the images were built from (strata.yaml,
	// werf.yaml...): a bundle of a werf.yaml project carries werf's values too.
	Config string        `json:"config,omitempty"`
	Images []ImageReport `json:"images"`
	// Artifacts are the images built only for others to import from (werf's `artifact:` and
	// `final: false`): stored as stages, never final images (no final repo, no extra tags, not
	// in a bundle's values).
	Artifacts []ImageReport `json:"artifacts,omitempty"`
}

// ImageReport is one image of strata.yaml: its final reference and the stages it is made of.
type ImageReport struct {
	Name string `json:"name"`
	// Repo, Tag and Ref name the final image: in the stages storage, or in build's FinalRepo.
	Repo           string        `json:"repo"`
	Tag            string        `json:"tag"`
	Ref            string        `json:"ref"`
	ManifestDigest string        `json:"manifestDigest"`
	StageRef       string        `json:"stageRef,omitempty"` // the last stage in the stages storage
	ExtraTags      []string      `json:"extraTags,omitempty"`
	Stages         []StageReport `json:"stages"`
}

// StageReport is one non-empty stage of an image.
type StageReport struct {
	Name       string `json:"name"`
	Digest     string `json:"digest"`
	Tag        string `json:"tag"`
	Status     string `json:"status"`
	DurationMs int64  `json:"durationMs"`
}

// Image returns the report of the named image, or nil.
func (r *Report) Image(name string) *ImageReport {
	for i := range r.Images {
		if r.Images[i].Name == name {
			return &r.Images[i]
		}
	}
	return nil
}

// ReadReport reads a report file.
func ReadReport(file string) (*Report, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("build report: %w", err)
	}
	r, err := ParseReport(b)
	if err != nil {
		return nil, fmt.Errorf("build report %s: %w", file, err)
	}
	return r, nil
}

// WriteReport writes the report file (indented JSON) atomically: a temporary file renamed into
// place.
func WriteReport(file string, r *Report) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := os.Rename(tmp, file); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// ParseReport decodes a report; one without images is an error.
func ParseReport(b []byte) (*Report, error) {
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	if len(r.Images) == 0 {
		return nil, errors.New("no images")
	}
	return &r, nil
}
