"""Launchers that run many training jobs: the per-domain loop of the highlight benchmarks."""
