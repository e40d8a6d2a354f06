"""Run manifests: one ``manifest.json`` beside every stage output, so any table can be traced back.

A manifest records the resolved config (and its hash), package versions, the git commit, the input paths
with content hashes, counts, wall time and the host. ``is_complete`` lets a study runner skip a stage whose
outputs are already there for the same config.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
# Above this many bytes an input is fingerprinted (names, sizes and the first/last MiB of each file) rather than
# hashed whole: hashing a 200B-token corpus on every run would cost more than the run's bookkeeping is worth.
FULL_HASH_LIMIT = 2 * 1024**3
PACKAGES = (
    "octo-lab", "torch", "transformers", "tokenizers", "datasets", "accelerate", "trl", "lighteval",
    "math-verify", "datatrove", "numpy", "pydantic", "omegaconf", "vllm", "ray", "reasoning-gym",
)  # fmt: skip
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def package_versions(names=PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_state(root: Path = PROJECT_ROOT) -> dict[str, Any]:
    def git(*args):
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None}
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip() != ""
        return {"commit": head.stdout.strip(), "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None}


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.name != MANIFEST)


def hash_path(path: str | Path) -> dict[str, Any]:
    """Content hash of a file or folder (sha256 over relative names and contents)."""
    path = Path(path)
    if not path.exists():
        return {"path": str(path), "exists": False}
    files = _files(path)
    total = sum(f.stat().st_size for f in files)
    mode = "sha256" if total <= FULL_HASH_LIMIT else "fingerprint"
    digest = hashlib.sha256()
    for f in files:
        digest.update(str(f.relative_to(path) if path.is_dir() else f.name).encode() + b"\0")
        size = f.stat().st_size
        with f.open("rb") as fh:
            if mode == "sha256" or size <= 2 * 1024**2:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
            else:
                digest.update(str(size).encode() + fh.read(1 << 20))
                fh.seek(-(1 << 20), os.SEEK_END)
                digest.update(fh.read())
    return {"path": str(path), "exists": True, "files": len(files), "bytes": total, mode: digest.hexdigest()}


def config_hash(config: Any) -> str:
    data = config.model_dump(mode="json") if hasattr(config, "model_dump") else config
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), e.g. 'AMD EPYC'; platform.processor() elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def host_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
        # the SIMD kernels torch picked: CPU training is bit-exact run to run on one machine, not across these
        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        info["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def write_manifest(
    out_dir: str | Path,
    *,
    stage: str,
    config: Any,
    inputs: dict[str, str | Path] | None = None,
    counts: dict[str, Any] | None = None,
    started: float | None = None,
    extra: dict[str, Any] | None = None,
    status: str = "complete",
) -> Path:
    """Write ``out_dir/manifest.json``. ``started`` is a ``time.time()`` stamp taken when the stage began."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = config.model_dump(mode="json") if hasattr(config, "model_dump") else config
    manifest = {
        "stage": stage,
        "status": status,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "wall_time_s": round(time.time() - started, 3) if started else None,
        "config": data,
        "config_hash": config_hash(data),
        "inputs": {name: hash_path(p) for name, p in (inputs or {}).items()},
        "counts": counts or {},
        "versions": package_versions(),
        "git": git_state(),
        "host": host_info(),
        "command": sys.argv,
        **(extra or {}),
    }
    target = out_dir / MANIFEST
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    tmp.replace(target)  # atomic: a killed run never leaves a half-written manifest
    return target


def read_manifest(out_dir: str | Path) -> dict[str, Any] | None:
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def is_complete(out_dir: str | Path, config: Any = None) -> bool:
    """True when ``out_dir`` holds a complete manifest (for the same config, when one is given)."""
    manifest = read_manifest(out_dir)
    if not manifest or manifest.get("status") != "complete":
        return False
    return config is None or manifest.get("config_hash") == config_hash(config)
