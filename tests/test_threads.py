"""Threads per call (rnnstate.loop.threads): small steps run on the calling thread only, thread-locally,
and leave torch's thread settings as they were."""
import threading

import numpy as np
import pytest
import torch

from rnnstate import layers
from rnnstate.loop import threads
from rnnstate.loop.reference import time_loop


@pytest.fixture
def two_threads():
    prev = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(prev)


def test_single_threaded_is_thread_local_and_restored(two_threads):
    if threads._CONTROLS is None:
        pytest.skip("this torch has no OpenMP runtime")   # not the case for the CPU wheels we test on
    seen = {}

    def other():
        seen["other"] = torch.get_num_threads()

    with threads.single_threaded():
        assert torch.get_num_threads() == 1
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert torch.get_num_threads() == 2
    assert seen["other"] == 2            # another thread keeps torch's setting


def test_step_size_decides():
    lstm = type("LSTMCell", (), {"units": 128, "n_gates": 4})()
    assert threads.step_macs(lstm, 32) == 32 * 4 * 128 * 128
    assert isinstance(threads.single_threaded_below(lstm, 1), threads._SingleThreaded)      # streaming: 65K
    if threads._CONTROLS is not None:
        threads._CONTENDED_UNTIL[0] = 0.0
        assert not isinstance(threads.single_threaded_below(lstm, 32), threads._SingleThreaded)   # 2M: threaded


def test_measured_contention_runs_single_threaded_for_a_while(monkeypatch):
    """Threaded calls in a row much slower than the fastest of their shape mark the machine busy: the next calls
    run single-threaded until CONTENDED_SECONDS pass, then a threaded call probes again."""
    if threads._CONTROLS is None:
        pytest.skip("this torch has no OpenMP runtime")
    cell = type("LSTMCell", (), {"units": 128, "n_gates": 4})()
    monkeypatch.setattr(threads, "_BEST", {})
    monkeypatch.setattr(threads, "_CONTENDED_UNTIL", [0.0])
    monkeypatch.setattr(threads, "_SLOW", [0])
    clock = [100.0]
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock[0])
    with threads.single_threaded_below(cell, 32, 10):       # the first threaded call sets the best time
        pass
    with threads.single_threaded_below(cell, 32, 10) as t:
        t.t0 -= 1.0                                          # this one "took" a second: a stall ...
    assert not threads.contended()                           # ... one noisy call is not contention
    with threads.single_threaded_below(cell, 32, 10) as t:
        t.t0 -= 1.0                                          # two in a row are
    assert threads.contended()
    assert isinstance(threads.single_threaded_below(cell, 32, 10), threads._SingleThreaded)
    clock[0] += threads.CONTENDED_SECONDS + 0.1
    assert not threads.contended()
    assert isinstance(threads.single_threaded_below(cell, 32, 10), threads._Timed)          # probes again


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
def test_small_calls_same_numbers_and_settings_untouched(two_threads, kind):
    torch.manual_seed(0)
    layer = getattr(layers, kind)(8, return_sequences=True)
    x = torch.randn(3, 5, 4)
    with torch.no_grad():
        y = layer(x)
    assert torch.get_num_threads() == 2
    with torch.no_grad():
        ref = time_loop(layer.cell, x, layer.cell.initial_state(3)).outputs
    np.testing.assert_allclose(y.numpy(), ref.numpy(), atol=1e-5)
