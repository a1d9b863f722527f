"""The small apps the benchmarks measure against: the floor, a no-op, the app without audit."""
