"""Packaging never silently loses speed: the sdist carries the kernel sources, and a wheel built with build
isolation (no torch in the build environment) either carries the compiled module or, installed and used,
warns once with the how-to while ``last_path`` names the reason. Version from one place."""
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_SKIP = shutil.ignore_patterns("__pycache__", "*.so", "*.pyd", "_C.torch_version", "*.egg-info", "build")


def _source_copy(dest: Path) -> Path:
    """What an sdist needs, copied from this checkout (no in-place build, no egg-info)."""
    src = dest / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "rnnstate", src / "rnnstate", ignore=_SKIP)
    return src


def _version_file() -> str:
    ns = {}
    exec((ROOT / "rnnstate" / "_version.py").read_text(), ns)
    return ns["__version__"]


def test_sdist_carries_kernel_sources(tmp_path):
    src = _source_copy(tmp_path)
    out = tmp_path / "dist"
    # as a build frontend would, without torch deciding what goes in (RNNSTATE_NO_EXT: no extension listed)
    code = f"from setuptools import build_meta as b; print(b.build_sdist({str(out)!r}))"
    r = subprocess.run([sys.executable, "-c", code], cwd=src, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, RNNSTATE_NO_EXT="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    name = r.stdout.strip().splitlines()[-1]
    assert name == f"rnnstate-{_version_file()}.tar.gz"
    with tarfile.open(out / name) as tar:
        members = {m.split("/", 1)[1] for m in tar.getnames() if "/" in m}
    wanted = {f"rnnstate/_ext/{p.name}" for p in (ROOT / "rnnstate" / "_ext").iterdir()
              if p.suffix in (".cpp", ".h")}
    assert len(wanted) >= 5 and wanted <= members, sorted(wanted - members)
    assert {"setup.py", "pyproject.toml", "MANIFEST.in"} <= members
    assert not any(m.endswith((".so", "_C.torch_version")) for m in members)


def test_isolated_wheel_has_kernels_or_warns_once_with_howto(tmp_path):
    src = _source_copy(tmp_path)
    wheels = tmp_path / "wheels"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(wheels)],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    (whl,) = wheels.glob("rnnstate-*.whl")
    assert whl.name.startswith(f"rnnstate-{_version_file()}-")
    with zipfile.ZipFile(whl) as z:
        names = z.namelist()
    has_module = any(n.startswith("rnnstate/_ext/_C.") and n.endswith((".so", ".pyd")) for n in names)
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                        str(whl)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    probe = r'''
import json, warnings, importlib.metadata, torch
import rnnstate
from rnnstate import _ext, layers
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    layer = layers.LSTM(4)
    x = torch.randn(2, 3, 5)
    with torch.no_grad():          # inference on a short sequence: where the compiled kernel would run
        layer(x); first = layer.last_path
        layer(x); layers.GRU(3)(x)
print(json.dumps({"file": rnnstate.__file__, "version": rnnstate.__version__,
                  "dist_version": importlib.metadata.version("rnnstate"), "reason": _ext.unavailable_reason(),
                  "path": first, "warnings": [str(w.message) for w in caught
                                             if issubclass(w.category, _ext.KernelsUnavailableWarning)]}))
'''
    env = {k: v for k, v in os.environ.items() if k not in ("RNNSTATE_NO_EXT", "PYTHONPATH")}
    env["PYTHONPATH"] = str(target)
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["file"].startswith(str(target))
    assert got["version"] == got["dist_version"] == _version_file()
    if has_module:
        assert got["reason"] is None and got["warnings"] == [] and got["path"].startswith("compiled-LSTM")
    else:
        assert "not built" in got["reason"]
        assert len(got["warnings"]) == 1, got["warnings"]              # once, for three calls of two layers
        assert "pip install --no-build-isolation ." in got["warnings"][0]
        assert "not built" in got["path"], got["path"]
    r = subprocess.run([sys.executable, "-m", "rnnstate", "--version"], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path, env=env)
    assert r.returncode == 0 and r.stdout.strip() == f"rnnstate {_version_file()}", r.stdout + r.stderr
