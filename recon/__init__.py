"""Reconstruction: samplers, data consistency, baselines, I/O, metrics, tuning and the CLI."""
