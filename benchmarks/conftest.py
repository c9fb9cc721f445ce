"""Collects benchmarks/bench_*.py. Conventions: see benchmarks/timing.py."""
