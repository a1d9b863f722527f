"""Infrastructure: the database, the broker (and its embedded default), the outbox and the
wakes, the rate limiter, and the small caches the request path uses."""
