import json
import time

import torch  # imported, so the manifest records torch's threads and CPU kernels

from octo.config import StrictModel
from octo.manifest import config_hash, hash_path, is_complete, read_manifest, write_manifest


class Cfg(StrictModel):
    lr: float = 1e-3


def test_manifest_records_everything(tmp_path):
    data = tmp_path / "in"
    data.mkdir()
    (data / "a.txt").write_text("hello")
    (data / "b.txt").write_text("world")
    start = time.time()
    path = write_manifest(
        tmp_path / "out", stage="test", config=Cfg(), inputs={"docs": data}, counts={"docs": 2}, started=start
    )
    m = json.loads(path.read_text())
    assert m["stage"] == "test" and m["status"] == "complete"
    assert m["config"] == {"lr": 1e-3} and m["config_hash"] == config_hash(Cfg())
    assert m["inputs"]["docs"]["files"] == 2 and len(m["inputs"]["docs"]["sha256"]) == 64
    assert m["counts"] == {"docs": 2} and m["wall_time_s"] >= 0
    assert m["versions"]["torch"] and m["versions"]["transformers"] and m["versions"]["python"]
    assert "commit" in m["git"] and m["host"]["cpus"] >= 1
    # the CPU and torch's SIMD kernel level: what makes two machines' CPU runs differ (docs/study.md)
    assert m["host"]["cpu_model"] and m["host"]["cpu_model"] != "unknown"
    assert m["host"]["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_hash_changes_with_content_and_name(tmp_path):
    f = tmp_path / "x"
    f.mkdir()
    (f / "a").write_text("1")
    h1 = hash_path(f)["sha256"]
    (f / "a").write_text("2")
    h2 = hash_path(f)["sha256"]
    (f / "a").rename(f / "b")
    h3 = hash_path(f)["sha256"]
    assert len({h1, h2, h3}) == 3
    assert hash_path(tmp_path / "missing") == {"path": str(tmp_path / "missing"), "exists": False}


def test_is_complete_checks_status_and_config(tmp_path):
    assert not is_complete(tmp_path)
    write_manifest(tmp_path, stage="s", config=Cfg(), status="running")
    assert not is_complete(tmp_path)
    write_manifest(tmp_path, stage="s", config=Cfg())
    assert is_complete(tmp_path) and is_complete(tmp_path, Cfg())
    assert not is_complete(tmp_path, Cfg(lr=1.0))
    (tmp_path / "manifest.json").write_text("{truncated")
    assert read_manifest(tmp_path) is None and not is_complete(tmp_path)
