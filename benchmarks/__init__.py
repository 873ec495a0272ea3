"""Scripts that print measured figures (recorded in docs/benchmarks.md and docs/reliability.md).

Run them as modules from the project root, e.g. `python -m benchmarks.soak --seconds 300`, so that
they import the shared test helpers (`tests.support`) without editing `sys.path`.
"""
