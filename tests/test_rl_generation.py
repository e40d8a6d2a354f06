"""RL rollouts through octo.generation: each prompt prefilled once for its G completions, rows stop at the
stop string, and (with top-k 1, where sampling is deterministic) the same completions as TRL's own generate."""

from __future__ import annotations

from pathlib import Path

from test_rl_run import qa_model  # noqa: F401  (the SFT'd QA model fixture)

from octo import generation
from octo.assets import reasoning_gym_items
from rl import load
from rl.templates import render
from rl.trainer import OctoGRPOTrainer, Recorder, grpo_args

ROOT = Path(__file__).resolve().parent.parent
G = 4


def _trainer(model_dir, out, top_k: int = 0):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = load(
        ROOT / "configs/rl/demo.yaml",
        [f"model={model_dir}", f"output_dir={out}", "trainer.prompts_per_step=3",
         f"trainer.num_generations={G}", "trainer.max_completion_length=40", f"trainer.top_k={top_k}"],
    )  # fmt: skip
    items = reasoning_gym_items(
        "basic_arithmetic", 3, 555, min_terms=2, max_terms=2, min_digits=1, max_digits=1
    )
    rows = [
        {"prompt": render("qa", x["question"]), "answer": x["answer"], "prompt_id": x["id"]} for x in items
    ]
    recorder = Recorder(cfg, samples_path=None)
    trainer = OctoGRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir),
        reward_funcs=[recorder.as_reward_function()],
        args=grpo_args(cfg, out, use_cpu=True),
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        stop_strings=cfg.template.stop_strings,
    )
    recorder.trainer = trainer
    return trainer, [r for r in rows for _ in range(G)], recorder


def test_rollouts_prefill_each_prompt_once_and_stop(qa_model, tmp_path, monkeypatch):  # noqa: F811
    import torch

    calls = []
    original = generation.Generator.generate

    def spy(self, prompts, n, *args, **kwargs):
        calls.append((len(prompts), n))
        return original(self, prompts, n, *args, **kwargs)

    monkeypatch.setattr(generation.Generator, "generate", spy)
    trainer, batch, recorder = _trainer(qa_model, tmp_path)
    torch.manual_seed(0)
    out = trainer._generate_and_score_completions(batch)
    assert calls == [(3, G)]  # 3 distinct prompts, G completions each from one prefill
    texts = trainer.processing_class.batch_decode(out["completion_ids"], skip_special_tokens=True)
    assert len(texts) == 3 * G and all("Question:" not in t for t in texts)
    assert "stop" in trainer.last_finish  # the SFT'd model runs on into "Question:" unless stopped
    lengths = out["completion_mask"].sum(1)
    assert int(lengths.max()) < 40 and recorder.rollouts  # rewards and the rollout summary were recorded


def test_rollouts_match_trls_generate_when_sampling_is_deterministic(qa_model, tmp_path, monkeypatch):  # noqa: F811
    trainer, batch, _ = _trainer(qa_model, tmp_path, top_k=1)
    prompts = [r["prompt"] for r in batch]
    ours = trainer._generate(prompts)[1]
    monkeypatch.setattr(OctoGRPOTrainer, "_engine_applies", lambda self, *a: False)
    theirs = trainer._generate(prompts)[1]
    assert ours == theirs and trainer.last_finish.count("stop") > 0


def test_validation_is_greedy_generate_through_the_engine(qa_model):  # noqa: F811
    """RL validation generates with octo.generation (as the evaluation stage does): the same greedy
    completions as plain ``model.generate`` with a stop-string criterion, cut before the stop string."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from octo.templates import stop_strings
    from rl.stopping import cut_at_stop, stop_generate_on
    from rl.validation import Validator, eos_ids

    model = AutoModelForCausalLM.from_pretrained(qa_model).eval()
    tok = AutoTokenizer.from_pretrained(qa_model)
    items = reasoning_gym_items(
        "basic_arithmetic", 12, 999, min_terms=2, max_terms=3, min_digits=1, max_digits=1
    )
    prompts = [render("qa", x["question"]) for x in items]
    stop = stop_strings("qa")
    ours = Validator({}, {}, tok, stop_strings=stop, max_new_tokens=32, batch_size=5,
                     require_boxed=True).generate(model, prompts)  # fmt: skip

    eos = eos_ids(model, tok)
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True)
    with torch.no_grad(), stop_generate_on(model, tok, stop):
        out = model.generate(
            **enc, max_new_tokens=32, do_sample=False, eos_token_id=eos, pad_token_id=tok.pad_token_id
        )
    plain = []
    for row in out[:, enc["input_ids"].shape[1] :].tolist():
        end = next((j for j, t in enumerate(row) if t in eos), None)
        row = row if end is None else row[: end + 1]
        while row and row[-1] == tok.pad_token_id and tok.pad_token_id not in eos:
            row.pop()
        plain.append(cut_at_stop(row, tok, stop)[0])
    assert ours == plain
    texts = tok.batch_decode(ours, skip_special_tokens=True)
    assert all("Question:" not in t for t in texts) and any(t.strip() for t in texts)
