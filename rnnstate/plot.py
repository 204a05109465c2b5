"""Plot what a recurrent network carries over time: h, c and gate activations, per layer.

    rnnstate.plot.plot_states(model, x, "states.png")                 # lines, first 8 units
    rnnstate.plot.plot_states(layer, x, "heat.png", kind="heatmap")   # units x time, every unit

One row per recurrent layer (a Bidirectional layer gives a forward and a backward row); columns
``h``, ``c`` (LSTM), then one per gate (LSTM ``i, f, g, o``; GRU ``z, r, h~``); for custom cells the
output, then each of its states (no gates). The x axis is the
input timestep (a backward layer's sequences are put back in input order). Sample ``sample`` of the
batch is drawn.

How: the model runs once inside a capturing :class:`~rnnstate.states._context.StateContext` that records
each recurrent layer's input and start state (stateful layers start from their carried state and
keep it: plotting never advances a state). For LSTM/GRU/SimpleRNN cells each layer is then rerun
with ``return_cell_sequence=True`` / ``return_gate_sequences=True``; other cells run the reference
loop, which gives their state sequences (no gates). Drawn with matplotlib's Agg canvas directly:
headless, no pyplot, no global backend change.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from . import _checks

__all__ = ["plot_states", "state_sequences"]

_GATE_LABELS = {"i": "input gate i", "f": "forget gate f", "g": "candidate g", "o": "output gate o",
                "z": "update gate z", "r": "reset gate r", "h": "candidate h~"}
_UNIT_RANGE = {"gate_i", "gate_f", "gate_o", "gate_z", "gate_r"}


def state_sequences(model_or_layer, x, initial_state=None):
    """Run once and return, per recurrent layer, ``(name, {"h": (B, T, U), "c": ..., "gate_i": ...})`` as
    numpy arrays in input time order (custom cells: ``{"output": ..., <each state>: ...}``)."""
    from .states import access
    from .states._context import StateContext

    leaves = access.leaf_rnns(model_or_layer)
    if not leaves:
        raise _checks.plot_nothing(model_or_layer)
    ctx = StateContext(use_stateful=True, capture=True, strict=False)
    with torch.no_grad(), access.peek(model_or_layer), ctx:
        if initial_state is not None:
            model_or_layer(x, initial_state=initial_state, training=False)   # converts x to its device
        else:
            model_or_layer(x, training=False)
    out = []
    with torch.no_grad():                   # outside the context: the reruns below are not captured
        for layer in list(ctx.order):
            xs, s0 = ctx.inputs[layer]
            seqs = _layer_sequences(layer, xs, s0)
            if layer.go_backwards:
                seqs = {k: v.flip(1) for k, v in seqs.items()}
            out.append((layer.name, {k: v.detach().cpu().numpy() for k, v in seqs.items()}))
    return out


def _layer_sequences(layer, x, s0):
    from .cells import GRUCell, LSTMCell, SimpleRNNCell
    from .layers.rnn import RNN, _state_names
    cell = layer.cell
    if isinstance(cell, (LSTMCell, GRUCell, SimpleRNNCell)):
        has_c = isinstance(cell, LSTMCell)
        has_g = not isinstance(cell, SimpleRNNCell)
        clone = RNN(type(cell).from_config(cell.get_config()), return_sequences=True,
                    go_backwards=layer.go_backwards, return_cell_sequence=has_c, return_gate_sequences=has_g,
                    name=layer.name + "_plot")
        clone._maybe_build(tuple(x.shape))
        clone.set_weights(layer.get_weights())
        clone.to(x.device)
        res = clone(x, initial_state=list(s0), training=False)
        if not (has_c or has_g):
            return {"h": res}
        seqs = {"h": res.output}
        if has_c:
            seqs["c"] = res.c_seq
        for f in res._fields:
            if f.startswith("gate_"):
                seqs[f] = getattr(res, f)
        return seqs
    from .loop.reference import time_loop
    res = time_loop(cell, x, s0, go_backwards=layer.go_backwards, collect_states=True, training=False)
    seqs = {"output": res.outputs}                   # a custom cell's output need not be one of its states
    for n, s in zip(_state_names(cell), res.state_seqs):
        seqs[n] = s
    return seqs


def plot_states(model_or_layer, x, path, units=None, *, kind="lines", sample=0, initial_state=None, title=None,
                parts="all"):
    """Draw h, c and gates over time for every recurrent layer of `model_or_layer` run on `x`; write a PNG.

    Args:
        model_or_layer: a model, or a recurrent layer (LSTM, GRU, SimpleRNN, RNN, Bidirectional).
        x: the input batch (B, T, F) (what the model takes).
        path: the PNG file to write (folders are created).
        units: unit indices to draw (default: the first 8 for lines, all for heatmaps).
        kind: ``"lines"`` (one line per unit over time) or ``"heatmap"`` (units x time).
        sample: which sample of the batch to draw.
        initial_state: passed to a single layer's call.
        title: figure title (default: the object's name).
        parts: ``"all"`` (states then gates), ``"states"`` (h, c: one shared y scale per row, so their
            magnitudes compare at a glance) or ``"gates"`` (the gates only, on 0..1 / -1..1).

    Returns: `path`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    _checks.one_of(model_or_layer, "kind", kind, ("lines", "heatmap"))
    _checks.one_of(model_or_layer, "parts", parts, ("all", "states", "gates"))
    layers = state_sequences(model_or_layer, x, initial_state)
    if parts != "all":
        want_gate = parts == "gates"
        layers = [(n, {k: v for k, v in seqs.items() if k.startswith("gate_") == want_gate}) for n, seqs in layers]
        layers = [(n, seqs) for n, seqs in layers if seqs]
        if not layers:
            raise _checks.error(model_or_layer, f"argument `parts={parts!r}`: nothing to draw (no gated "
                                                f"recurrent layer); use parts='states' or 'all'.")
    ncols = max(len(seqs) for _, seqs in layers)
    fig = Figure(figsize=(3.2 * ncols, 2.4 * len(layers) + 0.6), constrained_layout=True)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(layers), ncols, squeeze=False)
    for r, (name, seqs) in enumerate(layers):
        for c in range(ncols):
            axes[r][c].set_visible(c < len(seqs))
        states = [k for k in seqs if not k.startswith("gate_")]
        lim = max((float(np.abs(seqs[k][sample]).max()) for k in states), default=1.0) * 1.05 or 1.0
        for c, (key, arr) in enumerate(seqs.items()):
            ax = axes[r][c]
            a = arr[sample]                                                   # (T, U)
            U = a.shape[1]
            sel = _units(model_or_layer, units, U, kind)
            label = _GATE_LABELS[key[5:]] if key.startswith("gate_") else ("cell state c" if key == "c" else
                                                                           "hidden state h" if key == "h" else key)
            ax.set_title(f"{name}: {label}", fontsize=9)
            if kind == "heatmap":
                part = a[:, sel].T                                            # (units, T)
                if key in _UNIT_RANGE:                                        # sigmoid gates: 0..1
                    cmap, lo, hi = "viridis", 0.0, 1.0
                else:                                                         # signed: centred on 0
                    lim = float(np.abs(part).max()) or 1.0
                    cmap, lo, hi = "RdBu_r", -lim, lim
                im = ax.imshow(part, aspect="auto", origin="lower", cmap=cmap, vmin=lo, vmax=hi,
                               interpolation="nearest")
                ax.set_ylabel("unit")
                ax.set_yticks(range(len(sel)))
                ax.set_yticklabels([str(u) for u in sel], fontsize=7)
                fig.colorbar(im, ax=ax)
            else:
                t = np.arange(a.shape[0])
                for u in sel:
                    ax.plot(t, a[:, u], marker="o" if a.shape[0] <= 20 else None, ms=3, label=f"unit {u}")
                if len(sel) <= 8 and (r, c) == (0, 0):
                    ax.legend(fontsize=7)
                if key.startswith("gate_"):                                   # sigmoid 0..1, tanh -1..1
                    ax.set_ylim(-0.05 if key in _UNIT_RANGE else -1.05, 1.05)
                    ax.set_ylabel("activation")
                else:                                                         # h, c: one scale per row
                    ax.set_ylim(-lim, lim)
                    ax.set_ylabel("value")
                    ax.axhline(0.0, color="0.8", lw=0.8, zorder=0)
            ax.set_xlabel("timestep")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title or f"states of {_checks.who(model_or_layer)} (sample {sample})")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    return path


def _units(obj, units, n, kind):
    if units is None:
        return list(range(n)) if kind == "heatmap" else list(range(min(n, 8)))
    sel = [units] if isinstance(units, (int, np.integer)) else list(units)
    if not sel or any(not isinstance(u, (int, np.integer)) or u < 0 or u >= n for u in sel):
        raise _checks.plot_units(obj, units, n)
    return [int(u) for u in sel]
