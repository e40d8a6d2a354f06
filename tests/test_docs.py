"""The documentation stays true to the repository: a short README, links that resolve, field references
generated from the config models and up to date, and no citation of documents outside the repository."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from octo import cli, schema

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 200

# Pages other branches add; a link to one is tolerated only while the page is missing. Empty this set once
# they are merged (then every link must resolve).
PENDING_PAGES: set[str] = set()  # pages linked before they were written (none now)

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~)")


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every markdown link outside code blocks."""
    out, fenced = [], False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            out += [(number, m.group(1)) for m in LINK.finditer(re.sub(r"`[^`]*`", "", line))]
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found, fenced = set(), False
    for line in path.read_text().splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            found.add(slug(line.lstrip("#")))
    return found


def broken_links(path: Path, pending: set[str]) -> list[str]:
    problems = []
    for number, target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(ROOT)}:{number}: {target}"
        if not dest.is_relative_to(ROOT):
            problems.append(f"{where} points outside the repository")
        elif not dest.exists():
            if dest.relative_to(ROOT).as_posix() not in pending:
                problems.append(f"{where} does not exist")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{where}: no heading with anchor #{anchor}")
    return problems


# ------------------------------------------------------------------------------------------ README, links
def test_readme_fits_on_a_screen():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines (at most {README_MAX_LINES})"
    first = "\n".join(lines[:12])
    assert "make demo" in first and "make test" in first


def test_every_relative_link_resolves():
    problems = [p for f in doc_files() for p in broken_links(f, PENDING_PAGES)]
    assert not problems, "\n".join(problems)


def test_readme_links_every_docs_page():
    readme = {t.partition("#")[0] for _, t in links(ROOT / "README.md")}
    pages = {p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")} | PENDING_PAGES
    missing = sorted(pages - readme)
    assert not missing, f"README.md's Docs list lacks {missing}"


def test_link_checker_catches_a_broken_link(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Title here\n")
    page = tmp_path / "README.md"
    page.write_text(
        "[ok](docs/a.md) [anchor](docs/a.md#title-here) [web](https://x.org/y)\n"
        "[gone](docs/b.md) [bad anchor](docs/a.md#nope) [out](../elsewhere.md)\n"
        "`[in code](docs/c.md)`\n```\n[in a block](docs/d.md)\n```\n[pending](docs/p.md)\n"
    )
    problems = broken_links(page, {"docs/p.md"})
    assert [p.split(": ", 1)[1].split(" ")[0] for p in problems] == [
        "docs/b.md",
        "docs/a.md#nope:",
        "../elsewhere.md",
    ]


def test_no_file_cites_a_document_outside_the_repository():
    """DESIGN.md and the shared pilot notes lived beside the checkout, not in it."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    patterns = re.compile(r"DESIGN\.md|notes/demo-pilot|shared/notes|\.\./shared/(?!data/)")
    offenders = []
    for name in tracked:
        path = ROOT / name
        if name == "tests/test_docs.py" or path.suffix not in {".py", ".md", ".yaml", ".yml", ".toml", ""}:
            continue
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if patterns.search(line):
                offenders.append(f"{name}:{number}: {line.strip()[:100]}")
    assert not offenders, "\n".join(offenders)


# ------------------------------------------------------------------------------------------ field references
def test_generated_field_references_are_current():
    stale = schema.write_docs(check=True)
    assert not stale, f"stale field references {[p.name for p in stale]}: run `octo docs`"


def test_docs_check_reports_a_stale_page(tmp_path, capsys):
    assert schema.main(["--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{s}.md" for s in schema.STAGE_MODELS)
    assert schema.main(["--out", str(tmp_path), "--check"]) == 0
    page = tmp_path / "rl.md"
    page.write_text(page.read_text().replace("`trainer.steps`", "`trainer.stepz`"))
    assert schema.main(["--out", str(tmp_path), "--check"]) == 1
    assert "stale" in capsys.readouterr().out


@pytest.mark.parametrize("stage", sorted(schema.STAGE_MODELS))
def test_schema_lists_every_top_level_field(stage):
    model = schema.stage_model(stage)
    names = {r.name for r in schema.rows(model)}
    assert set(model.model_fields) <= names


def test_schema_walks_sections_lists_maps_and_variants():
    corpus = {
        r.name + " " + r.description.split(")")[0]: r for r in schema.rows(schema.stage_model("corpus"))
    }
    assert corpus["executor.slurm.partition "].default == '"debug"'
    assert corpus["sources[].path (type=jsonl"].default == "required"
    assert corpus["sources[].mix[].weight (type=arithmetic"].type == "float (> 0)"
    shared = [r for r in schema.rows(schema.stage_model("corpus")) if r.name == "sources[].name"]
    assert len(shared) == 1 and not shared[0].description.startswith("(")  # shared by every source type
    midtrain = {r.name: r for r in schema.rows(schema.stage_model("midtrain"))}
    weight = midtrain["data.stages.<name>.mixture.<name>.weight"]
    assert weight.type == "float (> 0)" and "share" in weight.description
    rl = {r.name: r for r in schema.rows(schema.stage_model("rl"))}
    assert rl["trainer.steps"].default == "120" and rl["prompts"].default == "required"
    assert rl["template.name"].type == '"qa" | "orz" | "chat"'


def test_octo_stage_schema_command(capsys):
    assert cli.main(["rl", "schema"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"^trainer\.learning_rate\s+float \(> 0\)\s+= 1e-06", text, re.M)
    assert cli.main(["study", "schema", "--markdown"]) == 0
    assert capsys.readouterr().out == schema.render_markdown("study")
    assert cli.main(["eval", "schema", "--json"]) == 0
    assert '"SuiteConfig"' in capsys.readouterr().out
