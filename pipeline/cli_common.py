"""Pieces every `tfxpipe` command shares: log set-up and turning known errors into clean exits."""
from __future__ import annotations

import contextlib
import logging
import os
import warnings
from typing import Iterator

import click


def setup_logging(verbose: int) -> None:
    """Hide TensorFlow's start-up noise unless -v was given (called by the CLI, never at import)."""
    if verbose == 0:
        # Google client libraries warn about Python 3.10 on every import; TFX 1.16 requires it.
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
        level = logging.WARNING
        logging.getLogger("tensorflow").setLevel(logging.ERROR)  # deprecation notices from TFMA/TFT
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose > 1 else "1")
        level = logging.DEBUG if verbose > 1 else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.DEBUG if verbose > 1 else absl_logging.INFO if verbose else absl_logging.ERROR)
    except ImportError:  # absl comes with TensorFlow; the serving client runs without it
        pass


@contextlib.contextmanager
def fail_on_config_error() -> Iterator[None]:
    """Print a ConfigError as a one-screen message and exit 2, without a traceback."""
    from pipeline.config import ConfigError

    try:
        yield
    except ConfigError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        raise SystemExit(2) from None


def exit_now(code: int) -> None:
    """Exit after flushing output, skipping interpreter teardown.

    TensorFlow's function objects raise harmless but alarming errors from `__del__` while Python tears
    its modules down; a finished run has nothing left to clean up, so we leave without teardown.
    """
    import sys

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
