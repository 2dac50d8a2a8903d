"""The command line: help text, bad configs, dry runs, eval of recorded runs, adding a subcommand."""

from __future__ import annotations

import argparse
import json

import pytest

from fer_lib import cli


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["eval", "--help"], ["bench", "--help"], ["predict", "--help"]])
def test_help(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 0
    assert "usage: python -m fer_lib" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--dataset", "nosuchset"], "unknown dataset"),
        (["train", "--model", "nosuchnet"], "unknown model"),
        (["train", "--recipe", "nosuchrecipe"], "unknown recipe"),
        (["train", "--model", "resnet18", "--set", "batch_size=100000"], "larger than the training split"),
    ],
)
def test_bad_configs_exit_2_with_a_message(argv: list[str], message: str, tmp_path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(argv + ["--results", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_dry_run_prints_id_and_plan(tmp_path, capsys: pytest.CaptureFixture) -> None:
    argv = ["train", "--dry-run", "--profile", "cpu", "--dataset", "ferplus", "-m", "num_heads=8", "-l", "theta=0.5",
            "--seed", "0", "1", "--results", str(tmp_path)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    first = json.loads(out[: out.index("\n}") + 2])
    assert first["id"].startswith("ferplus-daf_mhsca-cpu-") and first["finished"] is False
    assert (first["plan"]["recipe"], first["plan"]["batch_size"], first["plan"]["image_size"]) == ("scratch", 128, 72)
    assert out.count('"id"') == 2
    assert not (tmp_path / "runs").exists()


def test_option_values_are_parsed() -> None:
    args = cli.build_parser().parse_args(["train", "-m", "use_daf=false", "-m", "afc_fusion=concat", "-l", "theta=0.5", "-s", "epochs=3"])
    (cfg,) = cli.configs_from_args(args)
    assert cfg.model_options == {"use_daf": False, "afc_fusion": "concat"}
    assert cfg.loss_options == {"theta": 0.5} and cfg.overrides == {"epochs": 3}


def test_eval_of_a_missing_run_fails(tmp_path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["eval", "--model", "resnet18", "--results", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: not trained yet")
    assert cli.main(["eval", "--run", "no-such-run", "--results", str(tmp_path)]) == 2
    assert "error: no finished run in" in capsys.readouterr().err


def test_bad_option_pairs_and_threads(tmp_path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["train", "-m", "num_heads", "--results", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "error: --model-option expects KEY=VALUE, not 'num_heads'\n"
    assert cli.main(["train", "--threads", "0", "--results", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "error: --threads must be at least 1, not 0\n"


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--no-such-flag"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "error: unrecognized arguments: --no-such-flag (see `python -m fer_lib --help`)\n"


def test_train_then_eval(tmp_path, capsys: pytest.CaptureFixture) -> None:
    base = ["--model", "resnet18", "--set", "epochs=1", "--results", str(tmp_path)]
    assert cli.main(["train", "--no-progress", *base]) == 0
    out = capsys.readouterr().out
    assert "best_val" in out and "test acc" in out
    assert cli.main(["eval", "--json", *base]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert set(shown) >= {"id", "last", "best_val", "best_test"}
    assert cli.main(["eval", "--run", shown["id"], "--recompute", "--which", "last", "--results", str(tmp_path)]) == 0
    assert f"test acc {shown['last']['test']['accuracy']:.4f}" in capsys.readouterr().out


def test_a_module_can_add_a_subcommand(capsys: pytest.CaptureFixture) -> None:
    @cli.subcommand("hello", "say hello")
    def _hello(parser: argparse.ArgumentParser):
        parser.add_argument("--name", default="world")
        return lambda args: print(f"hello {args.name}") or 0

    try:
        assert cli.main(["hello", "--name", "faces"]) == 0
        assert capsys.readouterr().out.strip() == "hello faces"
    finally:
        del cli.SUBCOMMANDS["hello"]
