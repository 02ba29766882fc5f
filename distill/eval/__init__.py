"""Evaluation: metrics, benchmarks, the fidelity report, plots."""
