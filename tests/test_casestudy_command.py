"""``python -m mmcourse.casestudy``: a tiny run end to end, then every way it can be misused."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from mmcourse.casestudy.run import DEFAULT_WEIGHTS, main
from tests.conftest import full_mnist_root, needs_full_mnist

TINY = ["--canvases", "24", "--epochs", "1", "--pretrain-epochs", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("casestudy")
    committed = (DEFAULT_WEIGHTS / "SHA256SUMS").read_text()
    assert main(["--train", *TINY, "--out", str(folder / "report")]) == 0
    assert (DEFAULT_WEIGHTS / "SHA256SUMS").read_text() == committed  # never overwritten
    (folder / "report" / "weights").rename(folder / "w")  # written under --out by default
    return folder


def test_a_tiny_training_run_writes_the_whole_report(trained) -> None:
    report = json.loads((trained / "report" / "metrics.json").read_text())
    assert set(report["metrics"]) == {"test", "compositional"}
    for metrics in report["metrics"].values():
        assert {"bleu4", "exact", "digit", "thickness", "slant", "position"} <= set(metrics)
        assert all(0.0 <= value <= 1.0 for value in metrics.values())
    # the beam width is the one with the best validation exact match
    by_width = report["validation_exact_by_beam_width"]
    assert by_width[str(report["beam_width"])] == max(by_width.values())
    assert report["settings"]["canvases"]["test"] == 24
    for name in ("captions.txt", "samples.png", "attention.png"):
        assert (trained / "report" / name).stat().st_size > 0
    assert sorted(p.name for p in (trained / "w").iterdir()) == [
        "SHA256SUMS",
        "attention.pt",
        "encoder.pt",
        "vocab.json",
    ]


def test_loading_the_saved_weights_gives_the_same_captions(trained) -> None:
    out = trained / "again"
    assert main(["--load", *TINY, "--weights", str(trained / "w"), "--out", str(out)]) == 0
    first = (trained / "report" / "captions.txt").read_text()
    assert (out / "captions.txt").read_text() == first


def test_a_corrupted_weights_file_gets_a_message_and_the_offer_to_retrain(
    trained, tmp_path, capsys
) -> None:
    weights = tmp_path / "w"
    weights.mkdir()
    for file in (trained / "w").iterdir():
        (weights / file.name).write_bytes(file.read_bytes())
    data = bytearray((weights / "encoder.pt").read_bytes())
    data[-10] ^= 0xFF
    (weights / "encoder.pt").write_bytes(bytes(data))
    status = main(["--load", *TINY, "--weights", str(weights), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert status == 2
    assert "corrupted" in err and "--train" in err


def test_missing_weights_say_how_to_make_them(tmp_path, capsys) -> None:
    status = main(["--load", *TINY, "--weights", str(tmp_path / "none"), "--out", str(tmp_path)])
    assert status == 2
    assert "python -m mmcourse.casestudy --train" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "one of the arguments --train --load is required"),
        (["--load", "--resume"], "--resume goes on with an interrupted --train"),
        (["--train", "--load"], "not allowed with argument"),
        (["--train", "--profile", "huge"], "invalid choice: 'huge'"),
        (["--train", "--seed", "-1"], "--seed must be 0 or more"),
        (["--train", "--epochs", "0"], "--epochs must be a positive number"),
        (["--train", "--canvases", "abc"], "invalid int value"),
        (["--train", "--decoder", "gpt"], "invalid choice: 'gpt'"),
    ],
)
def test_bad_arguments_get_a_clear_message(args, message, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_the_module_runs_from_the_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mmcourse.casestudy", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--train" in result.stdout and "Examples:" in result.stdout


@needs_full_mnist
def test_the_committed_weights_load_in_the_full_profile(tmp_path, monkeypatch) -> None:
    """The full profile (Colab's default on a GPU) builds its data with the weights' words."""
    monkeypatch.setenv("MMCOURSE_DATA", str(full_mnist_root()))
    args = ["--load", "--profile", "full", "--device", "cpu", "--canvases", "24"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["settings"]["profile"] == "full"
    assert report["settings"]["canvases"]["test"] == 24


def test_load_on_cuda_puts_both_models_there(tmp_path, monkeypatch) -> None:
    """Where no GPU exists, a fake one: the command must ask for its models on the device it
    was given (moving is faked; the rest runs on the CPU)."""
    moved = []
    real_to = torch.nn.Module.to

    def fake_to(self, *args, **kwargs):
        target = args[0] if args else kwargs.get("device")
        if isinstance(target, (str, torch.device)) and torch.device(target).type == "cuda":
            moved.append(type(self).__name__)
            return self
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.nn.Module, "to", fake_to)
    assert main(["--load", "--device", "cuda", *TINY, "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "metrics.json").read_text())["settings"]["device"] == "cuda"
    assert moved == ["CanvasBackbone", "AttentionCaptioner"]
