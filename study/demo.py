"""``octo demo`` (what ``make demo`` runs): the miniature OctoThinker study on CPU, end to end.

It runs ``configs/studies/demo.yaml`` (corpora -> tokenizer -> tiny Llama base -> four mid-training arms ->
evaluation -> GRPO on the base and every arm -> evaluation -> readiness table) in this one process, then
prints the readiness table. Started again, it resumes: finished steps are skipped.
"""

from __future__ import annotations

import argparse
import time

from octo.manifest import PROJECT_ROOT
from study.config import load
from study.runner import run

DEMO = PROJECT_ROOT / "configs" / "studies" / "demo.yaml"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="octo demo", description=__doc__)
    parser.add_argument(
        "overrides", nargs="*", help="key.sub=value overrides of the study (e.g. out_dir=runs/demo2)"
    )
    args = parser.parse_args(argv)
    started = time.time()
    study = load(DEMO, args.overrides)
    root = run(study)
    print()
    print((root / "readiness.md").read_text().split("## Plots")[0].rstrip())
    print(
        f"\nDemo finished in {(time.time() - started) / 60:.1f} min. Table with plots: {root / 'readiness.html'}"
    )
    return 0
