import subprocess
import sys

from octo.cli import COMMANDS


def octo(*args):
    return subprocess.run([sys.executable, "-m", "octo", *args], capture_output=True, text=True, timeout=300)


def test_help_lists_every_command():
    out = octo("--help")
    assert out.returncode == 0
    for name in ("corpus", "midtrain", "rl", "eval", "readiness", "study", "demo", "assets", "tiny"):
        assert name in COMMANDS and f"  {name}" in out.stdout


def test_unknown_command_exits_2():
    out = octo("nonsense")
    assert out.returncode == 2 and "unknown command" in out.stderr


def test_config_error_is_a_message_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tokenizer: x\nmodel:\n  hidden_sise: 3\n")
    out = octo("tiny", "model", str(bad), "--out", str(tmp_path / "m"))
    assert out.returncode == 2
    assert "model.hidden_sise" in out.stderr and "line 3" in out.stderr and "Traceback" not in out.stderr


def test_tiny_commands_end_to_end(tmp_path):
    tok = tmp_path / "tok"
    out = octo("tiny", "tokenizer", "--wiki", "300", "--vocab-size", "400", "--out", str(tok))
    assert out.returncode == 0, out.stderr
    assert (tok / "tokenizer.json").is_file() and (tok / "manifest.json").is_file()
    cfg = tmp_path / "m.yaml"
    cfg.write_text(
        f"tokenizer: {tok}\nmodel:\n  hidden_size: 32\n  num_heads: 2\n  num_layers: 1\n  intermediate_size: 64\n"
    )
    out = octo("tiny", "model", str(cfg), "--out", str(tmp_path / "model"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "model" / "model.safetensors").is_file() and (
        tmp_path / "model" / "manifest.json"
    ).is_file()


def test_overrides_may_stand_before_or_after_the_options_in_every_stage(capsys):
    """One parser rule for every stage CLI (octo.config.parse_with_overrides): key=value words anywhere, any
    other stray word a usage error, and a subcommand without overrides refuses them instead of dropping them."""
    import pytest

    from midtrain.cli import main as midtrain_main
    from rl.cli import main as rl_main
    from study.cli import main as study_main

    assert midtrain_main(["dry-run", "configs/midtrain/demo_mathqa.yaml", "seed=3"]) == 0
    before = capsys.readouterr().out
    assert midtrain_main(["dry-run", "configs/midtrain/demo_mathqa.yaml", "seed=3", "name=x"]) == 0
    assert capsys.readouterr().out.startswith("x -> ") and before.startswith("demo_mathqa -> ")
    assert rl_main(["run", "configs/rl/demo.yaml", "--dry-run", "trainer.steps=7", "--model", "m"]) == 0
    assert "GRPO from m -> " in (out := capsys.readouterr().out) and "  7 steps x 4 prompts" in out
    assert study_main(["run", "configs/studies/demo.yaml", "--dry-run", "out_dir=/tmp/x-study"]) == 0
    assert "/tmp/x-study" in capsys.readouterr().out
    for argv, main in ((["run", "configs/rl/demo.yaml", "--dry-run", "stray"], rl_main),
                       (["convert", "hf-to-nanotron", "a", "b", "seed=1"], midtrain_main)):  # fmt: skip
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err
