"""Builds the optional compiled kernels (``rnnstate._ext._C``); all other metadata is in pyproject.toml.

The extension compiles against the torch already installed, so install with
``pip install --no-build-isolation -e .`` (build isolation would fetch a second, possibly CUDA, torch).
Without torch at build time, or with RNNSTATE_NO_EXT=1, the package installs without it and
``rnnstate._ext.unavailable_reason()`` says why; the layers then use the pure-torch paths.
"""
import glob
import importlib.util
import os

from setuptools import setup

EXT_SOURCES = [os.path.join("rnnstate", "_ext", name)
               for name in ("_C.cpp", "pointwise.cpp", "backward.cpp", "gemm.cpp", "mixed.cpp", "small_batch.cpp")]


def _blas_macros(torch):
    """Which BLAS entry points torch's libtorch_cpu exports (the extension links against it):
    the Fortran sgemm_/dgemm_/sgemv_/dgemv_ (MKL and OpenBLAS builds). Without them the kernel
    calls at::addmm_out per step (slower at small batch, same numbers)."""
    import ctypes
    libs = glob.glob(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.*"))
    if not libs:
        return []
    lib = ctypes.CDLL(libs[0])
    if all(hasattr(lib, s) for s in ("sgemm_", "dgemm_", "sgemv_", "dgemv_")):
        return [("RNNSTATE_DIRECT_BLAS", None)]
    return []


def _openmp_flags(torch):
    """-fopenmp at compile time only, where torch itself runs on GCC's OpenMP (Linux wheels): the kernels'
    at::parallel_for regions then run on torch's threads. Not at link time: the OpenMP calls resolve to the
    runtime libtorch_cpu already loaded (its own libgomp), never to a second copy with a thread pool of its
    own. Without it (other platforms) at::parallel_for runs the kernels' loops on the calling thread."""
    import sys
    if not sys.platform.startswith("linux") or "OpenMP" not in torch.__config__.parallel_info():
        return []
    if os.environ.get("RNNSTATE_EXT_NO_OPENMP"):
        return []
    return ["-fopenmp"]


def _sources_digest():
    """sha256 of the extension's sources, recorded next to the module: the runtime refuses a module built
    from other sources (a stale build left behind when a rebuild failed)."""
    import hashlib
    h = hashlib.sha256()
    for name in sorted(glob.glob(os.path.join("rnnstate", "_ext", "*.cpp")) +
                       glob.glob(os.path.join("rnnstate", "_ext", "*.h"))):
        with open(name, "rb") as f:
            h.update(os.path.basename(name).encode() + b"\0" + f.read())
    return h.hexdigest()


def _extensions():
    if os.environ.get("RNNSTATE_NO_EXT") or importlib.util.find_spec("torch") is None:
        return [], {}
    import torch
    from torch.utils.cpp_extension import BuildExtension, CppExtension

    class BuildExt(BuildExtension):
        """Also records, next to the module, which torch it was built against and a digest of its
        sources: the runtime refuses a module built for another torch or from other sources
        (explicitly, before importing it)."""

        def run(self):
            super().run()
            for ext in self.extensions:
                path = self.get_ext_fullpath(ext.name)
                if os.path.exists(path):
                    with open(os.path.join(os.path.dirname(path), "_C.torch_version"), "w") as f:
                        f.write(torch.__version__ + "\n" + _sources_digest())

    macros = [] if os.environ.get("RNNSTATE_EXT_NO_BLAS") else _blas_macros(torch)
    flags = ["-O3", "-g0"] + _openmp_flags(torch)
    ext = CppExtension("rnnstate._ext._C", EXT_SOURCES, define_macros=macros,
                       depends=[os.path.join("rnnstate", "_ext", h) for h in
                                ("pointwise.h", "blas.h", "kernels.h", "loops.h", "gemm.h", "small_batch.h", "fastmath.h")],
                       extra_compile_args=flags, optional=True)
    return [ext], {"build_ext": BuildExt.with_options(use_ninja=False)}


ext_modules, cmdclass = _extensions()
setup(ext_modules=ext_modules, cmdclass=cmdclass)
