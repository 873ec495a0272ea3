"""The server's fast path through TensorFlow's private ConcreteFunction._call_flat still applies.

`serving.servable` calls a signature's ConcreteFunction through `_call_flat` when its placeholders
provably match its parameters, and through the public keyword call otherwise. A TensorFlow upgrade that
changes those internals would silently cost REST/gRPC latency; this test makes it loud, and checks that
both calls give the same outputs. (uvicorn's and protobuf's private surfaces are checked in
tests/unit/test_serving_core.py and tests/unit/test_serving_client.py.)
"""
from __future__ import annotations

import numpy as np
import pytest

from serving import servable as servable_module
from serving.servable import Servable
from tests.support.serving_fixtures import PENGUIN_ROW, write_model
from trainer import contract

pytestmark = pytest.mark.slow


def test_every_signature_takes_the_flat_call_and_it_agrees_with_the_public_call(tmp_path, monkeypatch):
    version_dir = write_model(tmp_path / "penguin" / "1", warmup_rows=0)
    fast = Servable.load("penguin", 1, str(version_dir))
    served = [name for name in fast.signatures if not name.startswith("__")]  # not __saved_model_init_op
    assert contract.SERVING_SIGNATURE in served and contract.CLASSIFY_SIGNATURE in served
    slow_path = [name for name in served if not fast.uses_flat_call(name)]
    assert not slow_path, f"TensorFlow's ConcreteFunction internals changed: {slow_path} fall back to the keyword call"

    monkeypatch.setattr(servable_module, "_flat_order", lambda function: None)
    public = Servable.load("penguin", 1, str(version_dir))
    assert not public.uses_flat_call(contract.SERVING_SIGNATURE)
    inputs = {name: np.array([value, value], np.float32) if isinstance(value, float)
              else np.array([value.encode(), value.encode()], object) for name, value in PENGUIN_ROW.items()}
    expected = public.run(contract.SERVING_SIGNATURE, inputs)
    got = fast.run(contract.SERVING_SIGNATURE, inputs)
    assert sorted(got) == sorted(expected)
    for alias, value in expected.items():
        np.testing.assert_array_equal(got[alias], value)
