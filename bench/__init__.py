"""Benchmarks: per-loss training-step cost, chunked vs naive CurioSFT loss, curio vs TRL.

Run ``python -m bench.run`` (CPU sizes) or ``python -m bench.run --preset gpu``; see
docs/benchmarks.md.
"""
