"""Benchmarks of the platform at département scale (see bench/README.md).

Run each from the repository root as a module, e.g. `.venv/bin/python -m bench.ingest`:
run as a plain script (`python bench/ingest.py`), Python would put bench/ first on the
import path and `bench/ingest.py` would hide the `ingest` package.
"""
