package route

// Receivers returns the receiver names a validated config routes labels to.
func Receivers(c *Config, labels map[string]string) []string { return c.route(labels) }
