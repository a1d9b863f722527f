"""The HTTP API's blueprints, one per resource (the shared plumbing is in ``app.api``)."""
