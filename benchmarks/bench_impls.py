"""Implementations under test: torch peers, Keras/JAX peers, and rnnstate.

Every ``setup_*`` function does all the fallible work (construction, weight
transplant, a first call, feature probing) up front and returns either a ready
``Impl`` with a zero-argument callable to time, or an ``Impl`` whose status
says why it is missing.  Nothing in here catches errors inside a timed call.

Weights are generated once per (cell, shape) in *Keras layout* and copied into
every implementation, so all of them compute the same function on the same
inputs:

* LSTM  kernel (F, 4U), recurrent_kernel (U, 4U), bias (4U,), gates i, f, c, o.
  torch uses the same gate order i, f, g, o: W_ih = kernel.T, W_hh = rec.T,
  b_ih = bias, b_hh = 0.
* GRU   (Keras default reset_after=True) kernel (F, 3U) gates z, r, h;
  bias (2, 3U) = [input bias, recurrent bias].  torch's GRU is the
  reset_after formulation with gate order r, z, n, so the blocks are permuted
  [z, r, h] -> [r, z, h]; b_ih = bias[0], b_hh = bias[1] (both permuted).
* SimpleRNN kernel (F, U), recurrent (U, U), bias (U,) -> nn.RNN(tanh),
  b_hh = 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch
from torch import nn

GATES = {"lstm": 4, "gru": 3, "rnn": 1}
KERAS_LAYER = {"lstm": "LSTM", "gru": "GRU", "rnn": "SimpleRNN"}
TORCH_FUSED = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}

# Learning rate of the SGD step included in every fwd+bwd measurement
# (plain ``p -= LR * p.grad`` for torch and rnnstate-as-module -- the update
# torch.optim.SGD does without momentum, written out because constructing the
# first torch.optim optimizer costs ~1 s of imports; keras SGD for Keras
# train_on_batch; rnnstate's SGD for rnnstate train_on_batch).
LR = 1e-4


@dataclass
class Impl:
    name: str
    fn: Optional[Callable[[], Any]] = None
    status: str = "ok"          # ok | missing | error | n/a
    reason: str = ""
    info: Dict[str, Any] = field(default_factory=dict)
    # called after timing, returns extra info (e.g. rnnstate's last_path)
    post: Optional[Callable[[], Dict[str, Any]]] = None
    # output used for the numerical cross-check (first output tensor/array)
    check_out: Any = None
    peer: bool = True           # failures of peers make --smoke exit non-zero

    @classmethod
    def missing(cls, name, reason, peer=True, status="missing"):
        return cls(name=name, status=status, reason=reason, peer=peer)


def err_text(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    first = msg[0] if msg else ""
    if len(first) > 200:
        first = first[:200] + "..."
    return f"{type(exc).__name__}: {first}"


# --------------------------------------------------------------------------
# Data and weights
# --------------------------------------------------------------------------


def make_keras_weights(cell: str, F: int, U: int, seed: int) -> List[np.ndarray]:
    rng = np.random.default_rng(seed)
    k = 1.0 / np.sqrt(U)
    G = GATES[cell]

    def u(*shape):
        return rng.uniform(-k, k, size=shape).astype(np.float32)

    kernel = u(F, G * U)
    rec = u(U, G * U)
    bias = u(2, 3 * U) if cell == "gru" else u(G * U)
    return [kernel, rec, bias]


def make_data(B, T, F, U, seed):
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((B, T, F)).astype(np.float32)
    y = (0.5 * rng.standard_normal((B, T, U))).astype(np.float32)
    return x, y


def _gru_perm(a: np.ndarray, U: int) -> np.ndarray:
    z, r, h = a[..., :U], a[..., U:2 * U], a[..., 2 * U:]
    return np.concatenate([r, z, h], axis=-1)


def load_torch_weights(mod: nn.Module, cell: str, weights: List[np.ndarray],
                       suffix: str = "_l0") -> None:
    """Copy Keras-layout weights into nn.LSTM/GRU/RNN (suffix '_l0') or a
    torch cell module (suffix '')."""
    kernel, rec, bias = weights
    U = rec.shape[0]
    if cell == "gru":
        w_ih = _gru_perm(kernel, U).T
        w_hh = _gru_perm(rec, U).T
        b_ih = _gru_perm(bias[0], U)
        b_hh = _gru_perm(bias[1], U)
    else:
        w_ih, w_hh, b_ih = kernel.T, rec.T, bias
        b_hh = np.zeros_like(bias)
    with torch.no_grad():
        for name, val in (("weight_ih", w_ih), ("weight_hh", w_hh),
                          ("bias_ih", b_ih), ("bias_hh", b_hh)):
            p = getattr(mod, name + suffix)
            p.copy_(torch.from_numpy(np.ascontiguousarray(val)))


def first_tensor(obj):
    if isinstance(obj, (list, tuple)):
        return first_tensor(obj[0]) if obj else None
    if isinstance(obj, dict):
        return first_tensor(next(iter(obj.values()))) if obj else None
    return obj


def all_tensors(obj) -> list:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        out = []
        for o in obj:
            out.extend(all_tensors(o))
        return out
    if isinstance(obj, dict):
        out = []
        for o in obj.values():
            out.extend(all_tensors(o))
        return out
    return []


def to_numpy(a) -> Optional[np.ndarray]:
    if a is None:
        return None
    if isinstance(a, torch.Tensor):
        return a.detach().float().cpu().numpy()
    return np.asarray(a)


# --------------------------------------------------------------------------
# torch peers
# --------------------------------------------------------------------------


def torch_fused(cell, F, U, weights, device):
    kw = {"nonlinearity": "tanh"} if cell == "rnn" else {}
    m = TORCH_FUSED[cell](F, U, batch_first=True, **kw)
    load_torch_weights(m, cell, weights)
    return m.to(device)


def setup_torch_fwd(cell, x_t, F, U, weights, device) -> Impl:
    m = torch_fused(cell, F, U, weights, device).eval()

    def fn():
        with torch.inference_mode():
            return m(x_t)[0]

    out = fn()
    return Impl("torch", fn=fn, check_out=to_numpy(out),
                info={"module": type(m).__name__})


def setup_train_step(name, module: nn.Module, call, x_t, y_t, peer=True,
                     info=None) -> Impl:
    """One training step: forward, mean-square loss over the full output
    sequence, backward, SGD update p -= LR * grad."""
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        return Impl.missing(name, "module has no trainable parameters",
                            peer=peer, status="error")
    module.train()

    def fn():
        for p in params:
            p.grad = None
        out = call(x_t)
        loss = torch.mean((out - y_t) ** 2)
        loss.backward()
        with torch.no_grad():
            for p in params:
                p.add_(p.grad, alpha=-LR)
        return loss

    fn()  # fail here (setup), not in the timed loop
    return Impl(name, fn=fn, peer=peer, info=info or {})


def setup_torch_step(cell, x_t, y_t, F, U, weights, device) -> Impl:
    m = torch_fused(cell, F, U, weights, device)
    return setup_train_step("torch", m, lambda x: m(x)[0], x_t, y_t,
                            info={"module": type(m).__name__,
                                  "optimizer": f"p -= {LR} * p.grad"})


def setup_cell_loop(x_t, F, U, weights, device):
    """nn.LSTMCell Python loop collecting h_t and c_t (inference_mode)."""
    cell = nn.LSTMCell(F, U)
    load_torch_weights(cell, "lstm", weights, suffix="")
    cell = cell.to(device).eval()
    B, T, _ = x_t.shape

    def fn():
        with torch.inference_mode():
            h = x_t.new_zeros(B, U)
            c = x_t.new_zeros(B, U)
            hs, cs = [], []
            for t in range(T):
                h, c = cell(x_t[:, t], (h, c))
                hs.append(h)
                cs.append(c)
            return torch.stack(hs, 1), torch.stack(cs, 1)

    h_seq, c_seq = fn()
    imp = Impl("cell_loop", fn=fn, check_out=to_numpy(h_seq),
               info={"collects": "h_t and c_t, stacked to (B,T,U)"})
    imp.info["_c_seq"] = to_numpy(c_seq)
    return imp


# --------------------------------------------------------------------------
# Keras / JAX peers
# --------------------------------------------------------------------------


def import_keras():
    """Import Keras 3 on the JAX backend. Returns (keras, jax, error)."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    if os.environ["KERAS_BACKEND"] != "jax":
        return None, None, (f"KERAS_BACKEND={os.environ['KERAS_BACKEND']} "
                            "is set; this harness benchmarks the jax backend")
    try:
        import jax  # noqa: F401
        import keras
    except Exception as exc:  # ImportError or a broken install
        return None, None, err_text(exc)
    if keras.backend.backend() != "jax":
        return None, None, (f"keras backend is {keras.backend.backend()!r}, "
                            "expected 'jax' (keras was imported earlier?)")
    return keras, jax, None


def keras_model(keras, cell, T, F, U, weights, return_sequences=True):
    layer = getattr(keras.layers, KERAS_LAYER[cell])(
        U, return_sequences=return_sequences)
    m = keras.Sequential([keras.Input((T, F)), layer])
    layer.set_weights(weights)
    return m


def setup_keras_predict(keras, cell, x_np, T, F, U, weights,
                        return_sequences=True) -> Impl:
    m = keras_model(keras, cell, T, F, U, weights, return_sequences)
    B = x_np.shape[0]

    def fn():
        # batch_size=B: predict would otherwise split B>32 into 32-row batches
        return m.predict(x_np, verbose=0, batch_size=B)

    out = fn()
    return Impl("keras_api", fn=fn, check_out=np.asarray(out),
                info={"path": f"model.predict(x, verbose=0, batch_size={B})"})


def setup_keras_jit(keras, jax, cell, x_np, T, F, U, weights,
                    return_sequences=True) -> Impl:
    m = keras_model(keras, cell, T, F, U, weights, return_sequences)
    tv = [v.value for v in m.trainable_variables]
    ntv = [v.value for v in m.non_trainable_variables]

    @jax.jit
    def f(tv, ntv, x):
        return m.stateless_call(tv, ntv, x, training=False)[0]

    xj = jax.device_put(x_np)

    def fn():
        return f(tv, ntv, xj).block_until_ready()

    out = fn()
    return Impl("keras_jit", fn=fn, check_out=np.asarray(out),
                info={"path": "jax.jit(model.stateless_call)(...).block_until_ready()",
                      "jax_device": str(xj.devices().pop())
                      if hasattr(xj, "devices") else "?"})


def setup_keras_train(keras, cell, x_np, y_np, T, F, U, weights) -> Impl:
    m = keras_model(keras, cell, T, F, U, weights)
    m.compile(optimizer=keras.optimizers.SGD(learning_rate=LR), loss="mse")

    def fn():
        # returns the loss as a Python/numpy scalar -> synchronous
        return m.train_on_batch(x_np, y_np)

    fn()
    return Impl("keras_api", fn=fn,
                info={"path": f"model.train_on_batch(x, y), SGD(lr={LR}), loss='mse'"})


# --------------------------------------------------------------------------
# rnnstate
# --------------------------------------------------------------------------


class RnnState:
    """Probe of the rnnstate package.  Never raises: ``available`` is False
    and ``error`` says why when the package or a required name is missing."""

    def __init__(self, repo_root: Optional[str] = None):
        self.available = False
        self.error = ""
        self.mod = None
        self.layers: Dict[str, Any] = {}
        self.Sequential = None
        self.Input = None
        self.file = None
        self.version = None
        self.missing_names: List[str] = []
        self._import(repo_root)

    def _import(self, repo_root):
        import importlib
        import sys
        try:
            mod = importlib.import_module("rnnstate")
        except ModuleNotFoundError as exc:
            if exc.name != "rnnstate" or not repo_root:
                self.error = err_text(exc)
                return
            # not installed: try the source tree (flat or src/ layout)
            for cand in (repo_root, os.path.join(repo_root, "src")):
                if os.path.isdir(os.path.join(cand, "rnnstate")) and cand not in sys.path:
                    sys.path.insert(0, cand)
            try:
                mod = importlib.import_module("rnnstate")
            except Exception as exc2:
                self.error = err_text(exc2)
                return
        except Exception as exc:
            self.error = err_text(exc)
            return
        self.mod = mod
        self.file = getattr(mod, "__file__", None)
        self.version = getattr(mod, "__version__", None)
        try:
            lay = importlib.import_module("rnnstate.layers")
        except Exception as exc:
            lay = getattr(mod, "layers", None)
            if lay is None:
                self.error = f"import rnnstate.layers failed: {err_text(exc)}"
                return
        for cell, name in KERAS_LAYER.items():
            cls = getattr(lay, name, None)
            if cls is None:
                self.missing_names.append(f"rnnstate.layers.{name}")
            else:
                self.layers[cell] = cls
        self.Sequential = getattr(mod, "Sequential", None)
        if self.Sequential is None:
            self.missing_names.append("rnnstate.Sequential")
        self.Input = getattr(mod, "Input", None) or getattr(lay, "Input", None)
        if self.Input is None:
            self.missing_names.append("rnnstate.Input")
        if not self.layers:
            self.error = ("imported, but rnnstate.layers has none of "
                          "LSTM, GRU, SimpleRNN (yet)")
            return
        self.available = True

    def describe(self) -> Dict[str, Any]:
        return {"available": self.available, "error": self.error or None,
                "file": self.file, "version": self.version,
                "missing_names": self.missing_names,
                "layers": sorted(KERAS_LAYER[c] for c in self.layers)}

    # -- helpers -----------------------------------------------------------

    def _why_missing(self, cell) -> Optional[str]:
        if not self.available:
            return f"rnnstate unavailable: {self.error}"
        if cell not in self.layers:
            return f"rnnstate.layers.{KERAS_LAYER[cell]} missing"
        return None

    def make_layer(self, cell, U, **kw):
        return self.layers[cell](U, **kw)

    @staticmethod
    def _prepare(layer, weights, x_t, device):
        """Build (outside inference mode, so parameters stay normal tensors),
        transplant weights, move to device."""
        built = bool(getattr(layer, "built", False))
        if not built and hasattr(layer, "build"):
            try:
                layer.build(tuple(x_t.shape))
                built = True
            except Exception:
                built = False
        if not built or not any(True for _ in _params(layer)):
            with torch.no_grad():
                layer(x_t[:1].cpu())
        layer.set_weights(weights)
        if hasattr(layer, "to"):
            layer.to(device)
        return layer

    @staticmethod
    def last_path_of(obj) -> Dict[str, Any]:
        lp = getattr(obj, "last_path", None)
        return {"last_path": lp} if lp is not None else {}

    # -- layer used directly as a torch module ------------------------------

    def setup_call(self, name, cell, x_t, U, weights, device, layer_kw,
                   check=True) -> Impl:
        why = self._why_missing(cell)
        if why:
            return Impl.missing(name, why, peer=False)
        try:
            layer = self.make_layer(cell, U, **layer_kw)
        except TypeError as exc:
            return Impl.missing(name, f"option not supported: {err_text(exc)}",
                                peer=False)
        except Exception as exc:
            return Impl.missing(name, f"construction failed: {err_text(exc)}",
                                peer=False, status="error")
        try:
            self._prepare(layer, weights, x_t, device)
            if hasattr(layer, "eval"):
                layer.eval()

            def fn():
                with torch.inference_mode():
                    return layer(x_t)

            out = fn()
        except Exception as exc:
            return Impl.missing(name, f"setup call failed: {err_text(exc)}",
                                peer=False, status="error")
        imp = Impl(name, fn=fn, peer=False,
                   check_out=to_numpy(first_tensor(out)) if check else None,
                   post=lambda: RnnState.last_path_of(layer),
                   info={"layer_kwargs": {k: v for k, v in layer_kw.items()},
                         "n_outputs": len(all_tensors(out)),
                         "output_shapes": [list(t.shape) for t in all_tensors(out)],
                         **RnnState.last_path_of(layer)})
        imp.info["_outputs"] = [to_numpy(t) for t in all_tensors(out)]
        return imp

    def setup_step(self, cell, x_t, y_t, U, weights, device) -> Impl:
        name = "rs_call"
        why = self._why_missing(cell)
        if why:
            return Impl.missing(name, why, peer=False)
        try:
            layer = self.make_layer(cell, U, return_sequences=True)
            self._prepare(layer, weights, x_t, device)
            if not isinstance(layer, nn.Module):
                return Impl.missing(name, "layer is not a torch.nn.Module",
                                    peer=False, status="error")

            def call(x):
                return first_tensor(layer(x))

            imp = setup_train_step(name, layer, call, x_t, y_t, peer=False,
                                   info={"optimizer": f"p -= {LR} * p.grad"})
        except Exception as exc:
            return Impl.missing(name, f"setup failed: {err_text(exc)}",
                                peer=False, status="error")
        imp.post = lambda: RnnState.last_path_of(layer)
        imp.info.update(RnnState.last_path_of(layer))
        return imp

    # -- Keras-style model API ---------------------------------------------

    def _model(self, cell, T, F, U, weights, device, return_sequences=True):
        if self.Sequential is None or self.Input is None:
            raise LookupError("rnnstate.Sequential / rnnstate.Input missing")
        layer = self.make_layer(cell, U, return_sequences=return_sequences)
        m = self.Sequential([self.Input((T, F)), layer])
        try:
            m.set_weights(weights)
        except Exception:
            layer.set_weights(weights)
        if device.type != "cpu" and hasattr(m, "to"):
            m.to(device)
        return m, layer

    def setup_predict(self, cell, x_np, T, F, U, weights, device,
                      return_sequences=True) -> Impl:
        name = "rs_api"
        why = self._why_missing(cell)
        if why:
            return Impl.missing(name, why, peer=False)
        try:
            m, layer = self._model(cell, T, F, U, weights, device,
                                   return_sequences)
        except LookupError as exc:
            return Impl.missing(name, str(exc), peer=False)
        except Exception as exc:
            return Impl.missing(name, f"model setup failed: {err_text(exc)}",
                                peer=False, status="error")
        B = x_np.shape[0]
        attempts = [
            ("model.predict(x, verbose=0, batch_size=B)",
             lambda: m.predict(x_np, verbose=0, batch_size=B)),
            ("model.predict(x, verbose=0)", lambda: m.predict(x_np, verbose=0)),
            ("model.predict(x)", lambda: m.predict(x_np)),
        ]
        if not hasattr(m, "predict"):
            return Impl.missing(name, "rnnstate.Sequential has no predict",
                                peer=False)
        last_exc = None
        for path, fn in attempts:
            try:
                out = fn()
            except TypeError as exc:
                last_exc = exc
                continue
            except Exception as exc:
                return Impl.missing(name, f"predict failed: {err_text(exc)}",
                                    peer=False, status="error")
            return Impl(name, fn=fn, peer=False,
                        check_out=to_numpy(first_tensor(out)),
                        post=lambda: RnnState.last_path_of(layer),
                        info={"path": path.replace("B", str(B)),
                              **RnnState.last_path_of(layer)})
        return Impl.missing(name, f"predict failed: {err_text(last_exc)}",
                            peer=False, status="error")

    def setup_train_on_batch(self, cell, x_np, y_np, T, F, U, weights,
                             device) -> Impl:
        name = "rs_api"
        why = self._why_missing(cell)
        if why:
            return Impl.missing(name, why, peer=False)
        try:
            m, layer = self._model(cell, T, F, U, weights, device)
        except LookupError as exc:
            return Impl.missing(name, str(exc), peer=False)
        except Exception as exc:
            return Impl.missing(name, f"model setup failed: {err_text(exc)}",
                                peer=False, status="error")
        if not (hasattr(m, "compile") and hasattr(m, "train_on_batch")):
            return Impl.missing(name, "rnnstate.Sequential lacks compile/train_on_batch",
                                peer=False)
        opt_desc = "'sgd' (library default lr)"
        opt: Any = "sgd"
        opts = getattr(self.mod, "optimizers", None)
        if opts is not None and hasattr(opts, "SGD"):
            try:
                opt = opts.SGD(learning_rate=LR)
                opt_desc = f"rnnstate.optimizers.SGD(learning_rate={LR})"
            except Exception:
                pass
        try:
            m.compile(optimizer=opt, loss="mse")

            def fn():
                return m.train_on_batch(x_np, y_np)

            fn()
        except Exception as exc:
            return Impl.missing(name, f"train_on_batch failed: {err_text(exc)}",
                                peer=False, status="error")
        return Impl(name, fn=fn, peer=False,
                    post=lambda: RnnState.last_path_of(layer),
                    info={"path": "model.train_on_batch(x, y), loss='mse'",
                          "optimizer": opt_desc,
                          **RnnState.last_path_of(layer)})


def _params(layer):
    if isinstance(layer, nn.Module):
        return layer.parameters()
    return iter(())


# --------------------------------------------------------------------------
# The BLAS floor: a configuration's matrix products alone
# --------------------------------------------------------------------------


def setup_gemm_floor(cell: str, B: int, T: int, F: int, U: int, mode: str, device) -> Impl:
    """The matrix products every implementation of this layer must do, and nothing else: torch.mm
    into preallocated outputs (no activations, no allocation, no autograd). fwd: x @ W_ih^T for all
    steps at once, then h_{t-1} @ W_hh^T per step. fwd+bwd adds per step dz_t @ W_hh (t >= 1) and
    the weight gradients dz^T @ x and dz^T @ h. Its time is a lower bound for any implementation
    on this BLAS (the recurrence forces T dependent products), so keras_api / gemm_floor is the
    largest speed-up over Keras any of them can reach."""
    G = {"lstm": 4, "gru": 3, "rnn": 1}[cell] * U
    r = lambda *s: torch.randn(*s, device=device)  # noqa: E731
    x2, w_ih_t, w_hh_t, w_hh = r(B * T, F), r(F, G), r(U, G), r(G, U)
    xw, h, z = torch.empty(B * T, G, device=device), r(B, U), torch.empty(B, G, device=device)
    dz_all, hs = r(B * T, G), r(B * T, U)
    dh, dw_ih, dw_hh = torch.empty(B, U, device=device), torch.empty(G, F, device=device), \
        torch.empty(G, U, device=device)
    dz = dz_all[:B]

    def fwd():
        torch.mm(x2, w_ih_t, out=xw)
        for _ in range(T):
            torch.mm(h, w_hh_t, out=z)
        return z

    def fwd_bwd():
        fwd()
        for _ in range(T - 1):
            torch.mm(dz, w_hh, out=dh)
        torch.mm(dz_all.t(), x2, out=dw_ih)
        torch.mm(dz_all.t(), hs, out=dw_hh)
        return dw_hh

    fn = fwd if mode == "fwd" else fwd_bwd
    fn()
    what = ("x@W_ih^T + T x h@W_hh^T" if mode == "fwd"
            else "forward's + (T-1) x dz@W_hh + dz^T@x + dz^T@h")
    return Impl("gemm_floor", fn=fn, peer=False, info={"products": what})
