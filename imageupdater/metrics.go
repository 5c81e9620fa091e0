package imageupdater

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the controller's Prometheus series, in a registry of its own.
type metrics struct {
	reg       *prometheus.Registry
	checks    prometheus.Counter
	updates   prometheus.Counter
	errors    *prometheus.CounterVec
	listings  prometheus.Counter
	latency   *prometheus.HistogramVec
	cycles    prometheus.Counter
	lastCycle prometheus.Gauge
	// webhookReplays counts webhook deliveries refused as replays (seen before, or dated
	// outside the replay window).
	webhookReplays prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		checks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_image_updater_checks_total", Help: "Application checks."}),
		updates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_image_updater_updates_total", Help: "Application targetRevision updates written (or planned with --dry-run)."}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_image_updater_errors_total", Help: "Failed Application checks by reason."}, []string{"reason"}),
		listings: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_image_updater_tag_listings_total", Help: "Repository tag listings."}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "strata_image_updater_registry_request_duration_seconds", Help: "Registry request latency.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}, []string{"registry", "code"}),
		cycles: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_image_updater_cycles_total", Help: "Completed check cycles."}),
		lastCycle: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "strata_image_updater_last_cycle_timestamp_seconds", Help: "End of the last completed cycle (unix seconds)."}),
		webhookReplays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_image_updater_webhook_replays_total", Help: "Webhook deliveries refused as replays (seen before or dated outside the replay window)."}),
	}
	m.reg.MustRegister(m.checks, m.updates, m.errors, m.listings, m.latency, m.cycles, m.lastCycle, m.webhookReplays,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}
