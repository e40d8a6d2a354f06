"""One prompt contract: RL and evaluation render every template from octo.templates, byte for byte."""

from __future__ import annotations

import json

import pytest

from eval.config import load_suite
from eval.tasks import PromptFunction, stop_sequences
from octo import templates
from octo.config import ConfigError
from rl.config import TemplateConfig
from rl.templates import render as rl_render

QUESTIONS = [
    "Calculate 2 + 3.",
    "  A train leaves at 3 pm {with braces}.\nHow far?  ",
    "Find $x$ if $x^2 = 4$.",
]
CHAT = "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}<assistant>"


def _rl_run(tmp_path, template: TemplateConfig):
    """An RL run folder as the study leaves it: its manifest holds the resolved config."""
    run = tmp_path / "rl" / template.name
    run.mkdir(parents=True)
    config = {"template": template.model_dump(mode="json"), "seed": 0}
    (run / "manifest.json").write_text(json.dumps({"stage": "rl", "config": config}))
    return run


def _eval_prompt(suite, question: str, tokenizer) -> str:
    """The exact text lighteval sends the model for one 0-shot item of the suite's first task."""
    from lighteval.tasks.prompt_manager import PromptManager

    task = suite.tasks[0]
    doc = PromptFunction(task.prompt, task.template, task.metric)(
        {"item": json.dumps({"id": "x", "question": question, "answer": "5"})}, "t"
    )
    manager = PromptManager(suite.model.chat_template, tokenizer, suite.model.system_prompt)
    return manager.prepare_prompt(doc)


@pytest.mark.parametrize("name", templates.RL_TEMPLATES)
def test_eval_from_an_rl_run_renders_byte_identical_prompts_and_stops(name, tmp_path, tiny_tokenizer):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer)
    tok.chat_template = CHAT
    system = "Be brief." if name == "chat" else None
    template = TemplateConfig(name=name, system_prompt=system)
    run = _rl_run(tmp_path, template)
    for source, overrides in (("yaml", []), ("override", [f"prompt.from_run={run}"])):
        if source == "yaml":
            path = tmp_path / "suite.yaml"
            path.write_text(
                f"name: s\nprompt: {{from_run: {run}}}\nmetric: boxed\ntasks: [{{name: gsm8k}}]\n"
            )
        else:
            path = "configs/eval/rl_zeroshot.yaml"
        suite = load_suite(path, overrides)
        assert suite.prompt_from_run == str(run)
        for question in QUESTIONS:
            rl_text = rl_render(name, question, tok, system)
            assert _eval_prompt(suite, question, tok) == rl_text, (name, source)
        for task in suite.tasks:
            assert stop_sequences(task) == template.stop_strings == list(templates.RL_STOP_STRINGS)


def test_every_plain_template_renders_the_same_for_rl_and_eval():
    """Every registry name that RL and evaluation share gives one text and one stop list."""
    for name in ("qa", "orz"):
        suite = load_suite("configs/eval/rl_zeroshot.yaml", [f"prompt={name}"])
        for question in QUESTIONS:
            assert _eval_prompt(suite, question, None) == rl_render(name, question)
        assert stop_sequences(suite.tasks[0]) == TemplateConfig(name=name).stop_strings
    # the shipped zero-shot suites use qa_boxed: the RL qa prompt and stops, boxed exemplars
    suite = load_suite("configs/eval/rl_zeroshot.yaml")
    assert suite.tasks[0].prompt == "qa_boxed"
    assert _eval_prompt(suite, QUESTIONS[1], None) == rl_render("qa", QUESTIONS[1])
    assert stop_sequences(suite.tasks[0]) == TemplateConfig().stop_strings
    assert rl_render("orz", "q").startswith("A conversation between User and Assistant.")


def test_a_run_with_its_own_stop_strings_passes_them_to_eval(tmp_path):
    run = _rl_run(tmp_path, TemplateConfig(name="orz", stop_strings=["</answer>"]))
    suite = load_suite("configs/eval/rl_zeroshot.yaml", [f"prompt.from_run={run}"])
    assert all(t.prompt == "orz" and stop_sequences(t) == ["</answer>"] for t in suite.tasks)
    # a task that names its own prompt keeps it (and its own stops)
    path = tmp_path / "mixed.yaml"
    path.write_text(
        f"name: m\nprompt: {{from_run: {run}}}\ntasks: [{{name: gsm8k}}, {{name: math500, prompt: minerva}}]\n"
    )
    gsm8k, math500 = load_suite(path).tasks
    assert (gsm8k.prompt, stop_sequences(gsm8k)) == ("orz", ["</answer>"])
    assert (math500.prompt, stop_sequences(math500)) == ("minerva", ["Problem:"])


def test_a_missing_run_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"prompt.from_run: cannot read.*manifest.json"):
        load_suite("configs/eval/rl_zeroshot.yaml", [f"prompt.from_run={tmp_path / 'nope'}"])
    path = tmp_path / "bad.yaml"
    path.write_text("name: b\nprompt: {from_rn: x}\ntasks: [{name: gsm8k}]\n")
    with pytest.raises(ConfigError, match="from_run"):
        load_suite(path)


def test_the_study_evaluates_each_rl_checkpoint_with_its_own_run_template(monkeypatch, tmp_path):
    import eval as evaluation
    from study import config as study_config
    from study import runner

    calls, real = [], load_suite

    def recording(path, overrides=()):
        calls.append((path, list(overrides)))
        return real(path, [o for o in overrides if not o.startswith("prompt.from_run=")])

    monkeypatch.setattr(evaluation, "load_suite", recording)
    monkeypatch.setattr(evaluation, "run", lambda suite, model, out: {})
    study = study_config.load("configs/studies/demo.yaml", [f"out_dir={tmp_path}"])
    steps = [s for s in runner.plan(study) if s.stage == "eval"]
    assert any("-rl /" in s.name for s in steps) and any("-rl /" not in s.name for s in steps)
    for step in steps:
        step.run()
        model = step.name.split(" ")[1]
        from_run = [o for o in calls[-1][1] if o.startswith("prompt.from_run=")]
        if model.endswith("-rl"):  # the RL checkpoint of arm <model>: that run's template
            assert from_run == [f"prompt.from_run={study.rl_dir(model.removesuffix('-rl'))}"], step.name
        else:
            assert from_run == [], step.name
