"""Layer configs <-> objects, through rnnstate's own registry only (no imports, no eval)."""
from __future__ import annotations

from . import _checks


def registry() -> dict:
    from . import layers, models
    names = list(layers.__all__)
    reg = {n: getattr(layers, n) for n in names if isinstance(getattr(layers, n), type)}
    reg.update({"Model": models.Model, "Functional": models.Model, "Sequential": models.Sequential})
    return reg


def deserialize_layer(spec):
    """``{"class_name": ..., "config": {...}}`` -> a layer. Unknown classes (``Lambda``, user code) are
    refused: nothing in a config is ever imported or executed."""
    if not isinstance(spec, dict) or "class_name" not in spec:
        raise ValueError(f"a layer spec must be a dict with 'class_name' and 'config'; received {spec!r:.200}")
    reg = registry()
    cls = reg.get(spec["class_name"])
    if cls is None:
        raise ValueError(f"unknown layer class {spec['class_name']!r}: rnnstate loads only its own layers "
                         f"({', '.join(sorted(reg))}); code-carrying layers such as Lambda are refused.")
    return cls.from_config(dict(spec.get("config", {})))
