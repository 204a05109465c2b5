"""The seed tutorial's listings (examples/seed_*.py) run with `keras` -> `rnnstate` and give Keras' numbers."""
import contextlib
import io
import runpy
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SEED = sorted(EXAMPLES.glob("seed_*.py"))


def _run_source(src):
    ns = {"__name__": "__main__"}
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(src, "<listing>", "exec"), ns)
    return ns, buf.getvalue()


def test_there_are_four_seed_listings():
    assert len(SEED) == 4


@pytest.mark.parametrize("path", SEED, ids=[p.stem for p in SEED])
def test_seed_listing_runs_and_matches_keras(path):
    src = path.read_text()
    ours, printed = _run_source(src)
    # printed model.predict(data), as the tutorial (after the progress bar, as Keras)
    assert any(line.startswith(("[[", "[array")) for line in printed.splitlines()), printed
    theirs, _ = _run_source(src.replace("rnnstate", "keras"))     # the original listing
    km, rm = theirs["model"], ours["model"]
    rm.set_weights(km.get_weights())
    data = ours["data"]
    got, want = rm.predict(data, verbose=0), km.predict(data, verbose=0)
    if isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want)
    else:
        got, want = [got], [want]
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype == np.float32
        np.testing.assert_allclose(g, w, atol=1e-5)


def test_demo_runs_and_writes_pngs(tmp_path, capsys):
    from rnnstate import demo
    assert demo.main(["demo", "--out", str(tmp_path / "plots"), "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "seq[:, -1] == h: True" in out and "h_t == o_t * tanh(c_t) at every step: True" in out
    diffs = [float(line.rsplit("=", 1)[1]) for line in out.splitlines() if "max |rnnstate - keras|" in line]
    assert len(diffs) == 4 and max(diffs) < 1e-5                     # Keras, given the same weights, agrees
    for name in ("states.png", "gates.png"):
        png = tmp_path / "plots" / name
        assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "step/s" not in out                                        # no progress bars in the demo


def test_demo_cli(tmp_path):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "rnnstate", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "demo" in r.stdout
    r = subprocess.run([sys.executable, "-m", "rnnstate", "--version"], capture_output=True, text=True)
    import rnnstate
    assert r.returncode == 0 and rnnstate.__version__ in r.stdout
    r = subprocess.run([sys.executable, "-m", "rnnstate", "demo", "--bogus"], capture_output=True, text=True)
    assert r.returncode == 2 and "--bogus" in r.stderr
    assert not (tmp_path / "--out").exists()
