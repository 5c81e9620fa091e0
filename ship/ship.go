package ship

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"strata.dev/strata/build"
	"strata.dev/strata/bundle"
	"strata.dev/strata/internal/lock/backends"
	"strata.dev/strata/internal/registry"
	"strata.dev/strata/stages"
)

// Options configure Run.
type Options struct {
	// Dir is the project directory: its git work tree, strata.yaml and chart (.helm).
	Dir string
	// ReportFile is the build report ('strata build --report') whose images are published;
	// empty: Build runs first.
	ReportFile string
	// Build configures the build without ReportFile; Run sets its Dir, Registry, Log and Locker.
	Build build.Options
	// Synchronization names that build's lock backend (see backends.Open; "" is :local).
	Synchronization string
	// Publish configures the publish; Run sets its Report, ProjectDir, Registry and Log, and
	// ChartDir defaults to Dir/.helm.
	Publish bundle.PublishOptions
	// Registry says how registries are reached.
	Registry registry.Options
	// Log receives progress (nil: discarded).
	Log *slog.Logger
}

// Run publishes the bundle of the project in Dir with the images of ReportFile, or of a build
// run first.
func Run(ctx context.Context, o Options) (*bundle.PublishResult, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	rep, err := images(ctx, o)
	if err != nil {
		return nil, err
	}
	p := o.Publish
	p.Report, p.ProjectDir, p.Registry, p.Log = rep, o.Dir, o.Registry, o.Log
	if p.ChartDir == "" {
		p.ChartDir = filepath.Join(o.Dir, ".helm")
	}
	return bundle.Publish(ctx, p)
}

// images reads the build report, or builds the images (reusing every stage already stored).
func images(ctx context.Context, o Options) (*stages.Report, error) {
	if o.ReportFile != "" {
		r, err := stages.ReadReport(o.ReportFile)
		if err != nil {
			return nil, fmt.Errorf("bundle publish: %w", err)
		}
		return r, nil
	}
	b := o.Build
	if b.Repo == "" {
		return nil, errors.New("bundle publish: give --build-report FILE, or --stages-repo (STRATA_REPO) to build first")
	}
	locker, err := backends.Open(ctx, o.Synchronization, backends.Options{Log: o.Log})
	if err != nil {
		return nil, err
	}
	b.Dir, b.Registry, b.Log, b.Locker = o.Dir, o.Registry, o.Log, locker
	rep, err := build.Run(ctx, b)
	if err != nil {
		return nil, err
	}
	if len(rep.Images) == 0 {
		return nil, errors.New("bundle publish: build report: no images")
	}
	return rep, nil
}
