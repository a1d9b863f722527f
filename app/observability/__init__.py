"""What ops see of a running Switchboard: Prometheus metrics and Sentry (and, later, traces)."""
