"""Named results that explain a wrong unpacking count.

``a, b, c = Bidirectional(LSTM(8, return_state=True))(x)`` gets 5 values. Python's own message
("too many values to unpack (expected 3)") does not say which 5. A result made by
:func:`checked_result_type` looks, when it is iterated, at the instruction that asked for the
iteration; when that is an unpacking into a different number of names, it raises a ValueError
that lists the fields and how to get them (wording in ``_checks.unpack_count``). Any other
iteration (``for``, ``list(...)``, ``*res``) is untouched, and if the look fails for any reason
the result iterates as a plain tuple.
"""
from __future__ import annotations

import dis
import sys

_UNPACK_ARGS: dict = {}        # (code, offset) -> number of names, or None when not an unpacking


def _unpack_target_count(frame):
    code, off = frame.f_code, frame.f_lasti
    key = (code, off)
    n = _UNPACK_ARGS.get(key, False)
    if n is False:
        n = None
        for ins in dis.get_instructions(code):
            if ins.offset == off:
                n = ins.arg if ins.opname == "UNPACK_SEQUENCE" else None
                break
        if len(_UNPACK_ARGS) < 100_000:
            _UNPACK_ARGS[key] = n
    return n


class _CheckedUnpack:
    __slots__ = ()
    _owner = ""

    def __iter__(self):
        try:
            n = _unpack_target_count(sys._getframe(1))
        except Exception:                       # never let the check itself fail a user's code
            n = None
        if n is not None and n != len(self):
            from .. import _checks
            raise _checks.unpack_count(self._owner, self._fields, n)
        return tuple.__iter__(self)


_CACHE: dict = {}


def checked_result_type(base, owner: str):
    """A subclass of the NamedTuple result class `base` whose wrong-count unpacking names `owner`."""
    key = (base, owner)
    t = _CACHE.get(key)
    if t is None:
        t = type(base.__name__, (_CheckedUnpack, base), {"__slots__": (), "_owner": owner})
        _CACHE[key] = t
    return t
