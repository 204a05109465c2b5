"""fit / evaluate / predict on torch.distributed: 2 CPU processes (gloo, spawned here) against one
process over the same global batches.  The oracle is the ordinary single-process run: identical
initial weights and shuffling (same seed), so weights after training, History, evaluate and
predict must agree to float rounding; rank 0's checkpoint resumes on one process; a stop request on
one rank stops both; only rank 0 prints and writes files."""
import contextlib
import io
import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import rnnstate
from rnnstate import layers as L
from rnnstate.training import Callback, CSVLogger, ModelCheckpoint, optimizers
from rnnstate.utils import set_random_seed

WORLD = 2
N, T, F, C = 17, 5, 3, 2          # 17 rows, global batch 8: chunks 4/4, 4/4, then 1/0 (rank 1 empty)
BATCH, EPOCHS = 8, 3


def _data():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((N, T, F)).astype("float32")
    y = np.eye(C, dtype="float32")[rng.integers(0, C, N)]
    return x, y


def _model():
    set_random_seed(0)
    inp = rnnstate.Input((T, F))
    m = rnnstate.Model(inp, L.Dense(C, activation="softmax")(L.LSTM(4)(inp)))
    # summed running means and summed confusion counts (auc)
    m.compile(optimizers.SGD(learning_rate=0.2, momentum=0.5), "categorical_crossentropy",
              metrics=["accuracy", "mae", "auc"])
    return m


def _stateful_model(batch):
    """A stateful LSTM whose batch is the per-process batch (its carried states are per row)."""
    set_random_seed(0)
    inp = rnnstate.Input((T, F), batch_size=batch)
    m = rnnstate.Model(inp, L.Dense(C, activation="softmax")(L.LSTM(4, stateful=True)(inp)))
    m.compile(optimizers.SGD(learning_rate=0.2), "categorical_crossentropy")
    return m


def _fit_stateful(m, x, y):
    return m.fit(x[:16], y[:16], batch_size=8, epochs=2, shuffle=False, verbose=0)


def _evaluate(m, x, y):
    """evaluate on a copy compiled with a torchmetrics metric too (it syncs itself across ranks)."""
    import torchmetrics   # here: the spawned processes import this module, and it costs seconds
    copy = _model()
    copy.load_state_dict(m.state_dict())
    copy.compile("sgd", "categorical_crossentropy", metrics=["auc", torchmetrics.MeanSquaredError()])
    return copy.evaluate(x, y, batch_size=BATCH, verbose=0, return_dict=True)


def _fit(m, x, y, callbacks=()):
    np.random.seed(3)   # the shuffling
    return m.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=True, validation_data=(x[:9], y[:9]),
                 verbose=2, callbacks=list(callbacks))


class _StopOnRank(Callback):
    """Asks to stop after the first epoch on one rank only."""

    def __init__(self, rank):
        super().__init__()
        self.rank = rank

    def on_epoch_end(self, epoch, logs=None):
        if dist.get_rank() == self.rank:
            self.model.stop_training = True


def _loader(x, y):
    """The user's own sharding: a DataLoader with a DistributedSampler (rank r reads rows r, r+2, ...;
    batches of 4 per rank, so that each step's rows together are rows 8k..8k+7)."""
    from torch.utils.data import DataLoader, TensorDataset
    from torch.utils.data.distributed import DistributedSampler
    ds = TensorDataset(torch.from_numpy(x[:16]), torch.from_numpy(y[:16]))
    return DataLoader(ds, batch_size=4, sampler=DistributedSampler(ds, shuffle=False))


def _worker(rank, port, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        x, y = _data()
        m = _model()
        if rank == 1:   # a different start on rank 1: DDP must broadcast rank 0's weights
            with torch.no_grad():
                for p in m.parameters():
                    p.add_(1.0)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            h = _fit(m, x, y, [ModelCheckpoint(os.path.join(out, "ckpt.safetensors"), save_best_only=False),
                               CSVLogger(os.path.join(out, "log.csv"))])
            ev = _evaluate(m, x, y)
            pred = m.predict(x, batch_size=BATCH, verbose=0)
        weights = {k: v.detach().numpy() for k, v in m.state_dict().items()}
        m2 = _model()
        h2 = m2.fit(x, y, batch_size=BATCH, epochs=3, verbose=0, callbacks=[_StopOnRank(1)])
        m3, loader = _model(), _loader(x, y)
        h3 = m3.fit(loader, epochs=2, verbose=0)
        loader_weights = {"loader." + k: v.detach().numpy() for k, v in m3.state_dict().items()}
        m4 = _stateful_model(batch=4)   # 4 rows per process: rank r carries rows 4r..4r+3 of each global batch
        _fit_stateful(m4, x, y)
        loader_weights.update({"stateful." + k: v.detach().numpy() for k, v in m4.state_dict().items()})
        loader_weights["stateful.h"], loader_weights["stateful.c"] = (
            s.numpy() for s in m4.get_states(as_list=True))
        np.savez(os.path.join(out, f"rank{rank}.npz"), pred=pred, **weights, **loader_weights)
        with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
            json.dump({"history": h.history, "evaluate": ev, "printed": printed.getvalue(),
                       "stopped_epochs": h2.epoch, "loader_history": h3.history,
                       "sampler_epoch": loader.sampler.epoch}, f)
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("ddp"))
    mp.spawn(_worker, args=(_free_port(), out), nprocs=WORLD, join=True)
    ranks = []
    for r in range(WORLD):
        with open(os.path.join(out, f"rank{r}.json")) as f:
            info = json.load(f)
        info["arrays"] = dict(np.load(os.path.join(out, f"rank{r}.npz")))
        ranks.append(info)
    return out, ranks


@pytest.fixture(scope="module")
def one_process():
    torch.set_num_threads(1)
    x, y = _data()
    m = _model()
    h = _fit(m, x, y)
    return m, h, x, y


def test_weights_and_history_match_one_process(two_ranks, one_process):
    _, ranks = two_ranks
    m, h, x, y = one_process
    for info in ranks:
        for k, v in m.state_dict().items():
            np.testing.assert_allclose(info["arrays"][k], v.detach().numpy(), rtol=0, atol=1e-6, err_msg=k)
        assert list(info["history"]) == list(h.history)
        for k, values in h.history.items():
            np.testing.assert_allclose(info["history"][k], values, rtol=1e-6, atol=1e-6, err_msg=k)
    start = _model().state_dict()   # training moved the weights (the comparison is not vacuous)
    assert max(float((v - start[k]).abs().max()) for k, v in m.state_dict().items()) > 1e-2


def test_evaluate_and_predict_gather_in_input_order(two_ranks, one_process):
    _, ranks = two_ranks
    m, _, x, y = one_process
    ev = _evaluate(m, x, y)
    assert set(ev) == {"loss", "auc", "mean_squared_error"}
    pred = m.predict(x, batch_size=BATCH, verbose=0)
    for info in ranks:
        assert info["arrays"]["pred"].shape == (N, C)
        np.testing.assert_allclose(info["arrays"]["pred"], pred, rtol=0, atol=1e-6)
        for k, v in ev.items():
            assert info["evaluate"][k] == pytest.approx(v, abs=1e-6), k


def test_rank0_checkpoint_resumes_on_one_process(two_ranks, one_process):
    out, ranks = two_ranks
    m, _, x, y = one_process
    loaded = rnnstate.models.load_model(os.path.join(out, "ckpt.safetensors"))
    for k, v in loaded.state_dict().items():
        np.testing.assert_allclose(v.detach().numpy(), ranks[0]["arrays"][k], rtol=0, atol=0, err_msg=k)
    # one more epoch from the checkpoint equals one more epoch of the single-process model
    np.random.seed(11)
    loaded.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    np.random.seed(11)
    m.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    for (k, a), b in zip(loaded.state_dict().items(), m.state_dict().values()):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=0, atol=1e-5, err_msg=k)


def test_rank0_prints_and_writes_logs(two_ranks):
    out, ranks = two_ranks
    assert "Epoch 1/3" in ranks[0]["printed"] and "Epoch 3/3" in ranks[0]["printed"]
    assert ranks[1]["printed"] == ""
    with open(os.path.join(out, "log.csv")) as f:
        rows = f.read().strip().splitlines()
    assert len(rows) == 1 + EPOCHS
    header = rows[0].split(",")
    last = dict(zip(header, rows[-1].split(",")))
    assert float(last["loss"]) == pytest.approx(ranks[0]["history"]["loss"][-1], rel=1e-6)


def test_a_stop_on_one_rank_stops_all(two_ranks):
    _, ranks = two_ranks
    assert [info["stopped_epochs"] for info in ranks] == [[0], [0]]


def test_a_dataloader_with_distributed_sampler_is_left_alone(two_ranks):
    _, ranks = two_ranks
    x, y = _data()
    m = _model()
    h = m.fit(x[:16], y[:16], batch_size=8, epochs=2, shuffle=False, verbose=0)   # the same global batches
    for info in ranks:
        assert info["sampler_epoch"] == 1   # set_epoch called every epoch
        for k, v in m.state_dict().items():
            np.testing.assert_allclose(info["arrays"]["loader." + k], v.detach().numpy(), rtol=0, atol=1e-6)
        np.testing.assert_allclose(info["loader_history"]["loss"], h.history["loss"], rtol=1e-6)


def test_stateful_layers_carry_each_ranks_own_rows(two_ranks):
    """One process with 8 rows per batch carries the same per-row states as 2 processes with 4 each:
    weights after training and each rank's carried states (its rows) agree."""
    _, ranks = two_ranks
    x, y = _data()
    m = _stateful_model(batch=8)
    _fit_stateful(m, x, y)
    h, c = (s.numpy() for s in m.get_states(as_list=True))
    for r, info in enumerate(ranks):
        for k, v in m.state_dict().items():
            np.testing.assert_allclose(info["arrays"]["stateful." + k], v.detach().numpy(), rtol=0, atol=1e-6)
        np.testing.assert_allclose(info["arrays"]["stateful.h"], h[4 * r:4 * r + 4], rtol=0, atol=1e-6)
        np.testing.assert_allclose(info["arrays"]["stateful.c"], c[4 * r:4 * r + 4], rtol=0, atol=1e-6)
