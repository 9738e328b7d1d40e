package cgroupres

import "time"

// SetNow replaces m's clock.
func SetNow(m *Mapper, now func() time.Time) { m.now = now }

// SetLookupUser replaces m's user database.
func SetLookupUser(m *Mapper, f func(uid string) (string, error)) { m.lookupUser = f }
