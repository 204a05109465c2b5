"""Two streams whose LSTM cells exchange their cell states at every step.

A reader of the tutorial asked (two-stream network: RGB frames and optical flow): "extract both
LSTMs' cell state at each time step, average them, and update the next time step with this
average + the existing cell state". That is one custom cell holding both streams' states:

    y_a, (h_a, c_a) = lstm_a.step(x_a[t], (h_a, c_a))
    y_b, (h_b, c_b) = lstm_b.step(x_b[t], (h_b, c_b))
    c_a, c_b = (1 - mix) * c_a + mix * c_b,  (1 - mix) * c_b + mix * c_a     # the exchange
    output[t] = concat(y_a, y_b)

``mix=0`` gives two independent LSTMs, ``mix=0.5`` gives both cells the average of their cell
states after every step (the reader's question), ``mix=1`` swaps them. The cell follows rnnstate's
cell protocol (a ``state_type`` NamedTuple and ``step(x_t, state)``), so ``RNN(cell)`` runs it, it
trains (gradients flow through the exchange), its states stream, and ``rnnstate.plot`` draws them.

Run: ``python examples/exchange_cells.py [OUT_DIR]`` (writes OUT_DIR/exchange_states.png).
"""
from __future__ import annotations

import sys
from typing import NamedTuple

import numpy as np
import torch

import rnnstate
from rnnstate import LSTMState, layers as L
from rnnstate.cells import Cell, LSTMCell


class ExchangeState(NamedTuple):
    h_a: torch.Tensor     # (B, U) stream a's hidden state
    c_a: torch.Tensor     # (B, U) stream a's cell state
    h_b: torch.Tensor
    c_b: torch.Tensor


class ExchangeCells(Cell):
    """Two LSTM cells, one per stream, mixing their cell states after every step.

    Input per step: the two streams' features concatenated, ``[x_a (features_a), x_b (rest)]``.
    Output per step: ``[h_a, h_b]`` (2U). State: ``ExchangeState(h_a, c_a, h_b, c_b)``.
    """

    state_type = ExchangeState

    def __init__(self, units, features_a, mix=0.5, **kwargs):
        super().__init__(**kwargs)
        self.units, self.features_a, self.mix = units, features_a, float(mix)
        self.state_size = [units] * 4
        self.output_size = 2 * units
        self.cell_a, self.cell_b = LSTMCell(units), LSTMCell(units)

    def _sublayers(self):                       # weights: stream a's LSTM, then stream b's
        return [self.cell_a, self.cell_b]

    def build(self, input_shape):
        B, F = input_shape[0], input_shape[-1]
        self.cell_a._maybe_build((B, self.features_a))
        self.cell_b._maybe_build((B, F - self.features_a))

    def step(self, x_t, state):
        x_a, x_b = x_t[:, :self.features_a], x_t[:, self.features_a:]          # (B, Fa), (B, Fb)
        y_a, s_a = self.cell_a.step(x_a, LSTMState(state.h_a, state.c_a))
        y_b, s_b = self.cell_b.step(x_b, LSTMState(state.h_b, state.c_b))
        m = self.mix
        c_a = (1 - m) * s_a.c + m * s_b.c                                       # the exchange
        c_b = (1 - m) * s_b.c + m * s_a.c
        return torch.cat([y_a, y_b], -1), ExchangeState(s_a.h, c_a, s_b.h, c_b)


def build_model(T, F_a, F_b, units, mix):
    """Functional model: two inputs -> one exchanging RNN -> a Dense head on the last step."""
    rgb, flow = rnnstate.Input(shape=(T, F_a), name="rgb"), rnnstate.Input(shape=(T, F_b), name="flow")
    both = L.Concatenate()([rgb, flow])
    res = L.RNN(ExchangeCells(units, F_a, mix=mix), return_sequences=True, return_state=True, name="exchange")(both)
    score = L.Dense(1, activation="sigmoid", name="score")(LastStep()(res.output))
    return rnnstate.Model([rgb, flow], [score, res.output, *res[1:]])


class LastStep(L.Layer):
    """(B, T, U) -> (B, U): the last timestep (rnnstate has no Lambda layer: configs never carry code)."""

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def forward(self, x, training=None):
        return x[:, -1]


def main(out_dir=None, seed=0):
    rnnstate.utils.set_random_seed(seed)
    B, T, F_a, F_b, U = 2, 6, 3, 2, 4
    rng = np.random.default_rng(seed)
    rgb = rng.standard_normal((B, T, F_a)).astype("float32")
    flow = rng.standard_normal((B, T, F_b)).astype("float32")
    checks = {}

    # 1. mix=0: exactly two independent LSTM layers with the same weights
    m0 = build_model(T, F_a, F_b, U, mix=0.0)
    _, seq0, *_ = m0([rgb, flow])
    cell = m0.get_layer("exchange").cell
    lstm_a, lstm_b = L.LSTM(U, return_sequences=True), L.LSTM(U, return_sequences=True)
    lstm_a(rgb), lstm_b(flow)
    lstm_a.set_weights(cell.cell_a.get_weights())
    lstm_b.set_weights(cell.cell_b.get_weights())
    indep = torch.cat([lstm_a(rgb), lstm_b(flow)], -1)
    checks["mix=0 equals two independent LSTMs"] = bool(torch.allclose(seq0, indep, atol=1e-6))

    # 2. mix=0.5: after every step both streams carry the same (averaged) cell state
    m = build_model(T, F_a, F_b, U, mix=0.5)
    m.set_weights(m0.get_weights())
    score, seq, h_a, c_a, h_b, c_b = m([rgb, flow])
    checks["mix=0.5: c_a == c_b (the average)"] = bool(torch.allclose(c_a, c_b, atol=1e-6))
    checks["exchange changes the outputs"] = not bool(torch.allclose(seq, seq0, atol=1e-4))
    print(f"outputs: score {tuple(score.shape)}, h sequence {tuple(seq.shape)} (h_a | h_b), "
          f"final states h_a, c_a, h_b, c_b each {tuple(c_a.shape)}")

    # 3. it trains: gradients reach both streams' weights through the exchange
    score.sum().backward()
    cell = m.get_layer("exchange").cell
    checks["gradients reach both cells"] = all(p.grad is not None and bool(p.grad.abs().sum() > 0)
                                               for p in (cell.cell_a.weight_hh, cell.cell_b.weight_hh))

    # 4. it streams: one step at a time equals the full run
    ys, states = m.stream().run([rgb, flow], chunk=1)
    checks["streamed == full run"] = bool(torch.allclose(ys[1], seq, atol=1e-6)) and \
        bool(torch.allclose(states["exchange"].c_a, c_a, atol=1e-6))

    for k, v in checks.items():
        print(f"check: {k}: {v}")
    if out_dir is not None:
        from rnnstate.plot import plot_states
        path = plot_states(m.get_layer("exchange"), torch.cat([torch.as_tensor(rgb), torch.as_tensor(flow)], -1),
                           f"{out_dir}/exchange_states.png")
        print(f"state plot: {path}")
        checks["plot"] = path
    return checks


if __name__ == "__main__":
    results = main(sys.argv[1] if len(sys.argv) > 1 else None)
    sys.exit(0 if all(v for v in results.values()) else 1)
