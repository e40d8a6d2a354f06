"""The readiness table's rows: what the other stages wrote, read into one flat row per arm (and the curves
the plots need)."""

from __future__ import annotations

import json
from pathlib import Path

from octo.errors import InputError
from octo.jsonl import read_json, read_jsonl
from octo.layout import RL_SUFFIX, StudyLayout
from octo.manifest import read_manifest

from .options import ReadinessOptions
from .rules import rl_summary, verdict


def suite_kind(results: dict) -> str:
    tasks = results.get("tasks", {}).values()
    if results.get("settings", {}).get("generation", {}).get("n", 1) > 1:
        return "passk"
    return "fewshot" if any(t.get("fewshot", 0) > 0 for t in tasks) else "zeroshot"


def _read_metrics(path: Path) -> list[dict]:
    return list(read_jsonl(path)) if path.is_file() else []


def imported_baseline(study: Path) -> str | None:
    """The baseline an import mapping named, when the study has no 'base' arm of its own."""
    if StudyLayout(study).rl_dir("base").is_dir():
        return None
    for folder in sorted((study / "rl").glob("*/")):
        baseline = ((read_manifest(folder) or {}).get("readiness") or {}).get("baseline")
        if baseline:
            return baseline
    return None


def _mapped_curve(layout: StudyLayout, arm: str) -> str | None:
    """The verdict curve an imported arm's mapping chose (``octo runs import`` writes it in the manifest)."""
    manifest = read_manifest(layout.rl_dir(arm)) or {}
    return (manifest.get("readiness") or {}).get("curve")


def discover_arms(study: Path, options: ReadinessOptions) -> list[str]:
    found = set()
    for stage in ("midtrain", "rl"):
        if (study / stage).is_dir():
            found |= {p.name for p in (study / stage).iterdir() if p.is_dir()}
    if (study / "eval").is_dir():
        found |= {p.name.removesuffix(RL_SUFFIX) for p in (study / "eval").iterdir() if p.is_dir()}
    if options.arms:
        return list(options.arms)
    # A folder made by `octo study run` keeps the study's arm order (its manifest lists the arms).
    order = []
    manifest = StudyLayout(study).study_manifest()
    if manifest.is_file():
        arms = (json.loads(manifest.read_text()).get("config") or {}).get("arms") or {}
        order = [arm for arm in arms if arm in found]
    rest = sorted(found - set(order), key=lambda a: (a != options.baseline, a))
    return [a for a in rest if a == options.baseline] + order + [a for a in rest if a != options.baseline]


def load_evals(study: Path) -> dict[str, dict[str, dict]]:
    """{model folder name: {suite name: results}} for every complete results.json under eval/."""
    out: dict[str, dict[str, dict]] = {}
    for path in sorted((study / "eval").glob("*/*/results.json")):
        try:
            results = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
        if results.get("complete"):
            out.setdefault(path.parent.parent.name, {})[path.parent.name] = results
    return out


def build_rows(study: Path, options: ReadinessOptions) -> tuple[list[dict], dict]:
    """One flat row per arm, plus the curves the plots need."""
    arms = discover_arms(study, options)
    evals = load_evals(study)
    layout = StudyLayout(study)
    kinds: dict[str, str] = {}
    for suites in evals.values():
        for suite, results in suites.items():
            kinds.setdefault(suite, suite_kind(results))
    rows, curves = [], {"rl": {}, "midtrain": {}, "passk": {}, "base_scores": {}, "shots": {}, "probe": {}}
    for arm in arms:
        row: dict = {"arm": arm}
        notes = []
        pre, post = evals.get(arm, {}), evals.get(arm + RL_SUFFIX, {})
        for suite, kind in sorted(kinds.items()):
            for when, got in (("pre", pre), ("post", post)):
                if kind == "fewshot" and when == "post":
                    continue  # few-shot scores describe base checkpoints
                results = got.get(suite)
                if results is None:
                    model = arm + (RL_SUFFIX if when == "post" else "")
                    if kind != "fewshot" or when == "pre":
                        notes.append(f"eval/{model}/{suite} missing")
                    continue
                for task, entry in results["tasks"].items():
                    curves["shots"][f"{suite}/{task}"] = entry.get("fewshot", 0)
                    if kind == "fewshot":
                        row[f"fewshot/{suite}/{task}"] = entry["score"]
                        curves["base_scores"].setdefault(f"{suite}/{task}", {})[arm] = entry["score"]
                    elif kind == "zeroshot":
                        row[f"zeroshot_{when}/{suite}/{task}"] = entry["score"]
                    else:
                        passk = {
                            int(k.split("@")[1]): v["value"]
                            for k, v in entry["scores"].items()
                            if k.startswith("pass@")
                        }
                        for k, value in sorted(passk.items()):
                            row[f"passk_{when}/{suite}/{task}/pass@{k}"] = value
                        curves["passk"].setdefault(f"{suite}/{task}", {}).setdefault(arm, {})[when] = passk
        rl_rows = _read_metrics(layout.rl_metrics(arm))
        if rl_rows:
            row.update(rl_summary(rl_rows, options, options.curve or _mapped_curve(layout, arm)))
            curves["rl"][arm] = rl_rows
        else:
            notes.append(f"rl/{arm}/metrics.jsonl missing")
        if layout.probe_file(arm).is_file():  # the prediction made before RL, beside the realised outcome
            prediction = read_json(layout.probe_file(arm))["prediction"]
            row["probe_score"], row["probe_verdict"] = prediction["score"], prediction["verdict"]
            curves["probe"][arm] = prediction["score"]
        mid_rows = _read_metrics(layout.midtrain_metrics(arm))
        if mid_rows:
            curves["midtrain"][arm] = mid_rows
        row["verdict"], row["reason"] = verdict(row, options)
        row["notes"] = "; ".join(notes)
        rows.append(row)
    curves["kinds"] = kinds
    return rows, curves


def columns_of(rows: list[dict]) -> list[str]:
    order = ["arm", "verdict", "reason"]
    groups = ("fewshot/", "zeroshot_pre/", "zeroshot_post/", "rl_", "val_acc_", "len_", "correct_len_")
    rest = {k for row in rows for k in row} - set(order) - {"notes"}
    ratios = [
        "clip_final",
        "repetition_final",
        "multi_boxed_final",
        "boxed_first_final",
        "no_answer_final",
        "zero_std_final",
    ]
    ordered = []
    for prefix in groups:
        ordered += sorted((k for k in rest if k.startswith(prefix) and k not in ordered), key=natural_key)
    ordered += [k for k in ratios if k in rest]
    ordered += sorted((k for k in rest if k.startswith("passk_pre/")), key=natural_key)
    ordered += sorted((k for k in rest if k.startswith("passk_post/")), key=natural_key)
    ordered += sorted(rest - set(ordered))
    return order + ordered + ["notes"]


def natural_key(key: str):
    return [int(p) if p.isdigit() else p for p in key.replace("@", "/").split("/")]
