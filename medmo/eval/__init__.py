"""Evaluation: benchmarks, scoring presets, metrics and result tables."""
