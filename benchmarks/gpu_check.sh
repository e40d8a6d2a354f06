#!/usr/bin/env bash
# One-command GPU check: mid-training MFU (Llama-3.2-1B shape), 10 GRPO steps and 50 GSM8K items on SmolLM2-135M,
# vLLM rollouts where vLLM is installed; one table. Uses the torch already installed (never installs one).
#   bash benchmarks/gpu_check.sh            # on a GPU machine (< 10 min on one H100/H200)
#   bash benchmarks/gpu_check.sh --smoke    # tiny sizes on CPU (what CI runs)
# PYTHON picks the interpreter (default: .venv, else .venv-vllm, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  for p in .venv/bin/python .venv-vllm/bin/python; do [ -x "$p" ] && PYTHON=$p && break; done
  PYTHON=${PYTHON:-python3}
fi
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} HF_DATASETS_OFFLINE=${HF_DATASETS_OFFLINE:-1}
export TOKENIZERS_PARALLELISM=false PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" benchmarks/gpu_check.py "$@"
