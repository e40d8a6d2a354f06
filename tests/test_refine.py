"""Refinement without a language model: the recipe section, the guards, the plan, the dry run, and a build
against an address where no server listens (reported, nothing lost). The real server is in test_refine_vllm.py."""

from __future__ import annotations

import json

import pytest
from corpus_helpers import write_recipe
from vllm_server import free_port

from octo.config import ConfigError
from pipelines.build import CorpusBuildError, build, dry_run, fingerprints
from pipelines.recipe import RefineGuards, load_recipe
from pipelines.refine import RefineServerError, judge, load_prompt, math_marks

TEXT = "The area of a circle of radius 3 is $\\pi r^2 = 9\\pi$, about 28.27 square units."


def _recipe(tmp_path, **refine):
    docs = tmp_path / "in" / "docs.jsonl"
    docs.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"id": "a", "text": TEXT}, {"id": "b", "text": "Plain words only here."}]
    docs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return write_recipe(tmp_path / "r.yaml", {
        "name": "r", "output_dir": str(tmp_path / "out"),
        "sources": [{"name": "web", "type": "jsonl", "path": str(docs)}],
        "refine": {"model": "m", "endpoint": f"http://127.0.0.1:{free_port()}", **refine},
    })  # fmt: skip


def ok(text, finish="stop", completion=20):
    return {"text": text, "finish_reason": finish, "usage": {"completion_tokens": completion}}


@pytest.mark.parametrize(
    "result, reason",
    [
        ({"error": "Got BadRequestError from server: too long"}, "request_error"),
        (ok("   \n"), "empty"),
        (ok(TEXT, finish="length"), "truncated"),
        (ok(TEXT, completion=64), "truncated"),
        (ok("I'm sorry, but I can't help with rewriting this text. " + TEXT), "refusal"),
        (ok("As an AI language model, " + TEXT), "refusal"),
        (ok("Circle area: 9 pi."), "too_short"),
        (ok("The area of a circle is pi times the square of its radius, so this one is about twenty-eight."), "lost_math"),
        (ok("Area of a circle with radius r = 3: A = \\pi r^2 = 9\\pi, roughly 28.27 square units."), None),
    ],
)  # fmt: skip
def test_guards(result, reason):
    assert judge(TEXT, result, RefineGuards(), max_tokens=64) == reason


def test_guard_settings():
    short = ok("Circle area: 9 pi.")
    assert judge(TEXT, short, RefineGuards(min_length_ratio=0.1), 64) is None
    no_math = ok(
        "The area of a circle is pi times the square of its radius, so this one is about twenty-eight."
    )
    assert judge(TEXT, no_math, RefineGuards(keep_math=False), 64) is None
    assert (
        judge("no numbers at all in this text", ok("none here either, still none"), RefineGuards(), 64)
        is None
    )
    assert {"3", "28.27", "$", "\\pi", "="} <= math_marks(TEXT)


def test_recipe_section_and_plan(tmp_path, capsys):
    recipe = load_recipe(_recipe(tmp_path, endpoint="http://127.0.0.1:1/v1/", apply_to=["web"]))
    assert recipe.refine.endpoint == "http://127.0.0.1:1"
    assert "<EXAMPLE>" in load_prompt(recipe.refine) and "refined text" in load_prompt(recipe.refine)
    stages = dry_run(recipe)
    assert [s.name for s in stages] == ["filter", "refine", "refine_guard"]
    assert stages[0].labels[-1] == "write:prerefine" and "filter:refine" in stages[2].labels
    out = capsys.readouterr().out
    assert "not reachable now" in out and "tokens in" in out and "2 docs" in out
    with pytest.raises(ConfigError, match="unknown sources"):
        load_recipe(_recipe(tmp_path, apply_to=["nope"]))
    with pytest.raises(ConfigError, match="placeholder"):
        load_prompt(load_recipe(_recipe(tmp_path, placeholder="{document}")).refine)


def test_fingerprint_ignores_where_the_server_is(tmp_path):
    a = load_recipe(_recipe(tmp_path))
    b = load_recipe(_recipe(tmp_path, concurrency=3, retries=1))
    c = load_recipe(_recipe(tmp_path, generation={"max_tokens": 7}))
    assert fingerprints(a, 1) == fingerprints(b, 1) != fingerprints(c, 1)


def test_no_server_is_reported_and_nothing_is_lost(tmp_path):
    recipe = load_recipe(_recipe(tmp_path, connect_attempts=2, connect_delay_s=0.1, retries=0))
    with pytest.raises((CorpusBuildError, RefineServerError), match="no OpenAI-compatible server answers"):
        build(recipe)
    log = "\n".join(p.read_text() for p in (tmp_path / "out" / "work" / "logs" / "refine").rglob("*.log"))
    assert "no OpenAI-compatible server answers" in log
    assert not (tmp_path / "out" / "docs").exists()  # nothing reached docs/, the filter stage is kept
    assert (tmp_path / "out" / "work" / "logs" / "filter" / "completions" / "00000").exists()
