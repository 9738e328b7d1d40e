package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// ErrSchemaMissing is wrapped by RequireSchema when migrations are missing.
var ErrSchemaMissing = errors.New("the Fleetwatch schema is not (fully) applied")

// RequireSchema checks that every migration this build knows is applied:
// processes that run as least-privilege users (the collector, the
// analyzer) cannot create the schema, and say who must.
func (c *Client) RequireSchema(ctx context.Context) error {
	applied, err := c.AppliedVersions(ctx)
	if err != nil {
		return fmt.Errorf("%w in %s: %v; run `fleetctl migrate` as an administrator", ErrSchemaMissing, c.cfg.Database, err)
	}
	have := map[int]bool{}
	for _, v := range applied {
		have[v] = true
	}
	var missing []string
	for _, m := range schema.Migrations() {
		if !have[m.Version] {
			missing = append(missing, fmt.Sprintf("%04d_%s", m.Version, m.Name))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w in %s: missing %v; run `fleetctl migrate` as an administrator", ErrSchemaMissing, c.cfg.Database, missing)
	}
	return nil
}
