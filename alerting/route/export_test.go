package route

// Receivers returns the receiver names a validated config routes labels to.
func Receivers(c *Config, labels map[string]string) []string { return c.route(labels) }

// Queue returns copies of the router's pending entries, oldest first.
func Queue(r *Router) []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Entry, len(r.queue))
	for i, e := range r.queue {
		out[i] = *e
	}
	return out
}
