"""`Sequential`: a stack of single-output layers, built as a functional graph."""
from __future__ import annotations

from .. import _checks
from .._symbolic import SymbolicTensor, flatten
from ..layers.base import Layer, _numbers_only, shape_of, to_tensor
from ..layers.core import Input, InputLayer
from .functional import Model, _register_by_position


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
                self._layers = {l.name: l for l in self._stack}
                _register_by_position(self, self._stack)
            return
        x = self._input_tensor
        for i, layer in enumerate(self._stack):
            y = layer(x)
            n = len(flatten(y))
            if n != 1 and i < len(self._stack) - 1:        # Keras 3: only the last layer may return several
                first = "output, h, c" if "c" in getattr(y, "_fields", ()) else "output, h"
                raise _checks.error(self, f"every layer but the last in a Sequential model must return a single "
                                          f"tensor; {_checks.who(layer)} returns {n} ({', '.join(getattr(y, '_fields', ())) or n}"
                                          f"; return_state=True?) and is followed by "
                                          f"{_checks.who(self._stack[i + 1])}. Use the functional API to route "
                                          f"states (`{first} = layer(x)`, then `Model(inputs, [...])`).")
            x = y
        self._init_graph(self._input_tensor, x)
        _register_by_position(self, self._stack)     # keys follow `model.layers` (no input layer)
        self._graph_ready = True

    def _own_float_dtype(self, dtype):
        super()._own_float_dtype(dtype)
        if self._input_tensor is not None:      # the input layer is not among the registered (positional) layers
            self._input_tensor.layer._own_float_dtype(dtype)

    def _build_from_data(self, x):
        if _numbers_only(x):            # a nested list of numbers is one array
            x = to_tensor(x, None, owner=self)
        shape = shape_of(x) if not isinstance(x, (list, tuple)) else shape_of(x[0])
        dtype = self._dtype_name          # float32, or what .to(dtype) / .double() set
        if hasattr(x, "dtype") and str(x.dtype).replace("torch.", "").startswith(("int", "uint")):
            dtype = "int64"
        self._input_tensor = Input(batch_shape=(None,) + tuple(shape[1:]), dtype=dtype)
        self._rebuild()

    def build(self, input_shape=None):
        if not self._graph_ready and input_shape is not None:
            self._input_tensor = Input(batch_shape=tuple(input_shape), dtype=self._dtype_name)
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

    @property
    def input_shape(self):
        self._require_built("input_shape")
        return super().input_shape

    @property
    def output_shape(self):
        self._require_built("output_shape")
        return super().output_shape

    def _require_built(self, what):
        if not self._graph_ready:
            raise _checks.error(self, f"has no `{what}` yet: give the input shape (an `Input(...)` first, or "
                                      f"`input_shape=` on the first layer) or call it on data first.")

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
