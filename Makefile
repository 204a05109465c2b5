# Everything a fresh machine needs: `make demo` and `make test`. Nothing else.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# The CPU build of torch (fast, small). Override e.g. TORCH_SPEC='torch>=2.2' for a CUDA machine.
TORCH_SPEC ?= torch==2.13.0
export KERAS_BACKEND := jax

.PHONY: demo test bench bench-smoke install clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)" || $(PIP) install -q "torch>=2.2"
	$(PIP) install -q -e ".[all]"
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed
	$(PIP) install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m rnnstate demo

test: $(VENV)/.test-installed
	$(PY) -m pytest -q

bench: $(VENV)/.test-installed
	$(PY) benchmarks/bench_rnn.py
	$(PY) benchmarks/bench_training.py

bench-smoke: $(VENV)/.test-installed
	$(PY) benchmarks/bench_rnn.py --smoke
	$(PY) benchmarks/bench_training.py --smoke

clean:
	rm -rf $(VENV) out
