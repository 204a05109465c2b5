"""ONNX export: onnxruntime running the exported graph vs rnnstate on the same model, per call.

Two cases (B batch, T timesteps, F features, U units), measured interleaved in one process (ratios
are what to read on a shared machine), the same thread count for both runtimes:

* one streaming step at B=1 (LSTM U=128, F=32): onnxruntime ``sess.run`` with the states fed back,
  vs rnnstate's ``Streamer`` on the layer (compiled step kernel) and on the model (graph path);
* a (32, 100, 32, 128) forward, ``return_sequences=True``: ``sess.run`` vs ``model.predict``.

    python benchmarks/bench_export.py            # full
    python benchmarks/bench_export.py --smoke    # seconds; keeps the script working
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import bench_util as bu  # noqa: E402


def _model(F, U, return_sequences):
    import rnnstate
    from rnnstate import layers as L
    inp = rnnstate.Input((None, F), name="x")
    return rnnstate.Model(inp, L.LSTM(U, return_sequences=return_sequences, name="lstm")(inp))


def _session(model, tmpdir, threads):
    import onnxruntime as ort
    from rnnstate import export
    info = export.onnx(model, Path(tmpdir) / f"{model.name}.onnx")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return info, ort.InferenceSession(info.path, so, providers=["CPUExecutionProvider"])


def streaming_step(F, U, policy, tmpdir, threads):
    """One step at B=1, states carried, by each runtime; max |diff| after a few steps as a check."""
    from rnnstate import LSTMState
    model = _model(F, U, return_sequences=False)
    layer = model.get_layer("lstm")
    info, sess = _session(model, tmpdir, threads)
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((16, 1, 1, F)).astype(np.float32)
    # correctness: 16 steps through each runtime
    st = info.zero_states(1)
    from rnnstate.states import Streamer
    lay_stream = Streamer(layer)
    lay_state = LSTMState(torch.zeros(1, U), torch.zeros(1, U))
    diff = 0.0
    for x in xs:
        outs = sess.run(None, {"x": x, **st})
        st = info.next_states(outs)
        y, lay_state = lay_stream.step(torch.from_numpy(x[:, 0]), lay_state)
        diff = max(diff, float(np.abs(outs[0] - y.numpy()).max()))

    ort_state = {"s": info.zero_states(1)}
    x1 = xs[0]
    feed_x = {"x": x1}

    def ort_step():
        outs = sess.run(None, {**feed_x, **ort_state["s"]})
        ort_state["s"] = info.next_states(outs)

    ls = {"s": LSTMState(torch.zeros(1, U), torch.zeros(1, U))}
    xt = torch.from_numpy(x1[:, 0])

    def rs_layer_step():
        _, ls["s"] = lay_stream.step(xt, ls["s"])

    model_stream = model.stream()
    ms = {"s": None}
    xm = torch.from_numpy(x1)

    def rs_model_step():
        _, ms["s"] = model_stream.step(xm, ms["s"])

    fns = {"onnxruntime": ort_step, "rnnstate Streamer(layer)": rs_layer_step,
           "rnnstate model.stream()": rs_model_step}
    res = bu.measure_group(fns, policy)
    return res, diff, lay_stream.last_path


def forward(B, T, F, U, policy, tmpdir, threads):
    model = _model(F, U, return_sequences=True)
    info, sess = _session(model, tmpdir, threads)
    x = np.random.default_rng(1).standard_normal((B, T, F)).astype(np.float32)
    feed = {"x": x, **info.zero_states(B)}
    diff = float(np.abs(sess.run(None, feed)[0] - model.predict(x, batch_size=B, verbose=0)).max())

    def ort_fwd():
        return sess.run(None, feed)

    def rs_fwd():
        return model.predict(x, batch_size=B, verbose=0)

    res = bu.measure_group({"onnxruntime": ort_fwd, "rnnstate predict": rs_fwd}, policy)
    return res, diff, model.get_layer("lstm").last_path


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--out")
    p.add_argument("--threads", type=int, default=None, help="threads for both runtimes (default: torch's)")
    a = p.parse_args()
    import onnx
    import onnxruntime as ort
    if a.threads is not None:
        torch.set_num_threads(a.threads)
    elif a.smoke:
        torch.set_num_threads(1)
    threads = torch.get_num_threads()
    policy = bu.TimingPolicy.for_mode(a.smoke, False)
    header = {"machine": bu.cpu_info(), "hostname": bu.hostname(), "torch": torch.__version__,
              "onnx": onnx.__version__, "onnxruntime": ort.__version__, "threads": threads,
              "loadavg_start": bu.load_average()}
    step_shape = (1, 4, 8) if a.smoke else (1, 32, 128)              # B, F, U
    fwd_shape = (2, 5, 3, 8) if a.smoke else (32, 100, 32, 128)      # B, T, F, U
    load = bu.OtherLoad()
    with tempfile.TemporaryDirectory() as tmp:
        step, step_diff, step_path = streaming_step(step_shape[1], step_shape[2], policy, tmp, threads)
        fwd, fwd_diff, fwd_path = forward(*fwd_shape, policy, tmp, threads)
    header["other_load"] = load.fraction()
    header["loadavg_end"] = bu.load_average()

    def section(res):
        out = {}
        for k, v in res.items():
            out[k] = {"error": repr(v)} if isinstance(v, BaseException) else v.as_dict()
        return out

    result = {"schema": 1, "header": header,
              "streaming_step": {"shape_BFU": step_shape, "max_abs_diff": step_diff, "rnnstate_path": step_path,
                                 "timings": section(step)},
              "forward": {"shape_BTFU": fwd_shape, "max_abs_diff": fwd_diff, "rnnstate_path": fwd_path,
                          "timings": section(fwd)}}
    print(f"machine: {header['machine'].get('cpu_model')} x{header['machine'].get('logical_cpus')}, "
          f"threads={threads}, onnxruntime {ort.__version__}, torch {torch.__version__}, "
          f"other load {header['other_load'] if header['other_load'] is None else round(header['other_load'], 2)}")
    rows = []
    for label, res, base in ((f"stream step B={step_shape[0]} F={step_shape[1]} U={step_shape[2]}", step,
                              "onnxruntime"),
                             (f"forward (B,T,F,U)={fwd_shape}", fwd, "onnxruntime")):
        ref = res[base]
        for impl, t in res.items():
            if isinstance(t, BaseException):
                rows.append([label, impl, "error", repr(t)[:40], "-"])
                continue
            ratio = t.median_ms / ref.median_ms if not isinstance(ref, BaseException) else None
            rows.append([label, impl, bu.fmt_ms(t.median_ms), f"{bu.fmt_ms(t.q1_ms)}-{bu.fmt_ms(t.q3_ms)}",
                         bu.fmt_ratio(ratio)])
    print(bu.render_table(["case", "implementation", "median ms", "IQR ms", "vs onnxruntime"], rows, left_cols=2))
    print(f"max |onnxruntime - rnnstate|: stream {step_diff:.2e}, forward {fwd_diff:.2e}; rnnstate paths: "
          f"stream {step_path!r}, forward {fwd_path!r}")
    out = a.out or (None if a.smoke else str(ROOT / "benchmarks" / "results" /
                                            f"export-{bu.slug(bu.hostname())}-{time.strftime('%Y%m%d-%H%M%S')}.json"))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=1))
        print(f"JSON: {out}")
    if max(step_diff, fwd_diff) > 1e-4:
        sys.exit(f"onnxruntime and rnnstate disagree (max |diff| {max(step_diff, fwd_diff):.2e})")


if __name__ == "__main__":
    main()
