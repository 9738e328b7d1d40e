package otlprecv

import (
	"context"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
)

// TypeStr is the component type in Collector configuration.
const TypeStr = "fleetwatch_otlp"

// Type is the component type.
var Type = component.MustNewType(TypeStr)

// NewFactory returns the receiver's factory, for Collector distributions.
func NewFactory() receiver.Factory {
	return receiver.NewFactory(Type, createDefaultConfig,
		receiver.WithMetrics(createMetrics, component.StabilityLevelBeta),
		receiver.WithLogs(createLogs, component.StabilityLevelBeta),
		receiver.WithTraces(createTraces, component.StabilityLevelBeta),
	)
}

// The Collector asks the factory once per pipeline signal; all signals of
// one configured receiver share its listeners, so one otlpReceiver is kept
// per configuration until it shuts down.
var instances = struct {
	sync.Mutex
	m map[*Config]*otlpReceiver
}{m: map[*Config]*otlpReceiver{}}

func instance(cfg component.Config, set receiver.Settings) (*otlpReceiver, error) {
	c := cfg.(*Config)
	instances.Lock()
	defer instances.Unlock()
	if r, ok := instances.m[c]; ok {
		return r, nil
	}
	r, err := newReceiver(c, set, func() {
		instances.Lock()
		defer instances.Unlock()
		delete(instances.m, c)
	})
	if err != nil {
		return nil, err
	}
	instances.m[c] = r
	return r, nil
}

func createMetrics(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Metrics) (receiver.Metrics, error) {
	r, err := instance(cfg, set)
	if err != nil {
		return nil, err
	}
	r.metrics = newMetricsSignal(next, &r.cfg.Limits)
	if r.cfg.MetricsDecoder == DecoderDirect {
		r.metrics.direct = newDirectMetrics(r.metrics, next, set.Logger).export
	}
	return r, nil
}

func createLogs(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Logs) (receiver.Logs, error) {
	r, err := instance(cfg, set)
	if err != nil {
		return nil, err
	}
	r.logs = newLogsSignal(next, &r.cfg.Limits)
	return r, nil
}

func createTraces(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Traces) (receiver.Traces, error) {
	r, err := instance(cfg, set)
	if err != nil {
		return nil, err
	}
	r.traces = newTracesSignal(next, &r.cfg.Limits)
	return r, nil
}
