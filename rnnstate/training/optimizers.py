"""Keras-style optimizers backed by ``torch.optim``.

Every class here only *configures* a ``torch.optim`` optimizer: the update math is always
torch's own implementation (nothing is hand-written), with Keras 3's default hyperparameters.
Where torch and Keras compute an update differently the class docstring says so; the
differences are all of order ``epsilon`` and invisible in practice, except the ones marked
**visible** below.

* ``Optimizer`` objects remember their config and build the torch optimizer when ``compile``
  binds them to the model's parameters (``build(params)``); afterwards ``torch_optimizer`` is
  that instance and ``learning_rate`` reads/writes every param group's ``lr``.
* ``get(identifier, params=None)`` resolves a name, a config dict, an ``Optimizer``, a ready
  ``torch.optim.Optimizer``, a ``torch.optim`` class, or a ``keras.optimizers`` object (its
  config is copied onto the torch-backed twin).  With ``params`` it returns a built
  ``torch.optim.Optimizer``; without, a Keras-style ``Optimizer``.

``weight_decay``: Keras applies *decoupled* weight decay (``w -= lr * wd * w``) in every
optimizer.  Adam, AdamW and Nadam map it to torch's decoupled form (identical); SGD, RMSprop,
Adagrad, Adadelta and Adamax map it to torch's ``weight_decay``, which is an L2 term added to
the gradient (**visible** difference when ``weight_decay`` is set on those).

``learning_rate`` may be a float or a callable ``schedule(step) -> float`` (for example a
``keras.optimizers.schedules`` object): the schedule is evaluated before every step with the
0-based number of steps taken so far, as Keras does.
"""

import inspect

import torch

from .. import _checks

__all__ = ["Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "Adadelta", "Adamax", "Nadam",
           "TorchOptimizer", "get", "get_learning_rate", "set_learning_rate"]


def get_learning_rate(torch_optimizer) -> float:
    """The ``lr`` of the first param group of a torch optimizer."""
    lr = torch_optimizer.param_groups[0]["lr"]
    return float(lr)


def set_learning_rate(torch_optimizer, value) -> None:
    """Set ``lr`` on every param group of a torch optimizer."""
    value = float(value)
    for group in torch_optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(value)
        else:
            group["lr"] = value


class Optimizer:
    """Base of the Keras-style optimizers: config now, ``torch.optim`` instance at ``build``.

    Common arguments (Keras names): ``learning_rate``, ``weight_decay``, ``clipnorm`` (clip each
    parameter's gradient to this L2 norm), ``clipvalue`` (clip gradient elements to
    ``[-v, v]``), ``global_clipnorm`` (clip all gradients together to this norm; torch's
    ``clip_grad_norm_``), ``name``.  Extra keyword arguments go straight to the torch class
    (e.g. ``foreach=True``).  Attribute access not found here is forwarded to the built torch
    optimizer, so ``opt.param_groups`` and ``opt.state_dict()`` work.
    """

    torch_class = None
    _lr_default = 0.001

    def __init__(self, learning_rate=None, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None, **torch_kwargs):
        self.name = _checks.string(type(self).__name__, "name", name, allow_none=True) or type(self).__name__.lower()
        if sum(v is not None for v in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                             f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}")
        self._learning_rate = self._lr_default if learning_rate is None else _learning_rate(self, learning_rate)
        self.weight_decay = _checks.number(self, "weight_decay", weight_decay, low=0.0, allow_none=True)
        self.clipnorm, self.clipvalue, self.global_clipnorm = (
            _checks.number(self, k, v, low=0.0, low_open=True, allow_none=True)
            for k, v in (("clipnorm", clipnorm), ("clipvalue", clipvalue), ("global_clipnorm", global_clipnorm)))
        self.torch_kwargs = dict(torch_kwargs)
        self.torch_optimizer = None
        self.iterations = 0
        self._params = None

    # ---- configuration -----------------------------------------------------------------------
    def _hyper(self) -> dict:
        """Keras-named hyperparameters of the subclass (for get_config)."""
        return {}

    def _torch_args(self) -> dict:
        """Keyword arguments for ``torch_class`` (without ``lr`` and params)."""
        return {}

    def get_config(self) -> dict:
        lr = self._learning_rate
        cfg = {"name": self.name, "learning_rate": lr if callable(lr) else float(lr),
               "weight_decay": self.weight_decay, "clipnorm": self.clipnorm,
               "clipvalue": self.clipvalue, "global_clipnorm": self.global_clipnorm}
        cfg.update(self._hyper())
        cfg.update(self.torch_kwargs)
        return cfg

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # ---- building ----------------------------------------------------------------------------
    @property
    def built(self) -> bool:
        return self.torch_optimizer is not None

    def _initial_lr(self) -> float:
        lr = self._learning_rate
        return float(lr(0)) if callable(lr) else float(lr)

    def build(self, params):
        """Create the torch optimizer over ``params`` (an iterable of tensors or param groups)."""
        params = list(params)
        if not params:
            raise ValueError(f"Optimizer {self.name!r} received no parameters to optimize.")
        kwargs = self._torch_args()
        kwargs.update(self.torch_kwargs)
        if self._use_fused(params, kwargs):
            kwargs["fused"] = True
        self.torch_optimizer = self.torch_class(params, lr=self._initial_lr(), **kwargs)
        self._params = [p for g in self.torch_optimizer.param_groups for p in g["params"]]
        self.iterations = 0
        return self.torch_optimizer

    _fused_ok = False   # subclasses whose torch class has a fused (single-kernel) update

    def _use_fused(self, params, kwargs) -> bool:
        """torch's fused update (one kernel for all parameters) when it applies: 3-4x faster than
        the default ``foreach`` update on small models, same math.  Never when the user chose an
        implementation (``foreach=``/``fused=``) or for parameter groups, non-float parameters or
        devices torch has no fused kernel for."""
        if not self._fused_ok or "fused" in kwargs or "foreach" in kwargs or kwargs.get("differentiable"):
            return False
        if not all(isinstance(p, torch.Tensor) for p in params):
            return False
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
        devices = _get_fused_kernels_supported_devices()
        return all(p.is_floating_point() and p.device.type in devices and not p.is_sparse for p in params)

    def _require_built(self):
        if self.torch_optimizer is None:
            raise RuntimeError(f"Optimizer {self.name!r} is not built yet: call `build(params)` "
                               "(model.compile does it for you).")
        return self.torch_optimizer

    # ---- learning rate -----------------------------------------------------------------------
    @property
    def learning_rate(self) -> float:
        if self.torch_optimizer is not None:
            return get_learning_rate(self.torch_optimizer)
        return self._initial_lr()

    @learning_rate.setter
    def learning_rate(self, value):
        value = _learning_rate(self, value)
        if callable(value):
            self._learning_rate = value
            value = value(self.iterations)
        else:
            self._learning_rate = float(value)
        if self.torch_optimizer is not None:
            set_learning_rate(self.torch_optimizer, value)

    lr = learning_rate

    # ---- stepping ----------------------------------------------------------------------------
    def zero_grad(self, set_to_none=True):
        self._require_built().zero_grad(set_to_none=set_to_none)

    def step(self):
        """Clip gradients as configured, apply the schedule, take one torch step."""
        opt = self._require_built()
        if self.clipnorm is not None or self.clipvalue is not None or self.global_clipnorm is not None:
            self._clip()
        if callable(self._learning_rate):
            set_learning_rate(opt, self._learning_rate(self.iterations))
        self._before_step(opt)
        opt.step()
        self.iterations += 1

    def _before_step(self, opt):
        """Per-step hyperparameters that make torch's update equal Keras' (see Adam)."""

    def _clip(self):
        params = [p for p in self._params if p.grad is not None]
        if self.global_clipnorm is not None:
            torch.nn.utils.clip_grad_norm_(params, self.global_clipnorm)
        elif self.clipnorm is not None:
            for p in params:   # Keras clips every variable's gradient separately
                torch.nn.utils.clip_grad_norm_([p], self.clipnorm)
        else:
            torch.nn.utils.clip_grad_value_(params, self.clipvalue)

    def state_dict(self):
        return {"iterations": self.iterations, "torch": self._require_built().state_dict()}

    def load_state_dict(self, state):
        self.iterations = int(state.get("iterations", 0))
        self._require_built().load_state_dict(state["torch"])

    def __getattr__(self, item):
        if item.startswith("__") or item in ("torch_optimizer", "_params"):
            raise AttributeError(item)
        opt = self.__dict__.get("torch_optimizer")
        if opt is not None and hasattr(opt, item):
            return getattr(opt, item)
        raise AttributeError(f"{type(self).__name__!s} has no attribute {item!r}")

    def __repr__(self):
        return f"{type(self).__name__}(learning_rate={self.learning_rate:g})"


class TorchOptimizer(Optimizer):
    """Wraps a ready ``torch.optim.Optimizer`` (or a ``torch.optim`` class, built with torch's own
    defaults at ``build``) so the training loop and callbacks see one interface."""

    def __init__(self, optimizer, **kwargs):
        if isinstance(optimizer, torch.optim.Optimizer):
            super().__init__(learning_rate=get_learning_rate(optimizer), **kwargs)
            self.torch_optimizer = optimizer
            self._params = [p for g in optimizer.param_groups for p in g["params"]]
            self.name = kwargs.get("name") or type(optimizer).__name__.lower()
        else:
            super().__init__(**kwargs)
            self.torch_class = optimizer
            self.name = kwargs.get("name") or optimizer.__name__.lower()

    def build(self, params):
        if self.torch_optimizer is None:
            self.torch_optimizer = self.torch_class(list(params), **self.torch_kwargs)
            self._params = [p for g in self.torch_optimizer.param_groups for p in g["params"]]
        return self.torch_optimizer


class SGD(Optimizer):
    """Keras ``SGD(learning_rate=0.01, momentum=0.0, nesterov=False)`` -> ``torch.optim.SGD``.

    Keras keeps ``m = momentum*m - lr*g; w += m`` while torch keeps ``b = momentum*b + g;
    w -= lr*b``: identical while the learning rate is constant; after a learning-rate change
    torch rescales the accumulated momentum by the new rate (Keras does not)."""

    torch_class = torch.optim.SGD
    _fused_ok = True
    _lr_default = 0.01

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.momentum = _checks.number(self, "momentum", momentum, low=0.0, high=1.0, high_open=True)   # Keras
        self.nesterov = bool(nesterov)

    def _hyper(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}

    def _torch_args(self):
        # Nesterov with zero momentum is plain SGD (Keras accepts it; torch refuses the combination)
        return {"momentum": self.momentum, "nesterov": self.nesterov and self.momentum > 0,
                "weight_decay": self.weight_decay or 0.0}


class RMSprop(Optimizer):
    """Keras ``RMSprop(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False)``
    -> ``torch.optim.RMSprop(alpha=rho)``.

    Keras divides by ``sqrt(v + epsilon)``, torch by ``sqrt(v) + epsilon``; with momentum Keras
    accumulates ``lr*g/...`` and torch ``g/...`` (same while the learning rate is constant)."""

    torch_class = torch.optim.RMSprop

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.rho = _checks.number(self, "rho", rho, low=0.0, high=1.0)
        self.momentum = _checks.number(self, "momentum", momentum, low=0.0)
        self.epsilon = _checks.number(self, "epsilon", epsilon, low=0.0)
        self.centered = bool(centered)

    def _hyper(self):
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon, "centered": self.centered}

    def _torch_args(self):
        return {"alpha": self.rho, "eps": self.epsilon, "momentum": self.momentum, "centered": self.centered,
                "weight_decay": self.weight_decay or 0.0}


class Adam(Optimizer):
    """Keras ``Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False)``
    -> ``torch.optim.Adam`` (decoupled weight decay, like Keras, when ``weight_decay`` is set).

    Keras adds epsilon to ``sqrt(v)`` before bias correction ("epsilon hat"): ``w -= lr * sqrt(1 -
    beta_2**t) / (1 - beta_1**t) * m / (sqrt(v) + epsilon)``; torch adds it to the bias-corrected
    ``sqrt(v) / sqrt(1 - beta_2**t)``. The two are equal when torch's epsilon at step t is
    ``epsilon / sqrt(1 - beta_2**t)``, which is set before every step: the update is Keras' exactly
    (it matters when gradients are near epsilon, e.g. an LSTM's recurrent kernel at step 1)."""

    torch_class = torch.optim.Adam
    _decoupled = True
    _fused_ok = True

    def _before_step(self, opt):
        t = self.iterations + 1                                    # Keras' 1-based local step
        eps = self.epsilon / (1.0 - self.beta_2 ** t) ** 0.5
        for g in opt.param_groups:
            g["eps"] = eps

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = _betas(self, beta_1, beta_2, epsilon)
        self.amsgrad = bool(amsgrad)

    def _hyper(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon, "amsgrad": self.amsgrad}

    def _torch_args(self):
        args = {"betas": (self.beta_1, self.beta_2), "eps": self.epsilon, "amsgrad": self.amsgrad}
        if self.weight_decay:
            args.update(weight_decay=float(self.weight_decay), decoupled_weight_decay=True)
        return args


class AdamW(Adam):
    """Keras ``AdamW(learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
    epsilon=1e-7, amsgrad=False)`` -> ``torch.optim.AdamW`` (same epsilon note as ``Adam``)."""

    torch_class = torch.optim.AdamW

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **kwargs):
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         amsgrad=amsgrad, weight_decay=weight_decay, **kwargs)

    def _torch_args(self):
        return {"betas": (self.beta_1, self.beta_2), "eps": self.epsilon, "amsgrad": self.amsgrad,
                "weight_decay": float(self.weight_decay or 0.0)}


class Adagrad(Optimizer):
    """Keras ``Adagrad(learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7)`` ->
    ``torch.optim.Adagrad`` (torch's own defaults differ: lr 0.01, accumulator 0, eps 1e-10).

    Keras divides by ``sqrt(acc + epsilon)``, torch by ``sqrt(acc) + epsilon``."""

    torch_class = torch.optim.Adagrad

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.initial_accumulator_value = _checks.number(self, "initial_accumulator_value",
                                                        initial_accumulator_value, low=0.0)
        self.epsilon = _checks.number(self, "epsilon", epsilon, low=0.0)

    def _hyper(self):
        return {"initial_accumulator_value": self.initial_accumulator_value, "epsilon": self.epsilon}

    def _torch_args(self):
        return {"initial_accumulator_value": self.initial_accumulator_value, "eps": self.epsilon,
                "weight_decay": self.weight_decay or 0.0}


class Adadelta(Optimizer):
    """Keras ``Adadelta(learning_rate=0.001, rho=0.95, epsilon=1e-7)`` -> ``torch.optim.Adadelta``
    (torch's own defaults differ: lr 1.0, rho 0.9, eps 1e-6; the update formulas agree)."""

    torch_class = torch.optim.Adadelta

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.rho = _checks.number(self, "rho", rho, low=0.0, high=1.0)
        self.epsilon = _checks.number(self, "epsilon", epsilon, low=0.0)

    def _hyper(self):
        return {"rho": self.rho, "epsilon": self.epsilon}

    def _torch_args(self):
        return {"rho": self.rho, "eps": self.epsilon, "weight_decay": self.weight_decay or 0.0}


class Adamax(Optimizer):
    """Keras ``Adamax(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)`` ->
    ``torch.optim.Adamax``.  Keras divides by ``u + epsilon``, torch takes
    ``u = max(beta_2*u, |g| + epsilon)``."""

    torch_class = torch.optim.Adamax

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = _betas(self, beta_1, beta_2, epsilon)

    def _hyper(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}

    def _torch_args(self):
        return {"betas": (self.beta_1, self.beta_2), "eps": self.epsilon, "weight_decay": self.weight_decay or 0.0}


class Nadam(Optimizer):
    """Keras ``Nadam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)`` ->
    ``torch.optim.NAdam(momentum_decay=1.0)``.

    Keras' momentum schedule is ``beta_1 * (1 - 0.5 * 0.96**t)``; torch's is
    ``beta_1 * (1 - 0.5 * 0.96**(t * momentum_decay))`` with default ``momentum_decay=0.004``,
    so ``momentum_decay=1.0`` reproduces Keras (torch's default would be a **visible**
    difference).  Both add epsilon to the bias-corrected ``sqrt(v_hat)``."""

    torch_class = torch.optim.NAdam

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = _betas(self, beta_1, beta_2, epsilon)

    def _hyper(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}

    def _torch_args(self):
        args = {"betas": (self.beta_1, self.beta_2), "eps": self.epsilon, "momentum_decay": 1.0}
        if self.weight_decay:
            args.update(weight_decay=float(self.weight_decay), decoupled_weight_decay=True)
        return args


def _learning_rate(opt, value):
    """Keras: a float >= 0, a ``LearningRateSchedule`` or a callable ``step -> rate``. Checked here,
    not at the first ``fit`` step."""
    if callable(value) and not isinstance(value, torch.Tensor):
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    return _checks.number(opt, "learning_rate", value, low=0.0,
                          alternatives="a LearningRateSchedule or a callable(step) -> rate")


def _betas(opt, beta_1, beta_2, epsilon):
    return (_checks.number(opt, "beta_1", beta_1, low=0.0, high=1.0, high_open=True),
            _checks.number(opt, "beta_2", beta_2, low=0.0, high=1.0, high_open=True),
            _checks.number(opt, "epsilon", epsilon, low=0.0))


_BY_NAME = {c.__name__.lower(): c for c in (SGD, RMSprop, Adam, AdamW, Adagrad, Adadelta, Adamax, Nadam)}


def get(identifier, params=None):
    """Resolve an optimizer identifier.

    ``identifier``: a name (``"adam"``, ``"RMSprop"``, ...), a dict ``{"class_name": ..., "config":
    {...}}``, an ``Optimizer``, a ``torch.optim.Optimizer`` instance or a ``torch.optim``
    class.  With ``params`` the result is a built ``torch.optim.Optimizer``; without, an
    (unbuilt unless given built) ``Optimizer``.
    """
    opt = _resolve(identifier)
    if params is None:
        return opt
    if opt.torch_optimizer is None:
        opt.build(params)
    return opt.torch_optimizer


def _resolve(identifier) -> Optimizer:
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, torch.optim.Optimizer):
        return TorchOptimizer(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    if isinstance(identifier, type) and issubclass(identifier, torch.optim.Optimizer):
        return TorchOptimizer(identifier)
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower())
        if cls is None:
            raise ValueError(f"Unknown optimizer {identifier!r}. Known names: {sorted(_BY_NAME)}; "
                             "or pass an Optimizer object or a torch.optim.Optimizer.")
        return cls()
    if type(identifier).__module__.startswith("keras") and hasattr(identifier, "get_config"):
        return _from_keras(identifier)
    if isinstance(identifier, dict) and "class_name" in identifier:
        cls = _BY_NAME.get(str(identifier["class_name"]).lower())
        if cls is None:
            raise ValueError(f"Unknown optimizer class_name {identifier['class_name']!r}. "
                             f"Known: {sorted(_BY_NAME)}")
        return cls.from_config(dict(identifier.get("config", {})))
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r} (type {type(identifier).__name__}). "
                     "Expected a name such as 'adam', an rnnstate.training.optimizers.Optimizer, or a "
                     "torch.optim.Optimizer.")


def _from_keras(obj):
    """The torch-backed twin of a ``keras.optimizers`` object, from its config (for ported code)."""
    cls = _BY_NAME.get(type(obj).__name__.lower())
    if cls is None:
        raise ValueError(f"No torch equivalent for the Keras optimizer {type(obj).__name__}; "
                         f"known: {sorted(_BY_NAME)}.")
    cfg = obj.get_config()
    if cfg.get("use_ema") or cfg.get("gradient_accumulation_steps") or cfg.get("loss_scale_factor"):
        raise ValueError("use_ema, gradient_accumulation_steps and loss_scale_factor are not supported; received "
                         f"{type(obj).__name__} with config {cfg}.")
    keep = set(inspect.signature(cls.__init__).parameters) | set(inspect.signature(Optimizer.__init__).parameters)
    lr = cfg.get("learning_rate")
    if isinstance(lr, dict):   # a serialized schedule: use the object itself, it is callable(step)
        cfg["learning_rate"] = obj._learning_rate
    return cls(**{k: v for k, v in cfg.items() if k in keep and k not in ("self", "torch_kwargs")})
