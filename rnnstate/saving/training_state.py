"""A compiled model's training state in the native file: the compile arguments and the optimizer's
state, so that ``load_model`` gives back a model that resumes ``fit`` where it stopped (Keras'
``compile=True``).

Stored only when it can be stored as data: the optimizer must be one of rnnstate's Keras-style
optimizers with a constant learning rate, and losses / metrics given by name (strings, or lists /
dicts of strings and None). Anything else (a loss function object, a schedule, a raw
``torch.optim`` optimizer) is left out and the model loads uncompiled, as before; nothing is ever
pickled. In the file:

``__metadata__["compile_config"]``
    JSON: ``{"optimizer": {"class_name", "config"}, "loss", "loss_weights", "metrics",
    "weighted_metrics", "iterations", "param_groups"}`` (``param_groups``: torch's hyperparameters
    per group, e.g. the current learning rate after ``ReduceLROnPlateau``).
tensors ``__optimizer__/<param index>/<name>``
    torch's per-parameter optimizer state (Adam's ``exp_avg``, ``exp_avg_sq``, ``step``, ...).
"""
from __future__ import annotations

import json

import numpy as np
import torch

from ._io import fail

PREFIX = "__optimizer__/"
KEY = "compile_config"


def _names_only(v) -> bool:
    if v is None or isinstance(v, str):
        return True
    if isinstance(v, (list, tuple)):
        return all(_names_only(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _names_only(x) for k, x in v.items())
    return False


def _numbers_only(v) -> bool:
    if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)):
        return True
    if isinstance(v, (list, tuple)):
        return all(_numbers_only(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _numbers_only(x) for k, x in v.items())
    return False


def collect(model):
    """(metadata entries, tensors) for `model`'s training state; ({}, {}) when it has none that can
    be stored as data."""
    from ..training import optimizers
    args = getattr(model, "_compile_args", None)
    opt = getattr(model, "optimizer", None)
    if not getattr(model, "compiled", False) or args is None or type(opt) not in optimizers._BY_NAME.values():
        return {}, {}
    if not (_names_only(args["loss"]) and _names_only(args["metrics"]) and _names_only(args["weighted_metrics"])
            and _numbers_only(args["loss_weights"])):
        return {}, {}
    cfg = opt.get_config()
    try:
        json.dumps(cfg)
    except (TypeError, ValueError):                # a schedule or another object: not data
        return {}, {}
    entry = {"optimizer": {"class_name": type(opt).__name__, "config": cfg}, **args, "iterations": 0,
             "param_groups": []}
    tensors = {}
    if opt.built:
        sd = opt.torch_optimizer.state_dict()
        entry["iterations"] = int(opt.iterations)
        entry["param_groups"] = [{k: v for k, v in g.items() if isinstance(v, (int, float, bool, str, list, tuple))
                                  or v is None} for g in sd["param_groups"]]
        for i, st in sd["state"].items():
            for name, v in st.items():
                if isinstance(v, torch.Tensor):
                    tensors[f"{PREFIX}{i}/{name}"] = v.detach().cpu().float().numpy()
                else:
                    tensors[f"{PREFIX}{i}/{name}"] = np.asarray(v, dtype=np.float32)
    return {KEY: json.dumps(entry)}, tensors


def split(tensors):
    """(the model's tensors, the optimizer's)."""
    opt = {k: v for k, v in tensors.items() if k.startswith(PREFIX)}
    return {k: v for k, v in tensors.items() if not k.startswith(PREFIX)}, opt


def restore(model, meta, opt_tensors, path):
    """Compile `model` as saved and load the optimizer state; every check before anything changes."""
    from ..training import optimizers
    try:
        entry = json.loads(meta[KEY])
        spec = entry["optimizer"]
        cls = optimizers._BY_NAME[str(spec["class_name"]).lower()]
        opt = cls.from_config(dict(spec["config"]))
        args = {k: entry[k] for k in ("loss", "loss_weights", "metrics", "weighted_metrics")}
        iterations = int(entry["iterations"])
        groups = entry["param_groups"]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise fail(path, f"the saved compile config is malformed ({type(e).__name__}: {e}).", e) from None
    params = list(model.parameters())
    state = {}
    for name, a in opt_tensors.items():
        idx, _, key = name[len(PREFIX):].partition("/")
        if not idx.isdigit() or int(idx) >= len(params) or not key:
            raise fail(path, f"optimizer state entry {name!r:.80} names no parameter of this model "
                             f"({len(params)} parameters).")
        p = params[int(idx)]
        if key != "step" and a.shape != tuple(p.shape):
            raise fail(path, f"optimizer state {name!r:.80} has shape {a.shape}; its parameter has shape "
                             f"{tuple(p.shape)}.")
        state.setdefault(int(idx), {})[key] = torch.tensor(np.array(a), dtype=torch.float32)
    try:
        model.compile(optimizer=opt, **args)
    except (ValueError, TypeError, KeyError) as e:
        raise fail(path, f"the saved compile config can't be applied ({e}).", e) from None
    torch_opt = model.optimizer.torch_optimizer
    if torch_opt is None or not (state or groups):
        return
    cur = torch_opt.state_dict()
    if len(groups) != len(cur["param_groups"]):
        raise fail(path, f"the saved optimizer has {len(groups)} parameter groups; this model's has "
                         f"{len(cur['param_groups'])}.")
    merged = [{**g_cur, **{k: v for k, v in g.items() if k != "params"}} for g_cur, g in zip(cur["param_groups"], groups)]
    torch_opt.load_state_dict({"state": state, "param_groups": merged})
    model.optimizer.iterations = iterations
