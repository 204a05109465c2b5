"""Models: functional `Model`, `Sequential`, and loading."""
from .functional import Model
from .sequential import Sequential
from ..saving import load_model, model_from_json

__all__ = ["Model", "Sequential", "load_model", "model_from_json"]
