"""The one place that decides whether an HDF5 object may be read: loading an HDF5 file is parsing.

HDF5 can make a dataset read bytes from elsewhere: *external storage* (raw data in another file of
the local filesystem), *virtual datasets* (views onto datasets of other files; h5py's handling of
crafted ones can crash the interpreter), *external links* and *soft links* (a name in this file
that resolves into another file or elsewhere in this one), and *filters* (arbitrary, possibly
plugin-provided decoders). A weights file needs none of these. Before any data is read, every
dataset goes through `check_dataset` and every name through `member`, which accept only:

* hard links to objects inside this file (``h5py.HardLink``; no soft or external links);
* datasets whose layout is contiguous, chunked or compact (``H5D_CONTIGUOUS`` / ``CHUNKED`` /
  ``COMPACT``, never ``VIRTUAL``), with no external storage (``get_external_count() == 0``);
* filters from the standard set (`ALLOWED_FILTERS`: deflate/gzip, shuffle, fletcher32, szip, lzf);
* float or integer dtypes of at most 8 bytes (no compound, string, object, reference or vlen types);
* at most `MAX_RANK` axes and `MAX_ELEMENTS` elements.

Everything is read from the dataset creation property list and the dataspace, never from the data.
"""
from __future__ import annotations

from ._io import fail

MAX_RANK = 8
MAX_ELEMENTS = 1 << 34           # the whole file's byte size bounds the total separately (keras_h5)

# HDF5 filter ids: H5Z_FILTER_DEFLATE 1, SHUFFLE 2, FLETCHER32 3, SZIP 4; LZF (h5py's own) 32000.
ALLOWED_FILTERS = {1: "gzip/deflate", 2: "shuffle", 3: "fletcher32", 4: "szip", 32000: "lzf"}


def member(h5py, group, key, path, where):
    """``group[key]`` if it is a hard link to an object in this file, None if absent; refuses soft and
    external links (checked with ``getlink=True``, which does not follow them)."""
    try:
        link = group.get(key, getlink=True)
    except (KeyError, ValueError, TypeError):
        return None
    if link is None:
        return None
    if not isinstance(link, h5py.HardLink):
        kind = type(link).__name__
        target = getattr(link, "filename", None) or getattr(link, "path", None)
        raise fail(path, f"{where}: '{key}' is an HDF5 {kind} (to {target!r:.80}); only objects stored in "
                         f"the file itself are read (soft and external links are refused).")
    return group[key]


def has(group, key):
    """Whether `group` has a link named `key`, without following it (``key in group`` may resolve
    soft and external links)."""
    try:
        return group.get(key, getlink=True) is not None
    except (KeyError, ValueError, TypeError):
        return False


def check_dataset(h5py, ds, path, where):
    """Refuse `ds` unless it is plain in-file data (see the module docstring). Reads no data."""
    name = ds.name
    dcpl = ds.id.get_create_plist()
    layout = dcpl.get_layout()
    plain = {h5py.h5d.CONTIGUOUS: "contiguous", h5py.h5d.CHUNKED: "chunked", h5py.h5d.COMPACT: "compact"}
    if layout not in plain:
        kind = "virtual" if layout == getattr(h5py.h5d, "VIRTUAL", -1) else f"layout {layout}"
        raise fail(path, f"{where}: dataset '{name}' is a {kind} dataset; only contiguous, chunked or "
                         f"compact in-file data is read.")
    if dcpl.get_external_count() != 0:
        raise fail(path, f"{where}: dataset '{name}' keeps its data in external file(s); only data stored "
                         f"in the file itself is read.")
    for i in range(dcpl.get_nfilters()):
        fid = dcpl.get_filter(i)[0]
        if fid not in ALLOWED_FILTERS:
            raise fail(path, f"{where}: dataset '{name}' uses HDF5 filter {fid}; only "
                             f"{', '.join(ALLOWED_FILTERS.values())} are accepted.")
    dt = ds.dtype
    if dt.kind not in "fiu" or dt.itemsize > 8 or dt.fields is not None or dt.subdtype is not None:
        raise fail(path, f"{where}: dataset '{name}' has dtype {dt}; expected plain floats or integers.")
    shape = ds.shape
    if shape is None or len(shape) > MAX_RANK:
        raise fail(path, f"{where}: dataset '{name}' has shape {shape}; at most {MAX_RANK} axes are accepted.")
    n = 1
    for d in shape:
        n *= int(d)
    if n > MAX_ELEMENTS:
        raise fail(path, f"{where}: dataset '{name}' declares {n} elements, over the {MAX_ELEMENTS} limit.")
    return ds


def read(h5py, ds, path, where, dtype):
    """The data of `ds` as a numpy array of `dtype`, after `check_dataset`. With `dtype=None`, float64 and
    float16 data keep their dtype (a float64 / float16 model's weights) and everything else becomes float32."""
    import numpy as np
    check_dataset(h5py, ds, path, where)
    if dtype is None:
        a = np.asarray(ds[()])
        return a if a.dtype in (np.float64, np.float16) else a.astype(np.float32)
    return np.asarray(ds[()], dtype=dtype)
