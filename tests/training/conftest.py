import contextlib
import os
import sys

import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, os.path.dirname(__file__))   # for _training_fakes


@pytest.fixture(autouse=True)
def _small_model_settings(request):
    """Tests here use tiny models: one torch thread avoids oversubscribing the (shared, 2-core)
    machine, which made steps up to 100x slower.  Keras reference computations run op by op
    (compiling each tiny jax op costs more than it saves) unless the test module sets
    ``KERAS_JIT = True`` (Keras' fit compiles its step once).  Both are restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    jax = sys.modules.get("jax")
    use_jit = getattr(request.module, "KERAS_JIT", False)
    ctx = jax.disable_jit() if jax is not None and not use_jit else contextlib.nullcontext()
    try:
        with ctx:
            yield
    finally:
        torch.set_num_threads(threads)
