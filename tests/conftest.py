import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pytest
import torch

# Hypothesis profiles: `ci` (default, and with CI=true) keeps the property tests short; `fuzz` (`make fuzz`,
# HYPOTHESIS_PROFILE=fuzz) runs many more examples.
try:
    from hypothesis import HealthCheck, settings
except ImportError:          # hypothesis is a test dependency; only the property tests need it
    pass
else:
    _quiet = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]
    settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True, suppress_health_check=_quiet)
    settings.register_profile("fuzz", max_examples=1500, deadline=None, suppress_health_check=_quiet)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Tests use tiny shapes: one thread is as fast, and immune to oversubscription on a shared 2-core box
# (OpenMP workers spinning against other processes can slow tiny fused calls down 100x).
torch.set_num_threads(1)

# Named, distinct sizes (B batch, T timesteps, F features, U units)
B, T, F, U = 3, 5, 4, 6


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def random_like_weights(weights, rng, scale=0.5):
    return [(rng.standard_normal(w.shape) * scale).astype("float32") for w in weights]


# Hypothesis profiles for the fuzz tests: "ci" (default, and with CI=true) keeps them short; `make fuzz`
# runs HYPOTHESIS_PROFILE=fuzz with many more examples.
try:
    from hypothesis import HealthCheck, settings as _hyp_settings
except ImportError:            # a test dependency (pyproject [test]); only the fuzz modules need it
    pass
else:
    _hyp_settings.register_profile("ci", max_examples=20, deadline=None, derandomize=True,
                                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    _hyp_settings.register_profile("fuzz", max_examples=1000, deadline=None,
                                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    _hyp_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
