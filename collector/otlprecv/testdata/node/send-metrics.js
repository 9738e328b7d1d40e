// Sends metrics with the OpenTelemetry JS SDK over OTLP/HTTP and prints the
// SDK's own diagnostics, its partial-success warning among them.
//
//   node send-metrics.js URL json|proto
//
// Points with a "reject" attribute are rejected by the Go test's pipeline with
// that reason. The reader exports once, at shutdown.
'use strict';
const { diag, DiagLogLevel } = require('@opentelemetry/api');
const { MeterProvider, PeriodicExportingMetricReader } = require('@opentelemetry/sdk-metrics');

const [url, protocol] = process.argv.slice(2);
const { OTLPMetricExporter } = require(protocol === 'proto'
  ? '@opentelemetry/exporter-metrics-otlp-proto'
  : '@opentelemetry/exporter-metrics-otlp-http');

const print = (level) => (...args) => console.log(level, ...args);
diag.setLogger({ error: print('ERROR'), warn: print('WARN'), info() {}, debug() {}, verbose() {} }, DiagLogLevel.WARN);

const reader = new PeriodicExportingMetricReader({
  exporter: new OTLPMetricExporter({ url }),
  exportIntervalMillis: 3600000,
});
const provider = new MeterProvider({ readers: [reader] });
const meter = provider.getMeter('fleetwatch-node-test');

const requests = meter.createCounter('requests');
requests.add(3, { route: '/a' });
requests.add(1, { route: '/b', reject: 'non_finite' });
const latency = meter.createHistogram('latency_ms');
latency.record(12.5, { route: '/a' });
latency.record(7, { route: '/b', reject: 'timestamp_out_of_range' });

provider.shutdown().then(
  () => console.log('DONE'),
  (err) => { console.error('FAILED', err); process.exit(1); },
);
