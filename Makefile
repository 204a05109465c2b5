# Everything a fresh machine needs: `make demo`, `make test`, `make examples`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# The CPU build of torch (fast, small). Override e.g. TORCH_SPEC='torch>=2.2' for a CUDA machine.
TORCH_SPEC ?= torch==2.13.0
export KERAS_BACKEND := jax

.PHONY: demo test examples bench bench-smoke install clean

# The C++ kernel (rnnstate/_ext, optional) builds against the venv's torch: hence --no-build-isolation.
EXT_SRC := setup.py $(wildcard rnnstate/_ext/*.cpp rnnstate/_ext/*.h)

$(VENV)/.installed: pyproject.toml $(EXT_SRC)
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip "setuptools>=64" wheel
	$(PIP) install -q "$(TORCH_SPEC)" || $(PIP) install -q "torch>=2.2"
	$(PIP) install -q --no-build-isolation -e ".[all]"
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed
	$(PIP) install -q --no-build-isolation -e ".[all,test]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m rnnstate demo

test: $(VENV)/.test-installed
	$(PY) -m pytest -q

# The real-data examples, full versions (minutes on a CPU): each writes examples/results/<name>.json and
# PNGs under out/. `EXAMPLE_ARGS=--threads 1` helps on a busy machine.
examples: $(VENV)/.test-installed
	$(PY) examples/sunspots.py --out out/sunspots $(EXAMPLE_ARGS)
	$(PY) examples/ucr.py $(EXAMPLE_ARGS)
	$(PY) examples/charlm.py $(EXAMPLE_ARGS)

bench: $(VENV)/.test-installed
	$(PY) benchmarks/bench_rnn.py
	$(PY) benchmarks/bench_training.py

bench-smoke: $(VENV)/.test-installed
	$(PY) benchmarks/bench_rnn.py --smoke
	$(PY) benchmarks/bench_training.py --smoke

clean:
	rm -rf $(VENV) out
