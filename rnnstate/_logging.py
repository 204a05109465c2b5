"""Whether progress output is interactive (tqdm bars). Keras' ``keras.utils.enable_interactive_logging`` /
``disable_interactive_logging`` / ``is_interactive_logging_enabled`` set and read it (``rnnstate.utils``)."""

_INTERACTIVE = [True]


def is_interactive() -> bool:
    return _INTERACTIVE[0]


def set_interactive(value: bool) -> None:
    _INTERACTIVE[0] = bool(value)
