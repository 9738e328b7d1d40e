package chcluster_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chcluster"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

func TestClusterRunsTheSchema(t *testing.T) {
	cl := chtest.StartCluster(t)
	ctx := context.Background()
	cfg := storage.NewDefaultConfig()
	cfg.Addrs = cl.Addrs()
	cfg.Database = "fw"
	cfg.Cluster = cl.Name()
	if err := storage.CreateDatabase(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	c, err := storage.Open(ctx, cfg, storage.WithLogger(chtest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	_ = os.Getenv
	_ = time.Second
	_ = chcluster.Config{}
}
