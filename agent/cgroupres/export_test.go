package cgroupres

import "time"

// SetNow replaces m's clock.
func SetNow(m *Mapper, now func() time.Time) { m.now = now }
