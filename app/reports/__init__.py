"""What the console, the metrics endpoint and the CLI read: figures computed in the database."""
