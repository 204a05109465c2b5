# Everything a fresh machine needs: `make demo`, `make test`, `make examples`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# The CPU build of torch (fast, small). Override e.g. TORCH_SPEC='torch>=2.2' for a CUDA machine.
TORCH_SPEC ?= torch==2.13.0
export KERAS_BACKEND := jax

.PHONY: demo test fuzz examples bench bench-smoke install clean

# The C++ kernel (rnnstate/_ext, optional) builds against the venv's torch: hence --no-build-isolation.
EXT_SRC := setup.py $(wildcard rnnstate/_ext/*.cpp rnnstate/_ext/*.h)

$(VENV)/.installed: pyproject.toml $(EXT_SRC)
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip "setuptools>=77" wheel
	$(PIP) install -q "$(TORCH_SPEC)" || $(PIP) install -q "torch>=2.2"
	$(PIP) install -q --no-build-isolation -e ".[all]"
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed
	$(PIP) install -q --no-build-isolation -e ".[all,test]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m rnnstate demo

# Two pytest workers (pytest-xdist): the suite is mostly single-threaded Python, so on 2 cores this is ~1.5x faster.
test: $(VENV)/.test-installed
	$(PY) -m pytest -q -n 2

# The fuzz tests (tests/test_fuzz_*.py) with many more hypothesis examples than `make test` runs
# (profiles "ci" / "fuzz" in tests/conftest.py).
fuzz: $(VENV)/.test-installed
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q -p no:cacheprovider tests/test_fuzz_*.py

# The real-data examples, full versions (minutes on a CPU): each writes examples/results/<name>.json and
# PNGs under out/. `EXAMPLE_ARGS=--threads 1` helps on a busy machine.
examples: $(VENV)/.test-installed
	$(PY) examples/sunspots.py --out out/sunspots $(EXAMPLE_ARGS)
	$(PY) examples/ucr.py $(EXAMPLE_ARGS)
	$(PY) examples/charlm.py $(EXAMPLE_ARGS)
	$(PY) examples/attention_seq2seq.py --out out/attention_seq2seq $(EXAMPLE_ARGS)
	$(PY) examples/cnn_lstm.py $(EXAMPLE_ARGS)

bench: $(VENV)/.test-installed
	$(PY) benchmarks/bench_rnn.py
	$(PY) benchmarks/bench_rnn.py --small-batch
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_export.py
	$(PY) benchmarks/bench_busy.py
	$(PY) benchmarks/bench_streaming.py
	$(PY) benchmarks/bench_mixed.py

bench-smoke: $(VENV)/.test-installed
	$(PY) benchmarks/bench_rnn.py --smoke
	$(PY) benchmarks/bench_training.py --smoke
	$(PY) benchmarks/bench_export.py --smoke
	$(PY) benchmarks/bench_busy.py --smoke --out /tmp/rnnstate-bench-busy-smoke.json
	$(PY) benchmarks/bench_streaming.py --smoke
	$(PY) benchmarks/bench_mixed.py --smoke

clean:
	rm -rf $(VENV) out
