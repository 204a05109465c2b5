"""The real-data examples (examples/sunspots.py, ucr.py, charlm.py) in their --quick versions, without Keras:
they run offline on the data shipped in statsmodels / aeon / the standard library, produce finite numbers, and
their streamed outputs equal a full-sequence predict of the same weights (the oracle)."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

pytest.importorskip("statsmodels")    # test extras (pyproject [test]); `make test` installs them
pytest.importorskip("aeon")

import charlm  # noqa: E402
import sunspots  # noqa: E402
import ucr  # noqa: E402


def test_sunspots_streamed_forecast_equals_full_predict_and_beats_naive(tmp_path, capsys):
    res = sunspots.main(["--quick", "--no-keras", "--out", str(tmp_path)])
    assert res["stream_vs_predict_max_diff"] < 1e-5        # step-by-step stream == one full-sequence predict
    assert math.isfinite(res["rnnstate"]["rmse"]) and math.isfinite(res["naive_rmse"])
    assert res["config"]["test_years"] == "1969-2008"
    # naive "next year = this year" on the held-out years, recomputed from the data here
    years, spots = sunspots.load()
    assert res["naive_rmse"] == pytest.approx(np.sqrt(np.mean((spots[-41:-1] - spots[-40:]) ** 2)), rel=1e-6)
    assert res["rnnstate"]["rmse"] < res["naive_rmse"]     # deterministic (seeded, CPU)
    for png in ("forecast.png", "states.png"):
        assert (tmp_path / png).stat().st_size > 10_000
    assert "RMSE" in capsys.readouterr().out


def test_ucr_loads_the_archive_data_and_classifies(capsys):
    res = ucr.main(["--quick", "--no-keras"])
    gp, bm = res["datasets"]["GunPoint"], res["datasets"]["BasicMotions"]
    assert (gp["train/test"], gp["steps"], gp["channels"], gp["classes"]) == ([50, 150], 150, 1, 2)
    assert (bm["train/test"], bm["steps"], bm["channels"], bm["classes"]) == ([40, 40], 100, 6, 4)
    # the archive's published 1-NN Euclidean accuracy for GunPoint, reproduced from the shipped data
    assert gp["measured here"]["1-NN ED"] == pytest.approx(ucr.PUBLISHED["GunPoint"]["1-NN ED"], abs=1e-3)
    for row in (gp, bm):
        acc = row["models"]["GRU"]["rnnstate"]["accuracy"]
        assert 0 <= acc <= 1 and math.isfinite(row["models"]["GRU"]["rnnstate"]["fit_s"])
    assert bm["models"]["GRU"]["rnnstate"]["accuracy"] > 0.25 + 0.1   # 4 classes; seeded run reaches 0.425
    assert "published" in capsys.readouterr().out


def test_charlm_learns_streams_like_predict_and_generates(capsys):
    res = charlm.main(["--quick", "--no-keras"])
    loss = res["rnnstate"]["train_loss"]
    assert np.isfinite(loss).all() and loss[-1] < loss[0]
    assert res["rnnstate"]["val_perplexity"] < res["config"]["vocab"]      # better than uniform over characters
    assert res["stream_vs_predict_max_diff"] < 1e-5        # char-by-char stream == one full-sequence predict
    sample = res["sample"]
    assert sample.startswith("def ") and len(sample) == 4 + 60
    assert set(sample) <= set(charlm.load_text(res["config"]["characters"]))
    assert "perplexity" in capsys.readouterr().out
