"""HTTP blueprints: messages, webhooks, health; errors are problem+json."""
