package chexporter

import (
	"errors"
	"fmt"
	"path"
	"time"

	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"github.com/fleetwatch/fleetwatch/storage"
)

// TLSConfig turns on TLS to ClickHouse.
type TLSConfig struct {
	Enabled            bool   `mapstructure:"enabled"`
	InsecureSkipVerify bool   `mapstructure:"insecure_skip_verify"`
	CAFile             string `mapstructure:"ca_file"`
	CertFile           string `mapstructure:"cert_file"`
	KeyFile            string `mapstructure:"key_file"`
	ServerName         string `mapstructure:"server_name"`
}

// Config is the exporter's configuration.
type Config struct {
	// DSN, when set, gives the connection (clickhouse://user:pass@host:9000/db?...);
	// the fields below override nothing then except retention.
	DSN string `mapstructure:"dsn"`
	// Endpoints are host:port pairs of the native protocol.
	Endpoints    []string            `mapstructure:"endpoints"`
	Database     string              `mapstructure:"database"`
	Username     string              `mapstructure:"username"`
	Password     configopaque.String `mapstructure:"password"`
	Cluster      string              `mapstructure:"cluster"`
	TLS          TLSConfig           `mapstructure:"tls"`
	DialTimeout  time.Duration       `mapstructure:"dial_timeout"`
	ReadTimeout  time.Duration       `mapstructure:"read_timeout"`
	MaxOpenConns int                 `mapstructure:"max_open_conns"`
	Compression  string              `mapstructure:"compression"`
	// Profile picks the schema's DDL extras: auto, legacy or modern.
	Profile       string         `mapstructure:"profile"`
	RetentionDays map[string]int `mapstructure:"retention_days"`
	// CreateSchema creates the database and applies migrations at start.
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

	exporterhelper.TimeoutConfig `mapstructure:",squash"`
	QueueConfig                  configoptional.Optional[exporterhelper.QueueBatchConfig] `mapstructure:"sending_queue"`
	RetryConfig                  configretry.BackOffConfig                                `mapstructure:"retry_on_failure"`
}

func createDefaultConfig() *Config {
	def := storage.NewDefaultConfig()
	w := storage.NewDefaultWriterConfig()
	queue := exporterhelper.NewDefaultQueueConfig()
	queue.BlockOnOverflow = true // backpressure to the receiver, not unbounded memory
	retry := configretry.NewDefaultBackOffConfig()
	retry.MaxElapsedTime = 0 // keep retrying while ClickHouse is away; the queue bounds memory
	return &Config{
		Endpoints:           def.Addrs,
		Database:            def.Database,
		Username:            def.Username,
		DialTimeout:         def.DialTimeout,
		ReadTimeout:         def.ReadTimeout,
		MaxOpenConns:        def.MaxOpenConns,
		Compression:         def.Compression,
		Profile:             def.Profile,
		CreateSchema:        true,
		MaxLabelLength:      1024,
		MaxAge:              7 * 24 * time.Hour,
		MaxFuture:           time.Hour,
		SeriesRefresh:       time.Hour,
		DriftProfileRefresh: time.Minute,
		MaxInsertRows:       w.MaxInsertRows,
		NativeBlockRows:     w.NativeBlockRows,
		TimeoutConfig:       exporterhelper.TimeoutConfig{Timeout: 2 * time.Minute},
		QueueConfig:         configoptional.Some(queue),
		RetryConfig:         retry,
	}
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
		sc.TLS = storage.TLSConfig(c.TLS)
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
	return errors.Join(errs...)
}
