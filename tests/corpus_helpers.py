"""Fixtures for the corpus tests: messy input files, small recipes, readers of the outputs."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import yaml

EASY = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1, "operators": ["+", "-"],
        "allow_parentheses": False, "allow_negation": False}  # fmt: skip
HARD = {**EASY, "max_terms": 3, "max_digits": 2}


def write_recipe(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def read_docs(folder: Path) -> list[dict]:
    rows = []
    for path in sorted(Path(folder).glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            rows += [json.loads(line) for line in fh]
    return rows


def docs_by_file(folder: Path) -> dict[str, str]:
    """Decompressed content of every docs file (gzip headers carry a timestamp, the content does not)."""
    return {
        p.name: gzip.open(p, "rt", encoding="utf-8").read() for p in sorted(Path(folder).glob("*.jsonl.gz"))
    }


def token_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir()) if p.suffix in (".ds", ".index")}


def write_messy_web(folder: Path, math_texts, other_texts, french_texts, near_dups) -> dict:
    """Web-like JSONL in three compressions plus every kind of malformed line; returns what was planted."""
    import zstandard

    folder.mkdir(parents=True, exist_ok=True)
    good = [{"id": f"m{i}", "text": t} for i, t in enumerate(math_texts)]
    good += [{"id": f"o{i}", "text": t} for i, t in enumerate(other_texts)]
    good += [{"id": f"fr{i}", "text": t} for i, t in enumerate(french_texts)]
    good += [{"id": f"dup{i}", "text": t} for i, t in enumerate(near_dups)]
    third = len(good) // 3
    lines = [json.dumps(r) for r in good[:third]]
    # part1.jsonl: the malformed lines sit between good ones; their 1-based line numbers are checked
    bad = {
        3: b'{"id": "broken", "text": "no closing brace"',
        5: b'{"id": "no-text", "body": "the text key is missing"}',
        7: b'{"id": "empty", "text": "   "}',
        9: b'["a", "list", "not", "an", "object"]',
        11: b"",
        13: b'{"id": "latin1", "text": "caf\xe9 cr\xe8me"}',
    }
    raw, good_iter = [], iter(lines)
    n_lines = len(lines) + len(bad)
    for lineno in range(1, n_lines + 1):
        raw.append(bad[lineno] if lineno in bad else next(good_iter).encode())
    (folder / "part1.jsonl").write_bytes(b"\n".join(raw) + b"\n")
    with gzip.open(folder / "part2.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in good[third : 2 * third])
    (folder / "part3.jsonl.zst").write_bytes(
        zstandard.ZstdCompressor().compress("".join(json.dumps(r) + "\n" for r in good[2 * third :]).encode())
    )
    # a gzip file cut short: its first records are read, then the file is reported corrupt
    blob = gzip.compress(
        "".join(
            json.dumps({"id": f"t{i}", "text": other_texts[i % len(other_texts)]}) + "\n" for i in range(50)
        ).encode()
    )
    (folder / "truncated.jsonl.gz").write_bytes(blob[: len(blob) // 2])
    return {
        "good": len(good),
        "malformed_part1": {
            "bad_json": [3],
            "missing_text": [5],
            "empty_text": [7],
            "not_an_object": [9],
            "blank_line": [11],
            "undecodable": [13],
        },  # fmt: skip
    }


def perturb(text: str, every: int = 40) -> str:
    """A near-duplicate: every `every`-th word replaced."""
    words = text.split()
    return " ".join("variant" if i % every == every - 1 else w for i, w in enumerate(words))
