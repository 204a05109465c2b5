"""File plumbing shared by every format: bounded reads, atomic writes, error wording."""
from __future__ import annotations

import os
import secrets

# Hard caps on what a file may *declare*; anything bigger is refused before memory is allocated.
MAX_JSON_BYTES = 64 << 20          # a config / header JSON
MAX_ZIP_RATIO = 100                # uncompressed / compressed size, for zip members over 1 MiB
MAX_MEMBER_BYTES = 64 << 30        # one zip member (the weights file), uncompressed


class FileFormatError(ValueError):
    """A file that can't be loaded: wrong format, corrupt, truncated, crafted or inconsistent with its
    model. The message names the file and the problem; nothing has been assigned when it is raised."""


def fail(path, msg, cause=None):
    err = FileFormatError(f"cannot load '{os.fspath(path)}': {msg}")
    if cause is not None:
        err.__cause__ = cause
    return err


def read_bytes(path) -> bytes:
    """The whole file (its real size bounds every later allocation)."""
    with open(path, "rb") as f:
        return f.read()


def atomic_write(path, data: bytes):
    """Write `data` to `path` so that a crash at any instant leaves either the old file or the new one.

    The bytes go to a temporary file in the same directory (so the rename stays on one filesystem),
    are flushed and fsync'ed, and the temporary file is renamed over `path` (``os.replace`` is atomic
    on POSIX and Windows); the directory is then fsync'ed so the rename itself survives a power cut.
    A killed process may leave a ``.<name>.<random>.tmp`` file behind; it is never read.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)          # the umask applies, as for a plain open()
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"could not create a temporary file next to '{path}'.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:                  # e.g. Windows: directories can't be opened
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def check_overwrite(path, overwrite):
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"'{os.fspath(path)}' exists and overwrite=False.")


def sniff(data: bytes) -> str:
    """'zip', 'hdf5', 'safetensors' or 'unknown', from the first bytes."""
    if data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06":
        return "zip"
    if data[:8] == b"\x89HDF\r\n\x1a\n":
        return "hdf5"
    if len(data) >= 9 and data[8:9] == b"{":
        return "safetensors"
    return "unknown"


def import_h5py(path, what):
    try:
        import h5py
    except ImportError:
        raise ImportError(f"{what} '{os.fspath(path)}' needs h5py: pip install h5py "
                          f"(or rnnstate[h5]).") from None
    return h5py
