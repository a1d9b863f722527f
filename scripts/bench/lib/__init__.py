"""What the benchmarks share: settings, servers, load, seeding, checks and the report."""
