package ship

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// Without a build report and without a stages storage to build in, Run says what to give; a
// missing report file is named. Publishing itself is tested end to end by cmd/strata's
// TestBundleCommands (a report) and TestBundlePublishBuildsFirst (a build first).
func TestRunNeedsImages(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := Run(ctx, Options{Dir: dir}); err == nil || !strings.Contains(err.Error(), "--build-report") || !strings.Contains(err.Error(), "--stages-repo") {
		t.Errorf("no report, no stages repo: %v", err)
	}
	missing := filepath.Join(dir, "nope.json")
	if _, err := Run(ctx, Options{Dir: dir, ReportFile: missing}); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing report file: %v", err)
	}
}
