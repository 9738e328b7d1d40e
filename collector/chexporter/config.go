package chexporter

import (
	"errors"
	"fmt"
	"path"
	"time"

	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configtls"

	"github.com/fleetwatch/fleetwatch/collector/wal"
	"github.com/fleetwatch/fleetwatch/storage"
)

// Config is the exporter's configuration.
type Config struct {
	// DSN, when set, gives the connection (clickhouse://user:pass@host:9000/db?...);
	// the fields below override nothing then except retention.
	DSN string `mapstructure:"dsn"`
	// Endpoints are host:port pairs of the native protocol.
	Endpoints []string            `mapstructure:"endpoints"`
	Database  string              `mapstructure:"database"`
	Username  string              `mapstructure:"username"`
	Password  configopaque.String `mapstructure:"password"`
	// PasswordFile holds the password instead (a mounted Secret, a systemd
	// credential), read when a connection opens, one trailing newline
	// trimmed; it applies with DSN too, which then carries no password.
	PasswordFile string `mapstructure:"password_file"`
	Cluster      string `mapstructure:"cluster"`
	// TLS, when the tls section is present (and not enabled: false), turns
	// on TLS to ClickHouse with the Collector's usual client TLS settings.
	TLS          configoptional.Optional[configtls.ClientConfig] `mapstructure:"tls"`
	DialTimeout  time.Duration                                   `mapstructure:"dial_timeout"`
	ReadTimeout  time.Duration                                   `mapstructure:"read_timeout"`
	MaxOpenConns int                                             `mapstructure:"max_open_conns"`
	Compression  string                                          `mapstructure:"compression"`
	// Profile picks the schema's DDL extras: auto, legacy or modern.
	Profile       string         `mapstructure:"profile"`
	RetentionDays map[string]int `mapstructure:"retention_days"`
	// CreateSchema creates the database and applies migrations at start. Off
	// by default: the collector runs as a user without DDL rights and the
	// schema is applied by `fleetctl migrate`; it then only checks that every
	// migration is there (and keeps data queued until it is).
	CreateSchema bool `mapstructure:"create_schema"`

	// Limits on what is accepted; see docs/TELEMETRY.md "What lands where".
	MaxLabelLength int           `mapstructure:"max_label_length"`
	MaxAge         time.Duration `mapstructure:"max_age"`
	MaxFuture      time.Duration `mapstructure:"max_future"`
	// Metrics whose name matches an Exclude glob, or no Include glob when
	// Include is set, are rejected (reason "filtered").
	Include []string `mapstructure:"include_metrics"`
	Exclude []string `mapstructure:"exclude_metrics"`
	// SeriesRefresh is how often a known series' gpu_series row is rewritten.
	SeriesRefresh time.Duration `mapstructure:"series_refresh"`
	// DriftProfileRefresh is how often the drift profiles that inference
	// events are binned into at ingest (drift_bins) are reloaded; 0 turns
	// ingest binning off and leaves all drift binning to the analyzer's SQL.
	DriftProfileRefresh time.Duration `mapstructure:"drift_profile_refresh"`
	// MaxInsertRows and NativeBlockRows tune the ClickHouse writer.
	MaxInsertRows   int `mapstructure:"max_insert_rows"`
	NativeBlockRows int `mapstructure:"native_block_rows"`

	// Timeout bounds one insert attempt.
	Timeout time.Duration `mapstructure:"timeout"`
	Queue   QueueConfig   `mapstructure:"queue"`
	Batch   BatchConfig   `mapstructure:"batch"`
	Retry   RetryConfig   `mapstructure:"retry"`
}

// QueueConfig is the exporter's write-ahead log (package collector/wal): a
// request is acknowledged to its sender only once its rows are in it.
type QueueConfig struct {
	// Directory holds one log per signal (metrics/, logs/, traces/).
	Directory string `mapstructure:"directory"`
	// MaxBytes bounds each signal's log; a full log pushes back on senders.
	MaxBytes int64 `mapstructure:"max_bytes"`
	// SegmentBytes is the size of the log's files.
	SegmentBytes int64 `mapstructure:"segment_bytes"`
	// Fsync is "always" (a sender's request is on stable storage before it is
	// acknowledged; concurrent requests share an fsync) or "never" (the
	// kernel flushes: survives a killed collector, not a crashed machine).
	Fsync string `mapstructure:"fsync"`
	// BlockTimeout is how long a request waits for space in a full log
	// before its sender is told to retry (gRPC UNAVAILABLE, HTTP 503); the
	// sender's own deadline, when shorter, wins.
	BlockTimeout time.Duration `mapstructure:"block_timeout"`
	// DrainOnShutdown is how long a graceful shutdown keeps writing queued
	// rows to ClickHouse before it stops; what is left stays queued for the
	// next start.
	DrainOnShutdown time.Duration `mapstructure:"drain_on_shutdown"`
}

// BatchConfig sizes the inserts. The drain loop reads queued requests back
// and gathers their rows into one batch, which it inserts as soon as the
// first of these holds: FlushRows rows gathered, FlushBytes bytes of queued
// requests gathered, or MaxDelay passed since the batch's first request was
// read. Fewer, bigger inserts cost ClickHouse less CPU per row (fewer parts
// to write and merge); MaxDelay bounds what that adds to the time until a
// sample can be queried, and FlushBytes bounds the collector's memory (a
// batch in memory takes a multiple of its queued bytes while it is merged
// and written; the multiple was not measured).
// docs/BENCHMARKS.md "Fewer, bigger inserts" has the measurements behind
// the defaults.
type BatchConfig struct {
	FlushRows  int           `mapstructure:"flush_rows"`
	FlushBytes int64         `mapstructure:"flush_bytes"`
	MaxDelay   time.Duration `mapstructure:"max_delay"`
}

// Validate checks the thresholds.
func (c BatchConfig) Validate() error {
	var errs []error
	if c.FlushRows < 1 {
		errs = append(errs, fmt.Errorf("flush_rows %d must be at least 1", c.FlushRows))
	}
	if c.FlushBytes < 1<<10 {
		errs = append(errs, fmt.Errorf("flush_bytes %d is below 1 KiB", c.FlushBytes))
	}
	if c.MaxDelay <= 0 || c.MaxDelay > time.Minute {
		errs = append(errs, fmt.Errorf("max_delay %v: want more than 0 and at most 1m", c.MaxDelay))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("batch: %w", err)
	}
	return nil
}

// RetryConfig paces retries of a failed insert. Inserts are retried until
// they succeed or fail permanently (a malformed row): the queue, not a time
// limit, bounds what waits.
type RetryConfig struct {
	InitialInterval time.Duration `mapstructure:"initial_interval"`
	MaxInterval     time.Duration `mapstructure:"max_interval"`
}

// NewDefaultBatchConfig returns the shipped insert thresholds.
func NewDefaultBatchConfig() BatchConfig {
	return BatchConfig{FlushRows: 1 << 20, FlushBytes: 64 << 20, MaxDelay: time.Second}
}

// DefaultQueueDirectory is where the queue lives unless configured.
const DefaultQueueDirectory = "/var/lib/fleetwatch-collector"

func createDefaultConfig() *Config {
	def := storage.NewDefaultConfig()
	w := storage.NewDefaultWriterConfig()
	return &Config{
		Endpoints:           def.Addrs,
		Database:            def.Database,
		Username:            def.Username,
		DialTimeout:         def.DialTimeout,
		ReadTimeout:         def.ReadTimeout,
		MaxOpenConns:        def.MaxOpenConns,
		Compression:         def.Compression,
		Profile:             def.Profile,
		CreateSchema:        false,
		MaxLabelLength:      1024,
		MaxAge:              7 * 24 * time.Hour,
		MaxFuture:           time.Hour,
		SeriesRefresh:       time.Hour,
		DriftProfileRefresh: time.Minute,
		MaxInsertRows:       w.MaxInsertRows,
		NativeBlockRows:     w.NativeBlockRows,
		Timeout:             2 * time.Minute,
		Queue: QueueConfig{Directory: DefaultQueueDirectory, MaxBytes: 1 << 30, SegmentBytes: 16 << 20, Fsync: string(wal.SyncAlways),
			BlockTimeout: 10 * time.Second, DrainOnShutdown: 5 * time.Second},
		Batch: NewDefaultBatchConfig(),
		Retry: RetryConfig{InitialInterval: time.Second, MaxInterval: 30 * time.Second},
	}
}

// walOptions are the write-ahead log options of one signal.
func (c *Config) walOptions(signal string) wal.Options {
	return wal.Options{Dir: path.Join(c.Queue.Directory, signal), MaxBytes: c.Queue.MaxBytes,
		SegmentBytes: c.Queue.SegmentBytes, Sync: wal.SyncPolicy(c.Queue.Fsync)}
}

// StorageConfig is the storage layer's view of the connection settings.
func (c *Config) StorageConfig() (storage.Config, error) {
	var sc storage.Config
	if c.DSN != "" {
		var err error
		if sc, err = storage.ParseDSN(c.DSN); err != nil {
			return sc, err
		}
	} else {
		sc = storage.NewDefaultConfig()
		sc.Addrs, sc.Database, sc.Username, sc.Password = c.Endpoints, c.Database, c.Username, string(c.Password)
		sc.Cluster, sc.DialTimeout, sc.ReadTimeout = c.Cluster, c.DialTimeout, c.ReadTimeout
		sc.MaxOpenConns, sc.Compression, sc.Profile = c.MaxOpenConns, c.Compression, c.Profile
		if c.TLS.HasValue() {
			sc.TLS = storage.TLSConfig{Enabled: true, ClientConfig: *c.TLS.Get()}
		}
	}
	if c.PasswordFile != "" {
		sc.PasswordFile = c.PasswordFile // with a password too, storage's Validate refuses both
	}
	sc.RetentionDays = c.RetentionDays
	return sc, nil
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	sc, err := c.StorageConfig()
	if err != nil {
		errs = append(errs, err)
	} else if err := sc.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxLabelLength < 16 {
		errs = append(errs, fmt.Errorf("max_label_length %d is below 16", c.MaxLabelLength))
	}
	if c.MaxAge <= 0 || c.MaxFuture < 0 {
		errs = append(errs, errors.New("max_age must be positive and max_future not negative"))
	}
	if c.SeriesRefresh < time.Minute {
		errs = append(errs, fmt.Errorf("series_refresh %v is below a minute", c.SeriesRefresh))
	}
	for _, g := range append(append([]string{}, c.Include...), c.Exclude...) {
		if _, err := path.Match(g, ""); err != nil {
			errs = append(errs, fmt.Errorf("metric glob %q: %w", g, err))
		}
	}
	if c.DriftProfileRefresh < 0 || (c.DriftProfileRefresh > 0 && c.DriftProfileRefresh < time.Second) {
		errs = append(errs, fmt.Errorf("drift_profile_refresh %v: want 0 (off) or at least 1s", c.DriftProfileRefresh))
	}
	if c.MaxInsertRows < 1 || c.NativeBlockRows < 1 {
		errs = append(errs, errors.New("max_insert_rows and native_block_rows must be at least 1"))
	}
	if c.Queue.Directory == "" {
		errs = append(errs, errors.New("queue.directory is empty: the exporter queues every request on disk before acknowledging it"))
	} else if err := c.walOptions(signalMetrics).Validate(); err != nil {
		errs = append(errs, fmt.Errorf("queue: %w", err))
	}
	if c.Queue.BlockTimeout < 0 || c.Queue.DrainOnShutdown < 0 {
		errs = append(errs, errors.New("queue.block_timeout and queue.drain_on_shutdown must not be negative"))
	}
	if err := c.Batch.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Retry.InitialInterval <= 0 || c.Retry.MaxInterval < c.Retry.InitialInterval {
		errs = append(errs, fmt.Errorf("retry: want 0 < initial_interval (%v) <= max_interval (%v)", c.Retry.InitialInterval, c.Retry.MaxInterval))
	}
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("timeout must be positive"))
	}
	return errors.Join(errs...)
}
