"""Benchmarks: scripts that print tables (``python -m benchmarks.<name>``), never timed tests."""
