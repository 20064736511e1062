"""Benchmarks against peers, side by side (not tests: they measure, they do not judge)."""
