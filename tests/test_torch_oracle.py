"""torch's own nn.LSTM / nn.GRU / nn.RNN with converted weights are the second oracle."""
import numpy as np
import pytest
import torch
from torch import nn

from rnnstate import layers as L

from .conftest import B, F, T, U


@pytest.mark.parametrize("kind,torch_cls", [("LSTM", nn.LSTM), ("GRU", nn.GRU), ("SimpleRNN", nn.RNN)])
@pytest.mark.parametrize("path", ["auto", "loop"])
def test_matches_torch_module(kind, torch_cls, path):
    torch.manual_seed(0)
    ref = torch_cls(F, U, batch_first=True)
    layer = getattr(L, kind)(U, return_sequences=True, return_state=True, path=path)
    layer(torch.zeros(1, T, F))
    # torch layout -> Keras layout by hand (independent of rnnstate._layout): transpose; GRU r,z,n -> z,r,h
    w_ih, w_hh = ref.weight_ih_l0.detach().numpy(), ref.weight_hh_l0.detach().numpy()
    b_ih, b_hh = ref.bias_ih_l0.detach().numpy(), ref.bias_hh_l0.detach().numpy()
    if kind == "GRU":
        perm = lambda a: np.concatenate([a[U:2 * U], a[:U], a[2 * U:]], 0)   # noqa: E731
        layer.set_weights([perm(w_ih).T, perm(w_hh).T, np.stack([perm(b_ih), perm(b_hh)])])
    else:
        layer.set_weights([w_ih.T, w_hh.T, b_ih + b_hh])
    x = torch.randn(B, T, F)
    h0 = torch.randn(1, B, U)
    if kind == "LSTM":
        c0 = torch.randn(1, B, U)
        y, (h, c) = ref(x, (h0, c0))
        out = layer(x, initial_state=[h0[0], c0[0]])
        torch.testing.assert_close(out.c, c[0], atol=1e-5, rtol=1e-5)
    else:
        y, h = ref(x, h0)
        out = layer(x, initial_state=[h0[0]])
    torch.testing.assert_close(out.output, y, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.h, h[0], atol=1e-5, rtol=1e-5)


def test_layers_are_torch_modules_usable_in_a_torch_training_loop():
    lstm = L.LSTM(U, return_sequences=True)
    head = nn.Linear(U, 1)
    model = nn.Sequential(lstm, head)
    x, y = torch.randn(8, T, F), torch.randn(8, T, 1)
    model(x)                                          # builds lazily
    names = [n for n, _ in model.named_parameters()]
    assert "0.cell.weight_ih" in names and "0.cell.weight_hh" in names
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    lstm.train()                                       # torch-style mode switch is honoured
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    sd = model.state_dict()
    assert set(k for k in sd if k.startswith("0.")) == {"0.cell.weight_ih", "0.cell.weight_hh", "0.cell.bias_ih"}
