"""Load benchmark for the web process (not part of the test suite): see README.md."""
