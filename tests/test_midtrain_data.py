"""Token shards -> training sequences: the real datatrove format, EOS handling, mixture shares, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from midtrain_helpers import build_corpora, qa_texts, write_shards
from transformers import AutoTokenizer

from midtrain.config import MidtrainConfig
from midtrain.data import Mixture, TokenSource, open_sources
from midtrain.plan import make_plan
from octo.config import ConfigError

SEQ = 32


@pytest.fixture(scope="module")
def corpora(tiny_tokenizer, tmp_path_factory):
    return build_corpora(tmp_path_factory.mktemp("corpora"), tiny_tokenizer)


@pytest.fixture(scope="module")
def tok(tiny_tokenizer):
    return AutoTokenizer.from_pretrained(str(tiny_tokenizer))


def source(path, tok, **kw):
    return TokenSource("s", path, sequence_length=SEQ, eos_token_id=tok.eos_token_id, **kw)


def plan_for(stages, batch_sequences=4, tmp="out"):
    config = MidtrainConfig.model_validate(
        {
            "name": "p",
            "output_dir": tmp,
            "model": {"base": "unused"},
            "data": {"sequence_length": SEQ, "stages": stages},
            "schedule": {"lr": 1e-3},
            "train": {"global_batch_tokens": SEQ * batch_sequences, "micro_batch_size": 1},
        }
    )
    return make_plan(config)


def test_windows_equal_datatrove_folder_dataset(corpora, tok):
    """Unshuffled, the stream is the shards as datatrove's own reader cuts them (first file: same windows)."""
    from datatrove.utils.dataset import DatatroveFileDataset

    src = source(corpora["web"], tok, shuffle=False)
    assert len(src.files) == 2 and not src.insert_eos and src.token_size == 2
    theirs = DatatroveFileDataset(str(src.files[0]), seq_len=SEQ, token_size=2)
    assert len(theirs) > 20
    for k in range(len(theirs)):
        assert np.array_equal(src.window_at(k), theirs[k]["input_ids"].numpy()), k


def test_eos_already_present_is_not_doubled(corpora, tok):
    src = source(corpora["qa"], tok, shuffle=True, seed=3)
    epoch = src.read(0, src.epoch_tokens)
    eos = tok.eos_token_id
    assert (epoch == eos).sum() == src.documents == 300  # one EOS per document, none added
    assert not np.any((epoch[:-1] == eos) & (epoch[1:] == eos))
    # every document of the epoch, decoded, is one of the QA texts
    docs = np.split(epoch, np.flatnonzero(epoch == eos) + 1)[:-1]
    texts = set(qa_texts(300))
    assert all(tok.decode(d[:-1]) in texts for d in docs)


def test_eos_inserted_when_shards_have_none(tiny_tokenizer, tok, tmp_path):
    texts = qa_texts(50, seed=5)
    folder = write_shards(texts, tiny_tokenizer, tmp_path / "noeos", eos=False, shuffle=False)
    src = source(folder, tok, shuffle=False)
    assert src.insert_eos
    stream = src.read(0, src.epoch_tokens)
    eos = tok.eos_token_id
    assert (stream == eos).sum() == 50
    docs = np.split(stream, np.flatnonzero(stream == eos) + 1)[:-1]
    # the tokenizer's own post-processor put BOS first; we keep it and end each document with one EOS
    assert all(d[0] == tok.bos_token_id and d[-1] == eos for d in docs)
    assert [tok.decode(d[1:-1]) for d in docs] == texts
    with pytest.raises(ConfigError, match="do not end with EOS"):
        source(folder, tok, eos="present")


def test_eos_insert_refuses_to_double(corpora, tok):
    with pytest.raises(ConfigError, match="double"):
        source(corpora["qa"], tok, eos="insert")


def test_stream_crosses_epochs_with_a_new_order(corpora, tok):
    src = source(corpora["instr"], tok, shuffle=True, seed=0)
    n = src.epoch_tokens
    first, second = src.read(0, n), src.read(n, 2 * n)
    assert sorted(first.tolist()) == sorted(second.tolist())  # same documents
    assert not np.array_equal(first, second)  # another order
    straddle = src.read(n - 10, n + 10)
    assert np.array_equal(straddle, np.concatenate([first[-10:], second[:10]]))


def test_mixture_shares_within_one_sequence_and_deterministic(corpora, tok):
    stages = {
        "s": {
            "tokens": SEQ * 4 * 250,
            "mixture": {
                "mathweb": {"path": str(corpora["mathweb"]), "weight": 89},
                "qa": {"path": str(corpora["qa"]), "weight": 10},
                "instr": {"path": str(corpora["instr"]), "weight": 1},
            },
        }
    }
    plan = plan_for(stages)
    kw = dict(eos_token_id=tok.eos_token_id, eos="auto", shuffle=True, vocab_size=len(tok))
    mix = Mixture(plan, open_sources(plan, seed=0, **kw))
    batches = [mix.batch(step) for step in range(plan.total_steps)]
    weights = {"mathweb": 0.89, "qa": 0.10, "instr": 0.01}
    counts = mix.stages["s"]
    total = sum(counts.values())
    assert total == 1000
    for name, w in weights.items():  # the stated tolerance: one sequence
        assert abs(counts[name] - w * total) <= 1, (name, counts)
    # every prefix stays within one sequence too
    mix2 = Mixture(plan, open_sources(plan, seed=0, **kw))
    seen = {n: 0 for n in weights}
    picks = []
    for step in range(plan.total_steps):
        picks += [name for name, _ in mix2.select(step)]
    for t, name in enumerate(picks, 1):
        seen[name] += 1
        assert all(abs(seen[n] - w * t) <= 1 for n, w in weights.items()), t
    # same seed, same sequences; another seed, other sequences
    again = Mixture(plan, open_sources(plan, seed=0, **kw))
    assert all(np.array_equal(b, again.batch(s)) for s, b in enumerate(batches))
    other = Mixture(plan, open_sources(plan, seed=1, **kw))
    assert not all(np.array_equal(b, other.batch(s)) for s, b in enumerate(batches))
    assert batches[0].shape == (4, SEQ + 1) and batches[0].dtype == np.int64


def test_mixture_resumes_from_its_state_and_switches_stages(corpora, tok):
    stages = {
        "a": {"tokens": SEQ * 4 * 5, "mixture": {"web": {"path": str(corpora["web"]), "weight": 1}}},
        "b": {
            "tokens": SEQ * 4 * 5,
            "mixture": {
                "web": {"path": str(corpora["web"]), "weight": 1},
                "qa": {"path": str(corpora["qa"]), "weight": 1},
            },
        },
    }
    plan = plan_for(stages)
    kw = dict(eos_token_id=tok.eos_token_id, eos="auto", shuffle=True, seed=0, vocab_size=None)
    full = Mixture(plan, open_sources(plan, **kw))
    reference = [full.batch(s) for s in range(plan.total_steps)]
    assert full.stages == {"a": {"web": 20}, "b": {"web": 10, "qa": 10}}
    assert full.streams == {"web": 30, "qa": 10}  # the web stream continues across stages
    part = Mixture(plan, open_sources(plan, **kw))
    for s in range(7):
        part.batch(s)
    resumed = Mixture(plan, open_sources(plan, **kw), state=part.state)
    assert all(np.array_equal(reference[s], resumed.batch(s)) for s in range(7, plan.total_steps))


def test_bad_inputs_name_the_problem(corpora, tok, tmp_path):
    with pytest.raises(ConfigError, match="no \\*.ds token shards"):
        source(tmp_path, tok)
    with pytest.raises(ConfigError, match="not found"):
        source(tmp_path / "missing", tok)
    with pytest.raises(ConfigError, match="beyond the model's vocabulary"):
        source(corpora["qa"], tok, vocab_size=40)
    broken = tmp_path / "broken"
    broken.mkdir()
    ds = sorted(corpora["qa"].glob("*.ds"))[0]
    (broken / ds.name).write_bytes(ds.read_bytes())
    (broken / f"{ds.name}.metadata").write_text("tokenizer.json|2\n5\n5")
    (broken / f"{ds.name}.index").write_bytes(np.array([5, 3], dtype="<u8").tobytes())
    with pytest.raises(ConfigError, match="document ends do not match"):
        source(broken, tok)
