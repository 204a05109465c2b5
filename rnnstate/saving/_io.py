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


_IN_FLIGHT: set = set()          # this process's temporary files being written (other threads' saves)
_OLD_NAMES_AGE_S = 10.0          # names without a pid (earlier versions) count as stale after this long


def _temp_name(base):
    return f".{base}.{os.getpid()}.{secrets.token_hex(6)}.tmp"


def _stale_temp_files(directory, base):
    """Temporary files a killed save of `base` left in `directory`, matched exactly by the names this
    library gives them: ``.<base>.<pid>.<12 hex>.tmp`` whose process is gone (or is this one, when no
    thread of it is writing that file), and, after `_OLD_NAMES_AGE_S`, earlier versions' names
    ``.<base>.<12 hex>.tmp`` (models) and ``<base>.<8 chars>.tmp`` (``StateStore.save``). Anything
    else, however similar, is left alone."""
    import re
    import time
    b = re.escape(base)
    with_pid = re.compile(rf"\.{b}\.([0-9]{{1,10}})\.[0-9a-f]{{12}}\.tmp")
    old = re.compile(rf"\.{b}\.[0-9a-f]{{12}}\.tmp|{b}\.[a-z0-9_]{{8}}\.tmp")
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    out, now = [], time.time()
    for name in names:
        full = os.path.join(directory, name)
        m = with_pid.fullmatch(name)
        if m:
            pid = int(m.group(1))
            if pid == os.getpid():
                stale = full not in _IN_FLIGHT
            else:
                stale = not _alive(pid)
        elif old.fullmatch(name):
            try:
                stale = now - os.path.getmtime(full) > _OLD_NAMES_AGE_S
            except OSError:
                stale = False
        else:
            continue
        if stale and os.path.isfile(full) and not os.path.islink(full):
            out.append(full)
    return out


def _alive(pid):
    if os.name == "nt":                # os.kill(pid, 0) is not a probe on Windows: keep the file
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_stale_temp_files(path):
    """Delete what `_stale_temp_files` finds for `path`; errors are ignored (a file may vanish)."""
    path = os.fspath(path)
    for f in _stale_temp_files(os.path.dirname(os.path.abspath(path)), os.path.basename(path)):
        try:
            os.unlink(f)
        except OSError:
            pass


def atomic_write(path, data: bytes):
    """Write `data` to `path` so that a crash at any instant leaves either the old file or the new one.

    The bytes go to a temporary file in the same directory (so the rename stays on one filesystem),
    are flushed and fsync'ed, and the temporary file is renamed over `path` (``os.replace`` is atomic
    on POSIX and Windows); the directory is then fsync'ed so the rename itself survives a power cut.
    A killed process may leave a ``.<name>.<pid>.<random>.tmp`` file behind; it is never read, and the
    next save of the same `path` removes it (`remove_stale_temp_files`).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    remove_stale_temp_files(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(directory, _temp_name(base))
        try:
            fd = os.open(tmp, flags, 0o666)          # the umask applies, as for a plain open()
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"could not create a temporary file next to '{path}'.")
    _IN_FLIGHT.add(tmp)
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
    finally:
        _IN_FLIGHT.discard(tmp)
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
