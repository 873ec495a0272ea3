"""Helpers the tests and benchmarks share: fixture models built by the trainer, servers in threads and
subprocesses, request strategies and oracles for the fuzzers, the soak driver.

Import as `tests.support.<module>` with the project root on the path (pytest's `pythonpath = ["."]`;
benchmarks run as `python -m benchmarks.<name>` from the root).
"""
