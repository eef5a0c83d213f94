"""Benchmarks of the bluesky IOC (run as `python -m bench.<name>`)."""
