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
import math

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


# ---- reading: the entry is data from a file, validated as such before anything uses it ------------------
# torch's per-parameter state names (Adam, AdamW, NAdam, Adamax, SGD, RMSprop, Adagrad, Adadelta); scalars
# are 0-d; "non-negative" ones are running averages of squares.
_STATE_NAMES = {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer", "square_avg", "grad_avg",
                "acc_delta", "sum", "exp_inf", "mu_product"}
_SCALAR_STATES = {"step", "mu_product"}
_NONNEGATIVE_STATES = {"step", "exp_avg_sq", "max_exp_avg_sq", "square_avg", "acc_delta", "sum", "exp_inf",
                       "mu_product"}
_TORCH_FLAGS = {"foreach", "maximize", "capturable", "differentiable", "fused"}
_UNIT_INTERVAL = {"momentum", "rho", "beta_1", "beta_2"}


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _bad(path, part, expected, received):
    return fail(path, f"compile config `{part}`: expected {expected}; received {received!r:.80}.")


def _check_optimizer_config(cls, config, path):
    """Every key a known argument of `cls` (or a torch flag), every value of the argument's kind."""
    import inspect
    params = {}
    for c in reversed(cls.__mro__):
        init = c.__dict__.get("__init__")
        if init is not None:
            for name, prm in inspect.signature(init).parameters.items():
                if prm.kind not in (prm.VAR_KEYWORD, prm.VAR_POSITIONAL) and name != "self":
                    params[name] = prm.default
    for k, v in config.items():
        part = f"optimizer.config.{k}"
        if k == "name":
            if not isinstance(v, str):
                raise _bad(path, part, "a string", v)
        elif k in _TORCH_FLAGS and k not in params:
            if not (v is None or isinstance(v, bool)):
                raise _bad(path, part, "true, false or null", v)
        elif k not in params:
            raise _bad(path, "optimizer.config", f"only arguments of {cls.__name__} "
                                                 f"({', '.join(sorted(p for p in params if p != 'name'))})", k)
        elif isinstance(params[k], bool):
            if not isinstance(v, bool):
                raise _bad(path, part, "true or false", v)
        elif v is None and k != "learning_rate":
            continue
        elif not _is_number(v) or v < 0:
            raise _bad(path, part, "a finite number >= 0", v)
        elif k == "learning_rate" and v <= 0:
            raise _bad(path, part, "a finite number > 0", v)
        elif k in _UNIT_INTERVAL and v > 1:
            raise _bad(path, part, "a number in [0, 1]", v)


def _parse_entry(meta, path):
    """The compile config -> (optimizer class, its config, compile args, iterations, param groups)."""
    from ..training import optimizers
    try:
        entry = json.loads(meta[KEY])
    except (ValueError, RecursionError) as e:
        raise fail(path, f"the saved compile config is not valid JSON ({e}).", e) from None
    if not isinstance(entry, dict):
        raise _bad(path, "", "a JSON object", type(entry).__name__)
    spec = entry.get("optimizer")
    if not isinstance(spec, dict) or not isinstance(spec.get("class_name"), str) \
            or not isinstance(spec.get("config"), dict):
        raise _bad(path, "optimizer", '{"class_name": <name>, "config": {...}}', spec)
    cls = optimizers._BY_NAME.get(spec["class_name"].lower())
    if cls is None:
        raise _bad(path, "optimizer.class_name", f"one of {sorted(optimizers._BY_NAME)}", spec["class_name"])
    config = dict(spec["config"])
    _check_optimizer_config(cls, config, path)
    args = {}
    for k in ("loss", "metrics", "weighted_metrics"):
        if not _names_only(entry.get(k)):
            raise _bad(path, k, "names (strings, or lists / dicts of strings and null)", entry.get(k))
        args[k] = entry.get(k)
    lw = entry.get("loss_weights")
    if not _numbers_only(lw) or not _finite(lw):
        raise _bad(path, "loss_weights", "finite numbers (or lists / dicts of them, or null)", lw)
    args["loss_weights"] = lw
    iterations = entry.get("iterations", 0)
    if not (isinstance(iterations, int) and not isinstance(iterations, bool) and 0 <= iterations < (1 << 62)):
        raise _bad(path, "iterations", "an integer >= 0", iterations)
    groups = entry.get("param_groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise _bad(path, "param_groups", "a list of objects (torch's param groups)", groups)
    return cls, config, args, iterations, groups


def _finite(v):
    if isinstance(v, (list, tuple)):
        return all(_finite(x) for x in v)
    if isinstance(v, dict):
        return all(_finite(x) for x in v.values())
    return v is None or math.isfinite(v)


def _parse_state(opt_tensors, params, path):
    """``__optimizer__/<i>/<name>`` arrays -> {i: {name: tensor}}, every name, shape and value checked."""
    state = {}
    for name, a in opt_tensors.items():
        idx, _, key = name[len(PREFIX):].partition("/")
        if not idx.isdigit() or int(idx) >= len(params) or not key:
            raise fail(path, f"optimizer state entry {name!r:.80} names no parameter of this model "
                             f"({len(params)} parameters).")
        if key not in _STATE_NAMES:
            raise fail(path, f"optimizer state {name!r:.80}: expected one of torch's state names "
                             f"({', '.join(sorted(_STATE_NAMES))}); received {key!r:.40}.")
        p = params[int(idx)]
        if key in _SCALAR_STATES:          # torch keeps these 0-d, or (1,) on its fused/capturable paths
            if tuple(a.shape) not in ((), (1,)):
                raise fail(path, f"optimizer state {name!r:.80} has shape {tuple(a.shape)}; expected a scalar "
                                 f"(shape () or (1,)).")
        elif tuple(a.shape) != tuple(p.shape):
            raise fail(path, f"optimizer state {name!r:.80} has shape {tuple(a.shape)}; expected "
                             f"{tuple(p.shape)} (its parameter's shape).")
        a = np.asarray(a, dtype=np.float32)
        if not np.isfinite(a).all() or (key in _NONNEGATIVE_STATES and (a < 0).any()) \
                or (key == "step" and (a != np.round(a)).any()):
            raise fail(path, f"optimizer state {name!r:.80}: expected finite values"
                             + (" >= 0" if key in _NONNEGATIVE_STATES else "")
                             + (" (a whole step count)" if key == "step" else "") + "; received other values.")
        state.setdefault(int(idx), {})[key] = torch.tensor(a, dtype=torch.float32)
    kinds = {frozenset(v) for v in state.values()}
    if len(kinds) > 1:
        raise fail(path, f"the optimizer state differs between parameters ({sorted(sorted(k) for k in kinds)}); "
                         f"expected the same entries for every parameter.")
    return state


def _merge_groups(groups, current, path):
    """The saved hyperparameters over the built optimizer's groups: same count, known keys, same kinds."""
    if len(groups) != len(current):
        raise fail(path, f"the saved optimizer has {len(groups)} parameter groups; this model's has "
                         f"{len(current)}.")
    merged = []
    for i, (g, cur) in enumerate(zip(groups, current)):
        out = dict(cur)
        for k, v in g.items():
            part = f"param_groups[{i}].{k}"
            if k == "params":
                continue
            if k not in cur:
                raise _bad(path, part, f"one of torch's keys ({', '.join(sorted(x for x in cur if x != 'params'))})",
                           k)
            c = cur[k]
            if isinstance(c, bool):
                ok = isinstance(v, bool)
                what = "true or false"
            elif c is None:
                ok = v is None or isinstance(v, bool) or (_is_number(v) and v >= 0)
                what = "null, a boolean or a number >= 0"
            elif isinstance(c, (int, float)):
                ok = _is_number(v) and v >= 0 and (k != "lr" or v > 0)
                what = "a finite number > 0" if k == "lr" else "a finite number >= 0"
            elif isinstance(c, (list, tuple)):
                ok = isinstance(v, list) and len(v) == len(c) and all(_is_number(x) and x >= 0 for x in v)
                what = f"a list of {len(c)} finite numbers >= 0"
                v = type(c)(v) if ok else v
            elif isinstance(c, str):
                ok = isinstance(v, str) and len(v) <= 64
                what = "a string"
            else:
                ok, what = False, f"no saved value ({type(c).__name__} is not stored)"
            if not ok:
                raise _bad(path, part, what, v)
            out[k] = v
        merged.append(out)
    return merged


def restore(model, meta, opt_tensors, path):
    """Compile `model` as saved and load the optimizer state; every check before anything changes."""
    cls, config, args, iterations, groups = _parse_entry(meta, path)
    params = list(model.parameters())
    state = _parse_state(opt_tensors, params, path)
    try:
        opt = cls.from_config(config)
    except (ValueError, TypeError) as e:
        raise fail(path, f"the saved optimizer config can't be applied ({e}).", e) from None
    try:
        model.compile(optimizer=opt, **args)
    except (ValueError, TypeError, KeyError) as e:
        raise fail(path, f"the saved compile config can't be applied ({e}).", e) from None
    torch_opt = model.optimizer.torch_optimizer
    if torch_opt is None or not (state or groups):
        return
    cur = torch_opt.state_dict()
    merged = _merge_groups(groups, cur["param_groups"], path)
    try:
        torch_opt.load_state_dict({"state": state, "param_groups": merged})
    except (ValueError, TypeError, KeyError, RuntimeError) as e:
        raise fail(path, f"the saved optimizer state can't be applied ({e}).", e) from None
    model.optimizer.iterations = iterations
