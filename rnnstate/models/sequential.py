"""`Sequential`: a stack of single-output layers, built as a functional graph."""
from __future__ import annotations

from .. import _checks
from .._symbolic import SymbolicTensor, flatten
from ..layers.base import Layer, _numbers_only, shape_of, to_tensor
from ..layers.core import Input, InputLayer
from .functional import Model


class Sequential(Model):
    """``Sequential([Input((T, F)), LSTM(4), Dense(1)])`` or ``model.add(...)`` one layer at a time.

    The input shape comes from a leading ``Input``/``InputLayer``, from ``input_shape=`` /
    ``batch_input_shape=`` on the first layer (Keras 2 style), or from the first data it sees.
    ``model.layers`` lists the layers without the input layer, as in Keras.
    """

    def __init__(self, layers=None, name=None, trainable=True, **kwargs):
        Layer.__init__(self, name=name, trainable=trainable, **kwargs)
        self._stack: list[Layer] = []
        self._input_tensor = None
        self.built = False
        self._graph_ready = False
        for layer in layers or []:
            self.add(layer)

    def add(self, layer):
        if isinstance(layer, SymbolicTensor) and isinstance(layer.layer, InputLayer):
            self._input_tensor = layer
            self._rebuild()
            return
        if isinstance(layer, InputLayer):
            self._input_tensor = layer.output_tensor
            self._rebuild()
            return
        if not isinstance(layer, Layer):
            raise _checks.error(self, f"`add` expects a layer; received {type(layer).__name__}.", TypeError)
        self._stack.append(layer)
        if self._input_tensor is None and len(self._stack) == 1 and layer._batch_input_shape is not None:
            self._input_tensor = Input(batch_shape=layer._batch_input_shape)
        self._rebuild()

    def pop(self):
        if not self._stack:
            raise _checks.error(self, "`pop` on an empty model.")
        layer = self._stack.pop()
        self._rebuild()
        return layer

    def _rebuild(self):
        if self._input_tensor is None or not self._stack:
            self._graph_ready = False
            if self._stack:
                from torch import nn
                self._layers = nn.ModuleDict({l.name: l for l in self._stack})
            return
        x = self._input_tensor
        for layer in self._stack:
            y = layer(x)
            if len(flatten(y)) != 1:
                raise _checks.error(self, f"every layer in a Sequential model must return a single tensor; "
                                          f"{_checks.who(layer)} returns {len(flatten(y))} "
                                          f"(return_state=True?). Use the functional API "
                                          f"(`Model(inputs, [output, h, c])`) to output states.")
            x = y
        self._init_graph(self._input_tensor, x)
        self._graph_ready = True

    def _build_from_data(self, x):
        if _numbers_only(x):            # a nested list of numbers is one array
            x = to_tensor(x, None, owner=self)
        shape = shape_of(x) if not isinstance(x, (list, tuple)) else shape_of(x[0])
        dtype = "float32"
        if hasattr(x, "dtype") and str(x.dtype).replace("torch.", "").startswith(("int", "uint")):
            dtype = "int64"
        self._input_tensor = Input(batch_shape=(None,) + tuple(shape[1:]), dtype=dtype)
        self._rebuild()

    def build(self, input_shape=None):
        if not self._graph_ready and input_shape is not None:
            self._input_tensor = Input(batch_shape=tuple(input_shape))
            self._rebuild()

    def _ensure(self, x):
        if not self._graph_ready:
            if not self._stack:
                raise _checks.error(self, "has no layers; `add` some first.")
            self._build_from_data(x)

    def __call__(self, *args, **kwargs):
        if args and not self._graph_ready and not isinstance(args[0], SymbolicTensor):
            self._ensure(args[0])
        elif args and not self._graph_ready:
            self._input_tensor = None
            x = args[0]
            self._input_tensor = Input(batch_shape=x.shape, dtype=x.dtype)
            self._rebuild()
        return super().__call__(*args, **kwargs)

    def predict(self, x, *args, **kwargs):
        self._ensure(x)
        return super().predict(x, *args, **kwargs)

    @property
    def layers(self):
        return list(self._stack)

    def _sublayers(self):
        return list(self._stack)

    @property
    def weights(self):
        if not self._graph_ready:
            return []
        return super().weights

    def summary(self, *args, **kwargs):
        if not self._graph_ready:
            raise _checks.error(self, "is not built yet: give the input shape (an `Input(...)` first, or "
                                      "`input_shape=` on the first layer) or call it on data before `summary()`.")
        super().summary(*args, **kwargs)
