"""Evaluation: event metrics, batch detection, stream-vs-offline consistency, the official reference forward and
the benchmarks."""
