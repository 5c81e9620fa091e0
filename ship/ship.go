package ship

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"strata.dev/strata/build"
	"strata.dev/strata/bundle"
	"strata.dev/strata/config"
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
	// Publish configures the publish; Run sets its Report, ProjectDir, Registry and Log,
	// ChartDir defaults to Dir/.helm, and WerfValues is set for a werf.yaml project (or a WerfEnv).
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
	if !p.WerfValues && (p.WerfEnv != "" || werfProject(o, rep)) {
		o.Log.Info("werf.yaml project: the bundle carries werf's service values too (werf.*, global.werf.*)")
		p.WerfValues = true
	}
	return bundle.Publish(ctx, p)
}

// werfProject tells whether the images were built from a werf.yaml (or werf.yml): the build
// report's config, else --config, else the first config file in Dir.
func werfProject(o Options, rep *stages.Report) bool {
	name := rep.Config
	if name == "" && o.Build.ConfigFile != "" {
		name = filepath.Base(o.Build.ConfigFile)
	}
	if name == "" && o.Dir != "" {
		for _, n := range config.FileNames() {
			if _, err := os.Stat(filepath.Join(o.Dir, n)); err == nil {
				name = n
				break
			}
		}
	}
	return name == "werf.yaml" || name == "werf.yml"
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
