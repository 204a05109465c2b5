"""`SavingMixin`: the saving half of `Model`'s API (Keras' names and signatures)."""
from __future__ import annotations


class SavingMixin:
    """``save`` / ``save_weights`` / ``load_weights`` / ``get_config`` / ``from_config`` / ``to_json``
    for `Model` and `Sequential`. Formats: see ``rnnstate.saving``."""

    def save(self, filepath, overwrite=True, include_states=False, **kwargs):
        """Save the model: ``.keras`` (Keras 3 format, loadable by Keras) or ``.safetensors`` (rnnstate's
        format). ``include_states=True`` also saves the carried states of stateful layers; `load_model`
        restores them. The write is atomic."""
        from .api import save_model
        save_model(self, filepath, overwrite=overwrite, include_states=include_states, **kwargs)

    def save_weights(self, filepath, overwrite=True, include_states=False, **kwargs):
        """Save the weights only: ``.weights.h5`` (Keras 3 layout) or ``.safetensors``."""
        from .api import save_weights
        save_weights(self, filepath, overwrite=overwrite, include_states=include_states, **kwargs)

    def load_weights(self, filepath, skip_mismatch=False, **kwargs):
        """Load weights from any model or weights file rnnstate or Keras (2 or 3) wrote; checked in full
        before anything is assigned."""
        from .api import load_weights
        load_weights(self, filepath, skip_mismatch=skip_mismatch, **kwargs)

    def get_config(self):
        """Keras 3's functional (or Sequential) config: layers, their call nodes, inputs and outputs."""
        from .config import model_config
        return model_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from ..models.sequential import Sequential
        from .api import _no_custom
        from .config import functional_from_config, sequential_from_config
        _no_custom(custom_objects)
        if issubclass(cls, Sequential):
            return sequential_from_config(cls, config)
        return functional_from_config(cls, config)

    def to_json(self, **kwargs):
        """``{"class_name", "config", ...}`` as JSON; `rnnstate.models.model_from_json` reads it back."""
        from .api import to_json
        return to_json(self, **kwargs)
