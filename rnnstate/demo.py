"""`python -m rnnstate demo`: the seed tutorial's four listings, explained, plus what only rnnstate returns.

Each listing runs exactly as in the tutorial (with ``keras`` replaced by ``rnnstate`` in the imports);
after each result we say what each array is and check the relations that must hold.
"""
from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

import numpy as np
import torch

LISTINGS = [
    ("seed_1_lstm.py", "LSTM(1): the model outputs the final hidden state h, shape (batch, units) = (1, 1)."),
    ("seed_2_return_sequences.py", "LSTM(1, return_sequences=True): h for every timestep, shape (batch, "
                                    "timesteps, units) = (1, 3, 1)."),
    ("seed_3_return_state.py", "LSTM(1, return_state=True): [final h, final h again (the state), final c], "
                                "each (1, 1). The first two are the same tensor: the output *is* h."),
    ("seed_4_sequences_and_state.py", "return_sequences=True and return_state=True: [h for every step (1, 3, 1), "
                                       "final h (1, 1), final c (1, 1)]. The last step of the sequence is the "
                                       "final h."),
]


def _examples_dir() -> Path:
    here = Path(__file__).resolve().parent.parent / "examples"
    return here


def run(out_dir="out"):
    import rnnstate
    from rnnstate.layers import LSTM, Input

    rnnstate.utils.set_random_seed(1)
    ex = _examples_dir()
    print("rnnstate demo: the tutorial's four listings, with `keras` replaced by `rnnstate` in the imports.\n")
    for i, (fname, what) in enumerate(LISTINGS, 1):
        print(f"=== Listing {i}: examples/{fname}")
        ns = runpy.run_path(str(ex / fname), run_name="__main__")    # prints model.predict(data) as the listing does
        print(f"--> {what}")
        res = ns["model"].predict(ns["data"], verbose=0)
        if i == 3:
            out, h, c = res
            assert np.array_equal(out, h)
            print(f"    check: output == h: {np.array_equal(out, h)}")
        if i == 4:
            seq, h, c = res
            ok = np.allclose(seq[:, -1], h)
            assert ok
            print(f"    check: seq[:, -1] == h: {ok};  c is not squashed: |c| = {abs(float(c[0, 0])):.4f} and "
                  f"h = o * tanh(c), not tanh(c)")
        print()

    print("=== Beyond Keras: the cell state and the gates at every step, in one call")
    data = np.array([0.1, 0.2, 0.3]).reshape((1, 3, 1))
    layer = LSTM(4, return_sequences=True, return_state=True, return_cell_sequence=True, return_gate_sequences=True)
    with torch.no_grad():             # inference: the compiled time loop writes h, c and gates in one pass
        res = layer(data)
    print(f"    result fields: {res._fields}")
    print(f"    h sequence  {tuple(res.output.shape)}, c sequence {tuple(res.c_seq.shape)}, gates 4 x "
          f"{tuple(res.gate_o.shape)};  path: {layer.last_path}")
    h_from_gates = res.gate_o * torch.tanh(res.c_seq)
    ok = np.allclose(h_from_gates.detach().numpy(), res.output.detach().numpy(), atol=1e-6)
    print(f"    check: h_t == o_t * tanh(c_t) at every step: {ok}  (that is why h != tanh(c))")
    print(f"    check: c_seq[:, -1] == final c: {np.allclose(res.c_seq[:, -1].detach(), res.c.detach())}")
    print()

    os.makedirs(out_dir, exist_ok=True)
    from rnnstate import plot
    path = plot.plot_states(layer, data, os.path.join(out_dir, "states.png"))
    print(f"=== State plot (h, c and gates over the 3 timesteps) written to: {path}")
    return 0


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--version"]:
        from ._version import __version__
        print(f"rnnstate {__version__}")
        return 0
    if not argv or argv[0] != "demo":
        print("usage: python -m rnnstate demo [OUT_DIR] | --version")
        return 2
    return run(*(argv[1:2]))
