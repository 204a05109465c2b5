"""Saving and loading models and weights.

Formats (chosen by extension when writing, recognised by content when reading):

* ``.safetensors``: rnnstate's native format, one safetensors file whose metadata holds the JSON
  architecture (see :mod:`rnnstate.saving.native` for the layout and why).
* ``.keras``: Keras 3's format (zip of ``config.json``, ``metadata.json``, ``model.weights.h5``),
  read and written for the layers rnnstate has, so files move between rnnstate and Keras 3.
* ``.weights.h5``: Keras 3's weights-only layout (``save_weights`` / ``load_weights``).
* ``.h5``: Keras 2 (and Keras 3 legacy) full-model and weights files, read only.

Loading is a parser: it never executes code (no pickle, no eval, no imports: classes come only from
``rnnstate.serialization.registry()``), reads HDF5 data only from plain in-file datasets (no external
storage, virtual datasets, soft/external links or non-standard filters: ``_h5guard``), builds the model
first on the meta device (shapes only) and refuses a config whose parameters can't be in the file,
validates compile/optimizer state as data, checks every declared size, shape and count before building
the model or assigning a weight, and raises :class:`FileFormatError` (a ``ValueError``) naming the file
and the problem; a failed load changes nothing. Saving is atomic (temporary file, fsync, rename) and
removes temporary files that killed saves of the same target left behind.
"""
from ._io import FileFormatError
from .api import (load_model, load_weights, model_from_config, model_from_json, save_model, save_weights,
                  to_json)
from .mixin import SavingMixin

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "model_from_json", "model_from_config",
           "to_json", "SavingMixin", "FileFormatError"]
