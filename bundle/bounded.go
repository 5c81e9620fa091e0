package bundle

import (
	"context"
	"errors"
	"fmt"
	"path"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
)

// Default bounds of one chart's template execution.
const (
	DefaultRenderTimeout         = 60 * time.Second
	DefaultMaxRenderMemory int64 = 128 << 20
)

// ErrRenderBound is wrapped by the error Render returns when the templates run past the time or
// memory bound.
var ErrRenderBound = errors.New("render bound exceeded")

// renderLimits bound the template engine.
type renderLimits struct {
	timeout   time.Duration
	maxMemory int64 // bytes of live heap
	maxOut    int64
}

// heapMetric is the Go heap's bytes in objects, live or not yet swept.
const heapMetric = "/memory/classes/heap/objects:bytes"

// executeTemplates runs Helm's engine on the chart within the limits. Helm's engine cannot be
// cancelled: the templates run on their own goroutine while this one watches the clock, the
// context and the heap; past a bound it returns an error and leaves that goroutine behind, so a
// process that gets ErrRenderBound should exit soon (strata's commands do). Long before the
// bounds, a rendered output over maxOut fails too.
func executeTemplates(ctx context.Context, chrt *chart.Chart, values chartutil.Values, l renderLimits) (map[string]string, error) {
	type result struct {
		files map[string]string
		err   error
	}
	done := make(chan result, 1)
	pr := &probe{}
	pchrt, pvalues := probed(chrt, values, pr)
	go func() {
		var e engine.Engine // zero Engine: no cluster behind lookup
		e.EnableDNS = false
		files, err := e.Render(pchrt, pvalues)
		done <- result{files, err}
	}()

	timer := time.NewTimer(l.timeout)
	defer timer.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	sample := []metrics.Sample{{Name: heapMetric}}
	metrics.Read(sample)
	base := int64(sample[0].Value.Uint64())
	// Collections asked for run on their own goroutine: a runtime.GC() here would leave the heap
	// unwatched for as long as it takes (tens of milliseconds on a large heap), time enough for a
	// template to allocate hundreds of MiB more.
	var lastGC time.Time
	collecting := false
	collected := make(chan struct{}, 1) // buffered: a collection still running at return ends alone
	for {
		select {
		case r := <-done:
			if r.err != nil {
				return nil, r.err
			}
			var size int64
			for _, f := range r.files {
				size += int64(len(f))
			}
			if size > l.maxOut {
				return nil, fmt.Errorf("output of %d bytes is larger than the limit of %d bytes: %w", size, l.maxOut, ErrLimit)
			}
			return r.files, nil
		case <-ctx.Done():
			return nil, fmt.Errorf("templates stopped: %w", ctx.Err())
		case <-timer.C:
			return nil, fmt.Errorf("templates did not finish within %s%s (a template loops too long; the bound is --render-timeout): %w", l.timeout, pr.in(), ErrRenderBound)
		case <-collected:
			// What is left after a collection is live memory (and what was allocated since).
			collecting = false
			metrics.Read(sample)
			if int64(sample[0].Value.Uint64())-base > l.maxMemory {
				return nil, l.memoryError(pr)
			}
		case <-tick.C:
			metrics.Read(sample)
			used := int64(sample[0].Value.Uint64()) - base
			switch {
			case used <= l.maxMemory:
			case used > 2*l.maxMemory:
				// Past twice the bound, stop at once: a large allocation is in flight.
				return nil, l.memoryError(pr)
			case !collecting && time.Since(lastGC) >= 50*time.Millisecond:
				// Up to twice the bound, count live memory only, not garbage (a collection
				// at most every 50 ms), while the heap stays watched.
				collecting, lastGC = true, time.Now()
				go func() {
					runtime.GC()
					collected <- struct{}{}
				}()
			}
		}
	}
}

func (l renderLimits) memoryError(pr *probe) error {
	return fmt.Errorf("templates took more than %d MiB of memory%s (a template builds too much output; the bound is --max-render-memory): %w", l.maxMemory>>20, pr.in(), ErrRenderBound)
}

// probe tells which template file Helm's engine is executing, for the error of a render that
// runs past a bound: each template file starts with an action that calls it (see probed).
type probe struct{ current atomic.Pointer[string] }

// in is " in template CHART/templates/FILE", or "" before the first template started.
func (p *probe) in() string {
	if name := p.current.Load(); name != nil {
		return " in template " + *name
	}
	return ""
}

// probeAction starts every probed template file: it prints nothing.
const probeAction = `{{ .Capabilities.StrataEnterTemplate .Template.Name }}`

// probedCapabilities is what the templates see as .Capabilities: Helm's, whose fields and
// methods it promotes (and whose JSON, for toYaml and toJson, is the same), with a method that
// records the template being executed.
type probedCapabilities struct {
	*chartutil.Capabilities
	probe *probe
}

// StrataEnterTemplate records that template name starts executing.
func (c probedCapabilities) StrataEnterTemplate(name string) string {
	c.probe.current.Store(&name)
	return ""
}

// probed returns copies of the chart (its subcharts too) whose rendered template files start
// with probeAction, and of the values whose .Capabilities carries p. Partials are left as they
// are: they only define templates. Values of another shape are returned as they are.
func probed(c *chart.Chart, values chartutil.Values, p *probe) (*chart.Chart, chartutil.Values) {
	caps, ok := values["Capabilities"].(*chartutil.Capabilities)
	if !ok || caps == nil {
		return c, values
	}
	out := make(chartutil.Values, len(values))
	for k, v := range values {
		out[k] = v
	}
	out["Capabilities"] = probedCapabilities{caps, p}
	return probedChart(c), out
}

func probedChart(c *chart.Chart) *chart.Chart {
	cp := *c
	cp.Templates = make([]*chart.File, len(c.Templates))
	for i, f := range c.Templates {
		if f == nil || strings.HasPrefix(path.Base(f.Name), "_") {
			cp.Templates[i] = f
			continue
		}
		cp.Templates[i] = &chart.File{Name: f.Name, Data: append([]byte(probeAction), f.Data...)}
	}
	deps := c.Dependencies()
	probedDeps := make([]*chart.Chart, len(deps))
	for i, d := range deps {
		probedDeps[i] = probedChart(d)
	}
	cp.SetDependencies(probedDeps...)
	return &cp
}
