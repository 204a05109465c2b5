"""Tiny models satisfying the TrainingMixin contract, built from plain torch modules."""

import os
from collections import namedtuple

import numpy as np
import torch
from torch import nn

from rnnstate.training import TrainingMixin

Sym = namedtuple("Sym", ["shape", "dtype"])


class FakeModel(TrainingMixin, nn.Module):
    """Base: subclasses set input/output names and symbolic specs and implement ``_run_graph``."""

    def save(self, path):
        with open(path, "wb") as f:
            torch.save(self.state_dict(), f)
        self.saved.append(("save", os.fspath(path)))

    def save_weights(self, path):
        with open(path, "wb") as f:
            torch.save(self.state_dict(), f)
        self.saved.append(("save_weights", os.fspath(path)))


class SeqClassifier(FakeModel):
    """x (batch, time, features) -> LSTM -> Dense softmax; with ``return_state`` the outputs are
    ``[probs, h, c]`` named ``['dense', 'h', 'c']``."""

    def __init__(self, features=3, units=8, classes=3, timesteps=5, return_state=False, logits=False):
        super().__init__()
        self.lstm = nn.LSTM(features, units, batch_first=True)
        self.dense = nn.Linear(units, classes)
        self.return_state, self.logits = return_state, logits
        self.input_names = ["x"]
        self.inputs = [Sym((None, timesteps, features), torch.float32)]
        self.output_names = ["dense", "h", "c"] if return_state else ["dense"]
        self.outputs = [Sym((None, classes), torch.float32)]
        if return_state:
            self.outputs += [Sym((None, units), torch.float32)] * 2
        self.saved = []

    def _run_graph(self, inputs, training):
        seq, (h, c) = self.lstm(inputs[0])
        z = self.dense(seq[:, -1])
        probs = z if self.logits else torch.softmax(z, dim=-1)
        return [probs, h[0], c[0]] if self.return_state else [probs]


class DenseModel(FakeModel):
    """One Linear layer (optionally followed by an activation); Keras-parity tests copy weights in."""

    def __init__(self, n_in=4, n_out=1, activation=None):
        super().__init__()
        self.dense = nn.Linear(n_in, n_out)
        self.activation = activation
        self.input_names, self.output_names = ["x"], ["dense"]
        self.inputs = [Sym((None, n_in), torch.float32)]
        self.outputs = [Sym((None, n_out), torch.float32)]
        self.saved = []

    def _run_graph(self, inputs, training):
        y = self.dense(inputs[0])
        if self.activation == "sigmoid":
            y = torch.sigmoid(y)
        elif self.activation == "softmax":
            y = torch.softmax(y, dim=-1)
        return [y]


class TwoInputModel(FakeModel):
    """Inputs 'tokens' (int64, batch x time, for an Embedding) and 'extra' (float, batch x 2);
    outputs 'out' (regression, batch x 1) and 'aux' (batch x 2)."""

    def __init__(self, vocab=10, timesteps=4):
        super().__init__()
        self.emb = nn.Embedding(vocab, 4)
        self.gru = nn.GRU(4, 6, batch_first=True)
        self.head = nn.Linear(6 + 2, 1)
        self.aux = nn.Linear(6, 2)
        self.input_names, self.output_names = ["tokens", "extra"], ["out", "aux"]
        self.inputs = [Sym((None, timesteps), torch.int64), Sym((None, 2), torch.float32)]
        self.outputs = [Sym((None, 1), torch.float32), Sym((None, 2), torch.float32)]
        self.seen_dtypes = []
        self.saved = []

    def _run_graph(self, inputs, training):
        tokens, extra = inputs
        self.seen_dtypes.append((tokens.dtype, extra.dtype))
        _, h = self.gru(self.emb(tokens))
        h = h[0]
        return [self.head(torch.cat([h, extra], dim=-1)), self.aux(h)]


def toy_sequence_data(n=96, timesteps=5, features=3, classes=3, seed=0):
    """A learnable task: the class is the argmax of the per-feature sums over time."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, timesteps, features)).astype("float64")
    labels = x.sum(axis=1)[:, :classes].argmax(axis=-1)
    return x, np.eye(classes, dtype="float32")[labels], labels
