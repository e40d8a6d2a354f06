"""The ``octo`` command: one subcommand per stage, each dispatched to that stage's ``cli`` module (argparse only;
it calls the stage's ``load`` / ``dry_run`` / ``run``).

Stage modules are imported only when their command runs, so ``octo --help`` is instant and a stage's
heavy imports (torch, datatrove, lighteval) never slow down another.
"""

from __future__ import annotations

import importlib
import sys

from octo import __version__
from octo.errors import OctoError
from octo.progress import quiet_libraries
from octo.schema import STAGE_MODELS, schema_main

# (command, first word) -> module, where one command's subcommand belongs to another package: the probe runs
# in the RL stage (it needs RL's prompts and reward), its validation reads study outcomes (evaluation's side)
SUBCOMMANDS: dict[tuple[str, str], str] = {("probe", "validate"): "eval.probe_validate"}

# command -> (module with a main(argv) function, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "corpus": (
        "pipelines.cli",
        "build math mid-training corpora with datatrove (build, train-classifier, ...)",
    ),
    "midtrain": (
        "midtrain.cli",
        "continued pre-training on weighted corpus mixes (run, dry-run, nanotron-config, convert)",
    ),
    "rl": ("rl.cli", "R1-Zero-style GRPO that records the RL dynamics (run)"),
    "eval": ("eval.cli", "lighteval suites: few-shot base, zero-shot RL, pass@k (run)"),
    "readiness": ("eval.readiness.cli", "the RL-readiness table and plots of a study folder"),
    "runs": (
        "eval.importer.cli",
        "import runs made elsewhere: W&B exports, veRL/TRL logs, lighteval (import)",
    ),
    "probe": (
        "rl.probe_cli",
        "predict a checkpoint's RL outcome before RL (MODEL --rl CONFIG); validate RUNS_DIR: how well it predicts",
    ),
    "study": ("study.cli", "run a whole study end to end (run, --dry-run)"),
    "publish": ("octo.publish", "a finished run as a Hub model folder with a model card (--out DIR, --push)"),
    "demo": ("study.demo", "the miniature OctoThinker study on CPU (what `make demo` runs)"),
    "assets": (
        "octo.assets_cli",
        "check and prepare the offline assets (check, smollm2, llama3, benchmarks)",
    ),
    "tiny": ("octo.tiny_cli", "train a small BPE tokenizer or create a tiny Llama from YAML"),
    "docs": (
        "octo.schema",
        "write the field references docs/reference/<stage>.md (--check: are they stale?)",
    ),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: octo <command> [args...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "Run `octo <command> --help` for a command's own options."]
    lines += [f"`octo <stage> schema` prints a recipe's fields ({', '.join(STAGE_MODELS)})."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] in ("-V", "--version"):
        print(f"octo {__version__}")
        return 0
    command, rest = argv[0], argv[1:]

    quiet_libraries()  # no carriage-return bar redraws in a log file (before any stage imports tqdm)
    if command not in COMMANDS:
        print(f"octo: unknown command '{command}'\n\n{usage()}", file=sys.stderr)
        return 2
    if command in STAGE_MODELS and rest[:1] == ["schema"]:  # one schema command for every stage
        return schema_main(command, rest[1:])
    module_name = COMMANDS[command][0]
    if (command, rest[0] if rest else "") in SUBCOMMANDS:
        module_name, rest = SUBCOMMANDS[(command, rest[0])], rest[1:]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            print(
                f"octo {command}: this stage is not installed in this checkout ({module_name})",
                file=sys.stderr,
            )
            return 2
        raise
    try:
        return int(module.main(rest) or 0)
    except OctoError as exc:  # user errors: the message says what to fix, no traceback
        print(f"octo {command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
