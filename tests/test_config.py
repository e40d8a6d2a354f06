from typing import Literal

import pytest
from pydantic import Field

from octo.config import ConfigError, StrictModel, dump_config, load_config


class Optim(StrictModel):
    lr: float = Field(gt=0)
    schedule: Literal["constant", "cosine"] = "constant"


class Run(StrictModel):
    name: str
    out_dir: str
    steps: int = 10
    optim: Optim
    tags: list[str] = []


GOOD = """\
name: demo
out_dir: runs/${name}/rl
steps: 20
optim:
  lr: 1.0e-4
  schedule: cosine
tags: [a, b]
"""


def write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_good_config_loads_with_interpolation(tmp_path):
    cfg = load_config(write(tmp_path, GOOD), Run)
    assert cfg.name == "demo" and cfg.steps == 20
    assert cfg.out_dir == "runs/demo/rl"  # ${name} resolved
    assert cfg.optim.lr == pytest.approx(1e-4) and cfg.optim.schedule == "cosine"


def test_dotted_overrides_apply_and_interpolate(tmp_path):
    cfg = load_config(write(tmp_path, GOOD), Run, ["optim.lr=3e-3", "name=other", "steps=5"])
    assert cfg.optim.lr == pytest.approx(3e-3)
    assert cfg.steps == 5
    assert cfg.out_dir == "runs/other/rl"  # the reference follows the override


def test_overrides_reach_list_items(tmp_path):
    cfg = load_config(write(tmp_path, GOOD), Run, ["tags.1=z", "tags=[x, y, w]"])
    assert cfg.tags == ["x", "y", "w"]
    cfg = load_config(write(tmp_path, GOOD), Run, ["tags.1=z"])
    assert cfg.tags == ["a", "z"]
    with pytest.raises(ConfigError, match="tags.5=z"):
        load_config(write(tmp_path, GOOD), Run, ["tags.5=z"])


def test_env_interpolation(tmp_path, monkeypatch):
    monkeypatch.setenv("OCTO_TEST_OUT", "/scratch/x")
    cfg = load_config(write(tmp_path, GOOD.replace("runs/${name}/rl", "${oc.env:OCTO_TEST_OUT}")), Run)
    assert cfg.out_dir == "/scratch/x"


def test_unknown_key_names_file_field_and_line(tmp_path):
    path = write(tmp_path, GOOD.replace("  schedule: cosine", "  schedule: cosine\n  lr_typo: 3"))
    with pytest.raises(ConfigError) as err:
        load_config(path, Run)
    msg = str(err.value)
    assert str(path) in msg and "optim.lr_typo" in msg and "line 7" in msg and "unknown key" in msg


def test_wrong_type_names_field(tmp_path):
    path = write(tmp_path, GOOD.replace("steps: 20", "steps: many"))
    with pytest.raises(ConfigError) as err:
        load_config(path, Run)
    assert "steps" in str(err.value) and "line 3" in str(err.value) and "'many'" in str(err.value)


def test_bad_literal_and_constraint(tmp_path):
    path = write(tmp_path, GOOD.replace("cosine", "linear").replace("1.0e-4", "-1"))
    with pytest.raises(ConfigError) as err:
        load_config(path, Run)
    assert "optim.schedule" in str(err.value) and "optim.lr" in str(err.value)


def test_missing_required_field(tmp_path):
    with pytest.raises(ConfigError, match="name"):
        load_config(write(tmp_path, GOOD.replace("name: demo\n", "").replace("${name}", "x")), Run)


def test_bad_override_is_reported_as_override(tmp_path):
    with pytest.raises(ConfigError, match="command-line override"):
        load_config(write(tmp_path, GOOD), Run, ["optim.lr=fast"])
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config(write(tmp_path, GOOD), Run, ["optim.lr"])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml", Run)
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "name: [unclosed\n"), Run)
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path, "- a\n- b\n"), Run)


def test_dangling_reference_is_clear(tmp_path):
    with pytest.raises(ConfigError, match="out_dir"):
        load_config(write(tmp_path, GOOD.replace("${name}", "${nowhere}")), Run)


def test_dump_round_trip(tmp_path):
    cfg = load_config(write(tmp_path, GOOD), Run)
    again = load_config(dump_config(cfg, tmp_path / "resolved.yaml"), Run)
    assert again == cfg


def test_assignment_is_validated(tmp_path):
    cfg = load_config(write(tmp_path, GOOD), Run)
    with pytest.raises(ValueError):
        cfg.steps = "x"
