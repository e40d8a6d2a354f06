"""``import_runs``: external logs -> ordinary run folders of a study, a manifest per arm, and an import report.

    <study>/rl/<arm>/metrics.jsonl      the project's schema (mapped keys) + unmapped keys under their own names
    <study>/rl/<arm>/manifest.json      stage "import": the mapping, the source files and their hashes, counts
    <study>/eval/<arm>[-rl]/<suite>/    lighteval results converted to the eval runner's results.json
    <study>/import/<name>.md / .json    the report: rows per arm, every skipped cell counted, unmapped metrics

``octo readiness <study>`` then reads imported and native arms alike.
"""

from __future__ import annotations

import heapq
import json
import time
from collections import Counter
from pathlib import Path

from octo.errors import InputError, MissingInputError
from octo.layout import RESULTS_FILE, StudyLayout
from octo.manifest import hash_path, read_manifest, write_manifest

from . import lighteval, readers
from .mapping import ImportMapping, Mapper, safe_arm
from .readers import Record, Skips
from .writer import ArmWriter

STAGE = "import"


def _stream(path: Path, fmt: str, run: str | None, skips: Skips, mapping: ImportMapping):
    name = run or readers.run_name(path, fmt)
    if fmt == "wandb_csv":
        return readers.read_wandb_csv(path, skips, mapping.step)
    if fmt == "wandb_history":
        read = readers.read_history_csv if path.suffix == ".csv" else readers.read_history_jsonl
        return read(path, name, skips, mapping.step)
    if fmt == "verl":
        return readers.read_verl_jsonl(path, name, skips)
    if fmt == "verl_console":
        return readers.read_verl_console(path, name, skips)
    if fmt == "trl":
        return readers.read_trainer_state(path, name, skips)
    raise InputError(f"{path}: format {fmt!r} holds evaluation results; give it as --before/--after ARM=FILE")


def source_streams(sources, mapping: ImportMapping, fmt: str | None, run: str | None, skips: Skips):
    """(described sources, one record stream): W&B CSV files are merged by step (each is sorted by step, and
    one run's metrics may be spread over several files); other files follow one after the other."""
    described, csv_streams, others = [], [], []
    for source in sources:
        path = Path(source)
        if not path.is_file():
            raise MissingInputError(f"source not found: {path}")
        kind = fmt or (mapping.format if mapping.format != "auto" else readers.sniff(path))
        described.append({"path": str(path), "format": kind})
        stream = _stream(path, kind, run, skips, mapping)
        (csv_streams if kind == "wandb_csv" else others).append(stream)
    merged = heapq.merge(*csv_streams, key=lambda r: r.step) if csv_streams else iter(())
    return described, _chain(merged, *others)


def _chain(*streams):
    for stream in streams:
        yield from stream


class Importer:
    def __init__(self, study: Path, mapping: ImportMapping, force: bool):
        self.layout, self.mapping, self.force = StudyLayout(study), mapping, force
        self.mapper = Mapper(mapping)
        self.writers: dict[str, ArmWriter] = {}
        self.arm_of: dict[str, str | None] = {}
        self.run_of: dict[str, str] = {}
        self.skips = Skips()

    def _check_folder(self, arm: str) -> None:
        folder = self.layout.rl_dir(arm)
        manifest = read_manifest(folder)
        if (
            folder.exists()
            and any(folder.iterdir())
            and (manifest or {}).get("stage") != STAGE
            and not self.force
        ):
            raise InputError(
                f"{folder}: holds a native run of arm '{arm}'; map the run to another arm or use --force"
            )

    def writer(self, record: Record) -> ArmWriter | None:
        if record.run not in self.arm_of:
            arm = self.arm_of[record.run] = self.mapper.arm(record.run)
            if arm is not None:
                if arm in self.run_of:
                    raise InputError(
                        f"runs {self.run_of[arm]!r} and {record.run!r} both map to arm '{arm}' "
                        "(give them distinct arms in the mapping's runs:)"
                    )
                self.run_of[arm] = record.run
                self._check_folder(arm)
                self.writers[arm] = ArmWriter(arm, self.layout.rl_metrics(arm), self.mapper)
        arm = self.arm_of[record.run]
        return self.writers[arm] if arm is not None else None

    def feed(self, records) -> None:
        for record in records:
            writer = self.writer(record)
            if writer is None:
                self.skips.add(
                    record.run, "run not imported (mapping: arm null)", record.where, len(record.values)
                )
                continue
            writer.add(record)

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()


def import_runs(
    study: str | Path,
    sources: list[str | Path],
    mapping: ImportMapping,
    *,
    fmt: str | None = None,
    run: str | None = None,
    before: dict[str, str | Path] | None = None,
    after: dict[str, str | Path] | None = None,
    suite: str = "lighteval",
    force: bool = False,
    name: str | None = None,
) -> dict:
    """Import ``sources`` (and lighteval results ``before``/``after`` RL, arm -> file) into ``study``."""
    started = time.time()
    study = Path(study)
    importer = Importer(study, mapping, force)
    described, records = source_streams(sources, mapping, fmt, run, importer.skips)
    try:
        importer.feed(records)
    except BaseException:
        importer.abort()
        raise
    arms = {}
    # hashed once (a 50 MB export feeding 20 arms is read once more, not 20 times); written as each manifest's inputs
    hashes = {f"source{i}": hash_path(d["path"]) for i, d in enumerate(described)}
    for arm, writer in importer.writers.items():
        rows = writer.close()
        arms[arm] = _arm_report(writer, rows, importer.skips)
        write_manifest(
            writer.path.parent,
            stage=STAGE,
            config=mapping,
            counts={"rows": rows, "skipped_cells": arms[arm]["skipped_total"]},
            started=started,
            extra={
                "inputs": hashes,
                "sources": described,
                "run": importer.run_of[arm],
                "import": arms[arm],
                "readiness": {"curve": mapping.curve, "baseline": mapping.baseline},
            },  # fmt: skip
        )
    evals = _import_evals(study, mapping, before or {}, after or {}, suite, started)
    report = {
        "study": str(study),
        "sources": described,
        "arms": arms,
        "evals": evals,
        "skipped_cells_total": importer.skips.total(),
        "skipped_by_reason": _by_reason(importer.skips.cells),
        "skip_examples": importer.skips.examples,
        "mapping": mapping.model_dump(mode="json"),
    }
    label = name or (safe_arm(Path(described[0]["path"]).stem) if described else "evals")
    out = study / "import"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{label}.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    (out / f"{label}.md").write_text(render_report(report))
    report["report"] = str(out / f"{label}.md")
    return report


def _by_reason(cells: Counter, run: str | None = None) -> dict[str, int]:
    out: Counter = Counter()
    for (r, reason), n in cells.items():
        if run is None or r == run:
            out[reason] += n
    return dict(sorted(out.items()))


def _arm_report(writer: ArmWriter, rows: int, skips: Skips) -> dict:
    run = next(iter(writer.runs)) if writer.runs else None
    skipped = _by_reason(skips.cells, run)
    return {
        "run": run,
        "rows": rows,
        "first_step": writer.first_step,
        "last_step": writer.last_step,
        "mapped": dict(sorted(writer.mapped.items())),
        "unmapped": sorted(writer.unmapped),
        "skipped": skipped,
        "skipped_total": sum(skipped.values()),
        "events": dict(writer.events),
        "rewinds": writer.rewinds,
    }


def _import_evals(
    study: Path, mapping: ImportMapping, before: dict, after: dict, suite: str, started
) -> list:
    layout, done = StudyLayout(study), []
    for after_rl, pairs in ((False, before), (True, after)):
        for arm, path in pairs.items():
            path = Path(path)
            if not path.is_file():
                raise MissingInputError(f"lighteval results not found: {path}")
            suite_name, results = lighteval.convert(path, mapping.eval_metric, suite)
            folder = layout.eval_dir(layout.eval_model(arm, after_rl), suite_name)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n")
            write_manifest(folder, stage=STAGE, config={"source": str(path), "suite": suite_name},
                           inputs={"source": path}, counts={"tasks": len(results["tasks"])}, started=started)  # fmt: skip
            done.append({"arm": arm, "after_rl": after_rl, "suite": suite_name, "folder": str(folder),
                         "tasks": {t: e["score"] for t, e in results["tasks"].items()}})  # fmt: skip
    return done


def render_report(report: dict) -> str:
    out = [f"# Import into {report['study']}", "", "Sources:", ""]
    out += [f"- `{s['path']}` ({s['format']})" for s in report["sources"]] + [""]
    out += [
        "| arm | run | rows | steps | mapped | unmapped (kept) | skipped cells | rewinds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm, a in report["arms"].items():
        steps = f"{a['first_step']:g}–{a['last_step']:g}" if a["rows"] else ""
        rewinds = a["events"].get("step rewinds", 0)
        out.append(
            f"| {arm} | {a['run']} | {a['rows']} | {steps} | {len(a['mapped'])} | {len(a['unmapped'])} "
            f"| {a['skipped_total']} | {rewinds} |"
        )
    out += ["", f"Skipped cells in all: {report['skipped_cells_total']}"]
    out += [f"- {reason}: {n}" for reason, n in report["skipped_by_reason"].items()]
    for arm, a in report["arms"].items():
        out += [
            "",
            f"## {arm}",
            "",
            "Mapped: " + (", ".join(f"`{k}` → `{v}`" for k, v in a["mapped"].items()) or "none"),
        ]
        out += [
            "",
            "Unmapped, kept under their own names: " + (", ".join(f"`{k}`" for k in a["unmapped"]) or "none"),
        ]
        out += [f"- {k}: {v}" for k, v in a["events"].items()] + [f"- {note}" for note in a["rewinds"]]
    for e in report["evals"]:
        when = "after RL" if e["after_rl"] else "before RL"
        out.append(f"- eval {e['arm']} {when}: {e['suite']} {e['tasks']}")
    if report["skip_examples"]:
        out += ["", "First skipped cells:", ""] + [f"- {x}" for x in report["skip_examples"]]
    return "\n".join(out) + "\n"
