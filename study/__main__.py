"""``octo study run configs/studies/<x>.yaml [--dry-run] [key.sub=value ...]``: a whole study end to end.

``octo study seeds DIR...``: one study run with several seeds, as mean ± sd per arm.
"""

from __future__ import annotations

import argparse

from study.config import load
from study.runner import plan, run


def describe(study) -> str:
    """The plan as text: every step with its status and estimate, the arms, and the compute total."""
    from octo.manifest import is_complete
    from study.estimate import base_params

    steps = plan(study)
    compute = study.compute
    lines = [f"study '{study.name}' -> {study.root}  (mid-training engine: {study.engine})"]
    if study.description:
        lines.append(study.description.strip())
    params = base_params(study)
    lines.append(
        f"model size: {params / 1e6:,.2f}M parameters"
        if params
        else "model size: unknown (set compute.params.base)"
    )
    lines.append(
        f"arms: base{' (pre-trained by ' + study.base.pretrain.recipe + ')' if study.base.pretrain else ' = ' + str(study.base.model)}"
    )
    for name, arm in study.arms.items():
        mix = ", ".join(f"{c}:{w:g}" for c, w in (arm.mixture or {}).items()) or "the recipe's mixture"
        lines.append(
            f"  {name:<14} from {arm.start_from}{' (decay branch)' if arm.branch else ''}: {arm.recipe} [{mix}]"
        )
    lines.append(f"RL on: {', '.join(study.rl_arms()) or 'none'}")
    lines.append("")
    lines.append(f"{'#':>3}  {'step':<44} {'status':<8} {'est. time':>10}  what")
    total_flops, total_s = 0.0, 0.0
    for i, step in enumerate(steps, 1):
        status = "done" if step.stage != "readiness" and is_complete(step.out) else "pending"
        seconds = step.estimate.seconds(compute)
        total_flops += step.estimate.flops
        total_s += seconds
        when = f"{seconds / 3600:,.1f} h" if seconds >= 3600 else f"{seconds:,.0f} s"
        lines.append(
            f"{i:>3}  {step.name:<44} {status:<8} {when if step.estimate.flops else '-':>10}  {step.estimate.note}"
        )
    lines.append("")
    hours = total_s / 3600
    lines.append(
        f"compute: {total_flops:.3g} FLOPs; at {compute.utilisation:.0%} of {compute.peak_flops:.3g} FLOP/s "
        f"({compute.generation_utilisation or compute.utilisation:.0%} while generating) on {compute.devices} x "
        f"{compute.device}: ~{f'{hours:,.1f} h' if hours >= 1 else f'{total_s / 60:.0f} min'} wall ({hours * compute.devices:,.0f} device-hours); "
        "corpus building and start-up overheads are not included"
    )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "seeds":
        from study.seeds import main as seeds

        return seeds(argv[1:])
    parser = argparse.ArgumentParser(prog="octo study", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser(
        "run", help="run (or resume) a study; --dry-run prints the plan and validates every config"
    )
    p.add_argument("config")
    p.add_argument("overrides", nargs="*", help="key.sub=value")
    p.add_argument(
        "--dry-run", action="store_true", help="print the plan and the compute estimate; run nothing"
    )
    # listed for --help only: main() hands `seeds` to study.seeds before parsing
    sub.add_parser(
        "seeds", help="mean ± sd of the readiness numbers of one study run with several seeds (DIR...)"
    )
    args, extra = parser.parse_known_args(argv)  # overrides may also come after --dry-run
    unknown = [x for x in extra if x.startswith("-") or "=" not in x]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.overrides += extra
    study = load(args.config, args.overrides)
    if args.dry_run:
        print(describe(study))
        return 0
    run(study)
    return 0
