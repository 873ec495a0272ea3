"""Where a path points: the one rule the pipeline and the model server share.

A path with a scheme (`gs://`, `s3://`, `hdfs://`, ...) names object storage: it is read where the code
runs, never checked on this machine nor re-rooted against a local directory. This module imports only
the standard library, so the model server can use it without the pipeline's dependencies.
"""
from __future__ import annotations


def is_remote(path: str) -> bool:
    """An object-store URI (gs://, s3://, ...), as opposed to a local path."""
    return "://" in path
