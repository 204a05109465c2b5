"""Benchmarks are not tests; CI only keeps the bench script working with a tiny grid."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_smoke_runs_and_writes_json(tmp_path):
    out = tmp_path / "smoke.json"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_rnn.py"), "--smoke", "--out", str(out)],
                       capture_output=True, text=True, timeout=240, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["header"]["cpu_model"] and data["results"]
    assert any(r.get("impl", "").startswith("rs") or "rs_" in json.dumps(r) for r in data["results"])


def test_training_bench_smoke_runs(tmp_path):
    out = tmp_path / "train.json"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_training.py"), "--smoke", "--out", str(out)],
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["train_step"]["rnnstate"] > 0 and data["train_step"]["torch_loop"] > 0


def test_busy_bench_smoke_runs(tmp_path):
    out = tmp_path / "busy.json"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_busy.py"), "--smoke", "--loads", "0,1",
                        "--out", str(out)], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    data = json.loads(out.read_text())
    row = data["results"]["forward (32,100,F)"]
    assert set(row) == {"rnnstate", "torch"} and set(row["rnnstate"]) == {"0", "1"}
    assert row["rnnstate"]["1"]["median_ms"] > 0 and data["header"]["check_maxabs_vs_torch"] < 1e-4


def test_streaming_bench_smoke_runs(tmp_path):
    out = tmp_path / "streaming.json"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_streaming.py"), "--smoke", "--out", str(out)],
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    data = json.loads(out.read_text())
    groups = {c["group"] for c in data["cases"]}
    assert groups == {"layer", "model", "store"} and data["header"]["machine"]["cpu_model"]
    for c in data["cases"]:
        assert c["results"][c["base"]]["median_ms"] > 0 and not c["errors"]
        assert c["max_abs_diff_vs_torch"] < 1e-4 if "max_abs_diff_vs_torch" in c else True
