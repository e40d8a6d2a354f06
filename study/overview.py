"""The dry run of a study: its plan as text (every step with status and estimate, the arms, the compute total)."""

from __future__ import annotations

from octo.manifest import is_complete
from study.config import StudyConfig
from study.estimate import base_params
from study.runner import plan


def describe(study: StudyConfig) -> str:
    """The plan as text: every step with its status and estimate, the arms, and the compute total."""
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
