"""Developer scripts: the benchmark lives in scripts/bench."""
