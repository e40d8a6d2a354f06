"""End-to-end RL on CPU: a tiny Llama that already solves some problems learns from GRPO.

The model is trained here (about 400 SFT steps, under a minute on 2 quiet cores) on QA-format arithmetic in
which only 40% of the answers are boxed, and on rows that run on into the next "Question:" like a base model
does. Its sampled accuracy under the strict (boxed-only) reward starts near 0.15-0.3; GRPO raises it by
teaching the format, the OctoThinker QA-format effect in miniature.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from procs_helpers import kill_run

from octo.config import ConfigError, dump_config
from octo.jsonl import read_jsonl, write_jsonl
from octo.manifest import read_manifest

ROOT = Path(__file__).resolve().parent.parent
OPERANDS = range(6)


def _problems() -> list[dict]:
    return [
        {
            "id": f"arith-{a}{op}{b}",
            "question": f"Calculate {a} {op} {b}.",
            "answer": str(a + b if op == "+" else a - b),
        }
        for a in OPERANDS
        for b in OPERANDS
        for op in "+-"
    ]


def _qa(item: dict, boxed: bool) -> str:
    expr = item["question"][len("Calculate ") : -1]
    final = f"\\boxed{{{item['answer']}}}" if boxed else item["answer"]
    return f"Question: {item['question']}\nAnswer: {expr} = {item['answer']}. The answer is {final}."


QA_MODEL_RECIPE = "qa-arith-v2"  # bump when the recipe below changes (the trained model is cached by name)


@pytest.fixture(scope="module")
def qa_model(request):
    """A 0.1M-parameter Llama after a short SFT on QA arithmetic (deterministic: fixed seeds, 1 thread).

    Cached in pytest's cache folder, so only the first test run on a checkout pays for the SFT.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from octo.tiny import TinyLlamaShape, make_tiny_llama, train_bpe_tokenizer

    root = Path(request.config.cache.mkdir(f"octo-rl-{QA_MODEL_RECIPE}"))
    if (root / "model" / "model.safetensors").is_file() and (root / "model" / "tokenizer.json").is_file():
        return root / "model"
    threads = torch.get_num_threads()
    torch.set_num_threads(
        1
    )  # tiny matrices: one thread is fastest, and steady when other jobs share the cores
    items = _problems()
    texts = [_qa(x, True) for x in items] + [_qa(x, False) for x in items]
    tok_dir = train_bpe_tokenizer(texts * 3, root / "tok", vocab_size=300)
    shape = TinyLlamaShape(
        hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, max_position_embeddings=256
    )
    (root / "model" / "model.safetensors").unlink(missing_ok=True)
    model_dir = make_tiny_llama(shape, tok_dir, root / "model", seed=0)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rng = random.Random(0)
    for _ in range(400):
        # 1-2 QA pairs per row: the model learns to run on into the next "Question:" (stop strings matter)
        rows = ["\n\n".join(_qa(rng.choice(items), rng.random() < 0.4) for _ in range(rng.choice([1, 2])))
                for _ in range(32)]  # fmt: skip
        enc = tok(rows, return_tensors="pt", padding=True)
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        model(**enc, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    tok.save_pretrained(model_dir)
    model.save_pretrained(model_dir)  # written last: its presence marks a complete cache
    torch.set_num_threads(threads)
    return model_dir


@pytest.fixture(scope="module")
def problem_files(tmp_path_factory):
    """RL prompts (all 72 problems) and a 16-problem validation file that decontamination must drop from them."""
    root = tmp_path_factory.mktemp("problems")
    items = _problems()
    held_out = random.Random(1).sample(items, 16)
    write_jsonl(root / "train.jsonl", items)
    write_jsonl(root / "val.jsonl", held_out)
    return root / "train.jsonl", root / "val.jsonl"


def _config(model, out, problem_files, **trainer):
    from rl import load

    train, val = problem_files
    overrides = [
        f"model={model}", f"output_dir={out}", "seed=0",
        "prompts.source=jsonl", f"prompts.path={train}", "prompts.decontaminate.benchmarks=[]",
        "prompts.decontaminate.action=drop", "validation.every=10", "validation.max_new_tokens=32",
        "validation.sets=[{name: held_out, source: jsonl, path: " + str(val) + "}]",
        "trainer.steps=30", "trainer.prompts_per_step=8", "trainer.learning_rate=3e-4",
        "trainer.max_completion_length=32", "trainer.torch_threads=1", "log_every=5",
    ] + [f"trainer.{k}={v}" for k, v in trainer.items()]  # fmt: skip
    return load(ROOT / "configs/rl/demo.yaml", overrides)


def test_stop_strings_stop_generation_and_cut_the_completion(qa_model):
    """Without the criterion the model writes the next 'Question:'; with it, generation stops and is cut."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rl.stopping import cut_at_stop, stop_generate_on

    tok = AutoTokenizer.from_pretrained(qa_model)
    model = AutoModelForCausalLM.from_pretrained(qa_model)
    enc = tok(
        ["Question: Calculate 2 + 3.\nAnswer:", "Question: Calculate 5 - 1.\nAnswer:"],
        return_tensors="pt",
        padding=True,
    )
    kwargs = dict(max_new_tokens=40, do_sample=False, pad_token_id=tok.pad_token_id)
    with torch.no_grad():
        plain = model.generate(**enc, **kwargs)[:, enc["input_ids"].shape[1] :]
        with stop_generate_on(model, tok, ["Question:", "Answer:"]):
            stopped = model.generate(**enc, **kwargs)[:, enc["input_ids"].shape[1] :]
    assert "generate" not in model.__dict__  # the patch is gone after the block
    plain_texts = tok.batch_decode(plain, skip_special_tokens=True)
    assert all("Question:" in t for t in plain_texts), plain_texts  # this model runs on like a base model
    assert stopped.shape[1] < plain.shape[1]  # generation really stopped early
    for row in stopped.tolist():
        row = [t for t in row if t != tok.pad_token_id]
        ids, was_stopped = cut_at_stop(row, tok, ["Question:", "Answer:"])
        text = tok.decode(ids, skip_special_tokens=True)
        assert was_stopped and "Question" not in text and "The answer is" in text and len(ids) < len(row)


def test_grpo_learns_and_records_dynamics(qa_model, problem_files, tmp_path):
    from rl import run
    from rl.dynamics import METRIC_FIELDS, SAMPLE_FIELDS

    # a run with a learning signal from its first steps is never stopped by trainer.stop_without_signal
    cfg = _config(qa_model, tmp_path / "run", problem_files, stop_without_signal=2)
    start = time.time()
    final = run(cfg)
    took = time.time() - start
    out = Path(cfg.output_dir)
    assert (final / "config.json").is_file() and (final / "tokenizer.json").is_file()

    rows = list(read_jsonl(out / "metrics.jsonl"))
    assert [r["step"] for r in rows] == list(range(0, 31))
    for r in rows:
        assert set(METRIC_FIELDS) <= set(r)
        assert all(r[k] is None or isinstance(r[k], (int, float)) for k in METRIC_FIELDS)
    train = rows[1:]
    for r in train:
        assert -1 <= r["reward_mean"] <= 1 and 0 <= r["accuracy"] <= 1 and r["completions"] == 64
        assert all(0 <= r[k] <= 1 for k in ("clip_ratio", "repetition_ratio", "multi_boxed_ratio",
                                            "boxed_first_ratio", "no_answer_ratio", "frac_zero_std_groups"))  # fmt: skip
        assert r["entropy"] > 0 and r["lr"] == pytest.approx(3e-4) and r["step_time"] > 0
        assert 0 < r["response_len_mean"] <= 32
    val_steps = [r["step"] for r in rows if r.get("val/held_out/acc") is not None]
    assert val_steps == [0, 10, 20, 30]

    # A real learning signal: mean reward over the last 10 steps well above the first 10. Measured with this
    # recipe for run seeds 0-5: -0.34..-0.49 -> +0.15..+0.30 (gain 0.56-0.73; accuracy 0.25-0.33 -> 0.57-0.65).
    first = sum(r["reward_mean"] for r in train[:10]) / 10
    last = sum(r["reward_mean"] for r in train[-10:]) / 10
    print(f"reward first10 {first:.3f} -> last10 {last:.3f} ({took:.0f} s)")
    assert last - first > 0.3, (first, last)
    # Greedy decoding starts with the unboxed answer format (0 under the strict reward); RL teaches the box.
    # Measured: 0.0 -> 0.62-0.88 on the 16 held-out problems.
    assert rows[-1]["val/held_out/acc"] - rows[0]["val/held_out/acc"] >= 0.4

    samples = list(read_jsonl(out / "samples.jsonl"))
    assert len(samples) == 30 * 64
    assert all(set(SAMPLE_FIELDS) <= set(s) for s in samples)
    assert sorted({s["step"] for s in samples}) == list(range(1, 31))
    # stop strings cut every completion before the model's next "Question:"
    assert not any("Question:" in s["text"] or "Answer:" in s["text"] for s in samples)
    assert sum(s["finish"] == "stop" for s in samples) > len(samples) / 2
    for s in samples:  # the recorded reward follows from the recorded flags (correctness only, +1/-1)
        assert s["reward"] == (1.0 if s["correct"] else -1.0)
        assert s["correct"] == s["correct_strict"] and (not s["correct_strict"] or s["correct_lenient"])

    prompts = list(read_jsonl(out / "prompts.jsonl"))
    report = json.loads((out / "decontamination.json").read_text())
    assert report["contaminated"] == 16 and len(prompts) == 72 - 16
    held_out = {x["question"] for x in read_jsonl(problem_files[1])}
    assert not held_out & {p["question"] for p in prompts}
    assert {s["prompt_id"] for s in samples} <= {p["id"] for p in prompts}

    manifest = read_manifest(out)
    assert manifest["status"] == "complete" and manifest["counts"]["completions"] == 30 * 64

    # A finished run called again returns at once and leaves its files alone.
    before = (out / "metrics.jsonl").read_bytes()
    start = time.time()
    assert run(cfg) == final
    assert time.time() - start < 2 and (out / "metrics.jsonl").read_bytes() == before
    # ... and the same folder with another recipe is refused rather than mixed
    with pytest.raises(ConfigError, match="different config"):
        run(cfg.model_copy(update={"seed": 1}))


def test_a_run_without_signal_stops_with_the_policy_unchanged(qa_model, problem_files, tmp_path):
    """A random model never answers in the boxed format, so every group's rewards are equal, every advantage is 0
    and the weights cannot move: trainer.stop_without_signal ends the run after 3 of its 10 steps, validates
    at the stop, and final/ holds the starting weights bit for bit."""
    from safetensors.torch import load_file

    from octo.tiny import TinyLlamaShape, make_tiny_llama
    from rl import run

    shape = TinyLlamaShape(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128,
                           max_position_embeddings=256)  # fmt: skip
    start = make_tiny_llama(shape, qa_model, tmp_path / "random", seed=1)
    cfg = _config(start, tmp_path / "run", problem_files, steps=10, prompts_per_step=2, num_generations=4,
                  stop_without_signal=3)  # fmt: skip
    final = run(cfg)
    out = Path(cfg.output_dir)
    rows = list(read_jsonl(out / "metrics.jsonl"))
    assert [r["step"] for r in rows] == [0, 1, 2, 3]
    assert all(r["frac_zero_std_groups"] == 1.0 for r in rows[1:])
    assert [r["step"] for r in rows if r.get("val/held_out/acc") is not None] == [0, 3]
    counts = read_manifest(out)["counts"]
    assert counts["steps"] == 3 and counts["steps_planned"] == 10 and counts["completions"] == 3 * 8
    a, b = load_file(start / "model.safetensors"), load_file(final / "model.safetensors")
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)


def test_resume_after_kill(qa_model, problem_files, tmp_path):
    """SIGKILL a CLI run after its second checkpoint, with torn last lines in its logs; run() resumes there to
    the weights of an uninterrupted run, the logs hold each step once, and no process of the killed run is left."""
    from rl import run

    out = tmp_path / "killed"
    overrides = dict(steps=8, prompts_per_step=2, num_generations=4)
    cfg = _config(qa_model, out, problem_files, **overrides)
    cfg.checkpoint.every = 2
    cfg.validation.every = 4
    recipe = dump_config(cfg, tmp_path / "recipe.yaml")  # the CLI run reads the very same config
    proc = subprocess.Popen(
        [sys.executable, "-m", "octo", "rl", "run", str(recipe)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    target = out / "checkpoints" / "checkpoint-4" / "trainer_state.json"
    deadline = time.time() + 240
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    kill_run(proc, out)  # and no process of the killed run is left
    assert target.exists(), "the CLI run did not reach its second checkpoint"
    assert read_manifest(out)["status"] == "running"
    with (out / "samples.jsonl").open("a") as fh:
        fh.write('{"step": 5, "prompt_id": "arith-1+2", "te')  # as if the kill came in the middle of a write
    with (out / "metrics.jsonl").open("a") as fh:
        fh.write('{"step": 5, "reward_mean": 0.')  # the same for the metrics row

    final = run(cfg)
    assert (final / "model.safetensors").is_file()
    # the same weights, bit for bit, as a run of the same config that was never killed
    from safetensors.torch import load_file

    reference = run(cfg.model_copy(update={"output_dir": str(tmp_path / "reference")}))
    a, b = load_file(reference / "model.safetensors"), load_file(final / "model.safetensors")
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    steps = [r["step"] for r in read_jsonl(out / "metrics.jsonl")]
    assert steps == list(range(0, 9))
    samples = list(read_jsonl(out / "samples.jsonl"))
    assert [sum(s["step"] == k for s in samples) for k in range(1, 9)] == [8] * 8
    assert read_manifest(out)["status"] == "complete"
    kept = sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*"))
    assert kept == ["checkpoint-6", "checkpoint-8"]  # checkpoint.keep = 2


def test_several_updates_per_step_and_the_length_schedule(qa_model, problem_files, tmp_path):
    """Two optimizer updates per rollout batch make one metrics row; the stair schedule cuts responses short."""
    from rl import run

    cfg = _config(qa_model, tmp_path / "stairs", problem_files, steps=4, prompts_per_step=4, num_generations=4,
                  updates_per_step=2, max_completion_schedule="{3: 6}")  # fmt: skip
    cfg.validation.sets = []
    run(cfg)
    rows = list(read_jsonl(Path(cfg.output_dir) / "metrics.jsonl"))
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # no validation sets: no step-0 row
    assert [r["max_completion_length"] for r in rows] == [32, 32, 6, 6]
    assert all(r["completions"] == 16 and r["loss"] is not None for r in rows)
    samples = list(read_jsonl(Path(cfg.output_dir) / "samples.jsonl"))
    late = [s for s in samples if s["step"] >= 3]
    assert len(late) == 32 and all(s["length"] <= 6 for s in late)
    assert any(s["finish"] == "length" for s in late) and rows[2]["clip_ratio"] > 0
    assert read_manifest(cfg.output_dir)["counts"]["optimizer_updates"] == 8


def test_micro_batches_without_signal_skip_their_backward_and_change_nothing(
    qa_model, problem_files, tmp_path, monkeypatch
):
    """A micro-batch whose advantages are all 0 has a gradient of exactly 0, so the trainer skips its backward.
    With one completion per micro-batch, some rows have signal and some do not, and Adam's moments are nonzero
    when a zero gradient arrives. The run ends on the same weights, bit for bit, and logs the same losses,
    gradient norms and entropies as a run that backpropagates every micro-batch."""
    from safetensors.torch import load_file

    from rl import run
    from rl.trainer import OctoGRPOTrainer

    decisions = []
    real = OctoGRPOTrainer._gradient_is_exactly_zero

    def spy(self, inputs):
        decisions.append(real(self, inputs))
        return decisions[-1]

    monkeypatch.setattr(OctoGRPOTrainer, "_gradient_is_exactly_zero", spy)
    cfg = _config(qa_model, tmp_path / "skipping", problem_files, steps=4, prompts_per_step=4, num_generations=4,
                  micro_batch_size=1)  # fmt: skip
    cfg.validation.sets = []
    skipping = run(cfg)
    print(f"{sum(decisions)} of {len(decisions)} backwards skipped")
    assert len(decisions) == 4 * 16 and 0 < sum(decisions) < len(decisions), decisions
    monkeypatch.setattr(OctoGRPOTrainer, "_gradient_is_exactly_zero", lambda self, inputs: False)
    full = run(cfg.model_copy(update={"output_dir": str(tmp_path / "full")}))

    a, b = load_file(skipping / "model.safetensors"), load_file(full / "model.safetensors")
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    rows = [list(read_jsonl(Path(final).parent / "metrics.jsonl")) for final in (skipping, full)]
    for x, y in zip(*rows, strict=True):
        for key in ("reward_mean", "loss", "grad_norm", "entropy", "ppo_clip_ratio"):
            assert x[key] == pytest.approx(y[key], rel=1e-6, abs=1e-9), (x["step"], key)
