"""Registries are checked when a config loads: a misspelt reward, template, benchmark or filter name makes
``octo study run <study> --dry-run`` fail at once with a message naming the field, not hours into the run."""

from __future__ import annotations

import pytest
import yaml

from octo.cli import main
from octo.manifest import PROJECT_ROOT

DEMO = PROJECT_ROOT / "configs" / "studies" / "demo.yaml"


@pytest.fixture(autouse=True)
def _project_root(monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)  # study configs name recipes relative to the project root


def _dry_run(tmp_path, capsys, change) -> str:
    """Dry-run the demo study after ``change(study dict, tmp_path)``; return the error line it printed."""
    study = yaml.safe_load(DEMO.read_text())
    study["out_dir"] = str(tmp_path / "runs")
    change(study, tmp_path)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    assert main(["study", "run", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err  # the CLI's clean path: the message, the bad field on the next line
    return err


def _rl_overrides(*items):
    def change(study, _):
        study["rl"]["overrides"] = list(items)

    return change


def _with_file(original: str, edit, key: str, replace_in=None):
    """Copy a stage config into tmp_path with ``edit`` applied and point the study at the copy."""

    def change(study, tmp_path):
        data = yaml.safe_load((PROJECT_ROOT / original).read_text())
        edit(data)
        copy = tmp_path / (key + ".yaml")
        copy.write_text(yaml.safe_dump(data))
        replace_in(study, str(copy))

    return change


def _quality_typo(recipe):
    recipe["filters"] = {"quality": [{"name": "gopher_qualty"}]}


def _benchmark_typo(suite):
    suite["tasks"][0] = {**suite["tasks"][0], "source": "benchmark", "benchmark": "gsm8kk"}


def _corpus(study, path):
    study["corpora"]["qa"]["recipe"] = path


def _eval(study, path):
    study["eval"]["before_rl"] = [path]


CASES = {
    "reward": (_rl_overrides("reward.funcs=[boxd]"), ["reward.funcs", "boxd"]),
    "rl template": (_rl_overrides("template.name=orzz"), ["template.name", "orzz"]),
    "rl prompt benchmark": (
        _rl_overrides("prompts.source=benchmark", "prompts.dataset=math5000"),
        ["prompts.dataset", "math5000"],
    ),
    "rl decont benchmark": (
        _rl_overrides("prompts.decontaminate.benchmarks=[gsm8kk]"),
        ["prompts.decontaminate.benchmarks", "gsm8kk"],
    ),
    "eval template": (lambda study, _: study["eval"].update(overrides=["prompt=qaa"]), ["prompt", "qaa"]),
    "eval benchmark": (
        _with_file("configs/eval/demo_fewshot.yaml", _benchmark_typo, "suite", _eval),
        ["tasks.0.benchmark", "gsm8kk"],
    ),
    "corpus filter": (
        _with_file("configs/corpus/demo_qa.yaml", _quality_typo, "recipe", _corpus),
        ["filters.quality.0.name", "gopher_qualty"],
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_typo_in_a_registry_name_fails_the_dry_run_naming_the_field(
    case, tmp_path, capsys, benchmarks_root
):
    change, expected = CASES[case]
    err = _dry_run(tmp_path, capsys, change)
    assert err.startswith("octo study: "), err  # an OctoError (ConfigError) printed as one line
    for text in expected:
        assert text in err, err


def test_the_demo_itself_passes_the_same_dry_run(tmp_path, capsys, benchmarks_root):
    study = yaml.safe_load(DEMO.read_text())
    study["out_dir"] = str(tmp_path / "runs")
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    assert main(["study", "run", str(path), "--dry-run"]) == 0


def test_corpus_rl_and_eval_use_the_one_source_vocabulary():
    import typing

    from eval.config import TaskConfig
    from octo import sources
    from pipelines.recipe import CorpusRecipe
    from rl.config import ItemSource

    (annotated,) = typing.get_args(CorpusRecipe.model_fields["sources"].annotation)  # list[Annotated[Union]]
    models = typing.get_args(typing.get_args(annotated)[0])
    corpus = {value for model in models for value in typing.get_args(model.model_fields["type"].annotation)}
    rl = set(typing.get_args(ItemSource.model_fields["source"].annotation))
    evaluation = set(typing.get_args(TaskConfig.model_fields["source"].annotation))
    assert corpus and rl and evaluation
    assert corpus | rl | evaluation <= set(sources.SOURCES)
    assert "hub" in corpus & rl and "reasoning_gym" in corpus & rl & evaluation and "hf" not in corpus
