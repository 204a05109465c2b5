import inspect
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

keras = pytest.importorskip("keras")   # the reference implementation

from rnnstate.training import optimizers  # noqa: E402

NAMES = ["Adam", "RMSprop", "SGD", "Adagrad", "AdamW", "Nadam", "Adadelta", "Adamax"]
HYPER = ("learning_rate", "beta_1", "beta_2", "epsilon", "rho", "momentum", "centered", "nesterov",
         "initial_accumulator_value", "weight_decay", "amsgrad")


def _defaults(cls):
    return {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items() if k in HYPER}


def _our_defaults(cls):
    """Subclass defaults, plus the ones its ``**kwargs`` pass to the ``Optimizer`` base."""
    out = {k: v for k, v in _defaults(optimizers.Optimizer).items() if k != "learning_rate"}
    out.update(_defaults(cls))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_defaults_match_installed_keras(name):
    ours, theirs = _our_defaults(getattr(optimizers, name)), _defaults(getattr(keras.optimizers, name))
    assert ours == theirs
    cfg = getattr(optimizers, name)().get_config()   # what the object holds matches too
    for k, v in theirs.items():
        assert cfg[k] == v, (name, k)


def test_get_builds_torch_optimizers_with_keras_defaults():
    p = [torch.nn.Parameter(torch.zeros(2))]
    adam = optimizers.get("adam", p)
    assert isinstance(adam, torch.optim.Adam)
    g = adam.param_groups[0]
    assert (g["lr"], g["betas"], g["eps"], g["weight_decay"]) == (0.001, (0.9, 0.999), 1e-7, 0)
    rms = optimizers.get("rmsprop", p).param_groups[0]
    assert (rms["lr"], rms["alpha"], rms["eps"], rms["momentum"], rms["centered"]) == (0.001, 0.9, 1e-7, 0.0, False)
    assert optimizers.get("sgd", p).param_groups[0]["lr"] == 0.01
    ada = optimizers.get("Adagrad", p).param_groups[0]
    assert (ada["lr"], ada["initial_accumulator_value"], ada["eps"]) == (0.001, 0.1, 1e-7)
    assert optimizers.get("adamw", p).param_groups[0]["weight_decay"] == 0.004
    nadam = optimizers.get("nadam", p)
    assert isinstance(nadam, torch.optim.NAdam) and nadam.param_groups[0]["momentum_decay"] == 1.0
    assert optimizers.get("adadelta", p).param_groups[0]["rho"] == 0.95
    assert isinstance(optimizers.get("adamax", p), torch.optim.Adamax)
    ready = torch.optim.SGD(p, lr=0.3)
    assert optimizers.get(ready, p) is ready


def test_optimizer_objects_remember_config_and_build_later():
    opt = optimizers.Adam(learning_rate=0.05, beta_1=0.8, clipnorm=1.0)
    assert not opt.built and opt.learning_rate == 0.05
    assert opt.get_config()["beta_1"] == 0.8
    p = [torch.nn.Parameter(torch.ones(3))]
    t = opt.build(p)
    assert t.param_groups[0]["betas"] == (0.8, 0.999)
    opt.learning_rate = 0.01
    assert t.param_groups[0]["lr"] == 0.01 and opt.param_groups is t.param_groups
    with pytest.raises(ValueError, match="Only one of"):
        optimizers.SGD(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match="Unknown optimizer 'adamz'"):
        optimizers.get("adamz")


@pytest.mark.parametrize("name,kwargs", [
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9}),
    ("SGD", {"learning_rate": 0.1, "nesterov": True, "momentum": 0.5}),
    ("RMSprop", {}), ("RMSprop", {"momentum": 0.5, "centered": True}), ("Adam", {}), ("Adam", {"amsgrad": True}),
    ("AdamW", {"learning_rate": 0.01}), ("Nadam", {}), ("Adagrad", {"learning_rate": 0.1}),
    ("Adadelta", {"learning_rate": 1.0}), ("Adamax", {}), ("Adam", {"weight_decay": 0.1}),
])
def test_updates_track_keras(name, kwargs):
    """torch's update math with the mapped hyperparameters follows Keras' (epsilon placement aside)."""
    rng = np.random.default_rng(1)
    w0 = rng.normal(size=(5,)).astype("float32")
    c = rng.uniform(0.5, 2.0, size=(5,)).astype("float32")
    kv = keras.Variable(w0.copy())
    kopt = getattr(keras.optimizers, name)(**kwargs)
    p = torch.nn.Parameter(torch.tensor(w0.copy()))
    topt = getattr(optimizers, name)(**kwargs)
    topt.build([p])
    for _ in range(6):
        g = 2 * c * np.asarray(kv.value) + 0.1
        kopt.apply_gradients([(keras.ops.convert_to_tensor(g), kv)])
        p.grad = 2 * torch.tensor(c) * p.detach() + 0.1
        topt.step()
    np.testing.assert_allclose(p.detach().numpy(), np.asarray(kv.value), rtol=2e-5, atol=2e-6)


def test_clipping_and_schedule():
    p = torch.nn.Parameter(torch.zeros(4))
    opt = optimizers.SGD(learning_rate=lambda step: 1.0 / (step + 1), global_clipnorm=1.0)
    opt.build([p])
    for _ in range(2):
        p.grad = torch.full((4,), 10.0)
        opt.step()
    # step 0: lr 1, clipped grad 0.5 each -> -0.5; step 1: lr 0.5 -> -0.75
    np.testing.assert_allclose(p.detach().numpy(), -0.75, rtol=1e-6)
    assert opt.iterations == 2


def test_keras_optimizer_objects_are_converted():
    opt = optimizers.get(keras.optimizers.Adam(learning_rate=0.01, beta_1=0.8, clipnorm=1.0))
    assert isinstance(opt, optimizers.Adam) and (opt.beta_1, opt.clipnorm) == (0.8, 1.0)
    assert opt.learning_rate == pytest.approx(0.01)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    sgd = optimizers.get(keras.optimizers.SGD(learning_rate=schedule))
    p = torch.nn.Parameter(torch.zeros(1))
    sgd.build([p])
    for _ in range(11):
        p.grad = torch.ones(1)
        sgd.step()
    assert sgd.learning_rate == pytest.approx(0.05)   # the schedule at step 10
    with pytest.raises(ValueError, match="use_ema"):
        optimizers.get(keras.optimizers.Adam(use_ema=True))


def test_fused_update_by_default_unless_the_user_chooses():
    """Adam/AdamW/SGD use torch's fused kernel (same math as the default foreach update: checked
    against it over a few steps); an explicit foreach=/fused= is left alone and kept in the config."""
    def run(opt):
        torch.manual_seed(0)
        p = torch.nn.Parameter(torch.randn(7, 3))
        o = opt.build([p])
        for _ in range(5):
            o.zero_grad()
            (p.sin() * torch.arange(21.0).view(7, 3)).sum().backward()
            o.step()
        return p.detach(), o

    for cls in (optimizers.Adam, optimizers.AdamW, optimizers.SGD):
        kw = {"momentum": 0.9} if cls is optimizers.SGD else {}
        fused_p, o = run(cls(**kw))
        assert o.param_groups[0]["fused"] is True, cls
        plain_p, o2 = run(cls(foreach=True, **kw))
        assert not o2.param_groups[0]["fused"]
        assert cls(foreach=True, **kw).get_config()["foreach"] is True
        assert "fused" not in cls(**kw).get_config()
        torch.testing.assert_close(fused_p, plain_p, atol=1e-6, rtol=1e-6)
    _, o = run(optimizers.RMSprop())
    assert "fused" not in o.param_groups[0] or not o.param_groups[0]["fused"]
