import numpy as np

from htsat_live.cli import main
from htsat_live.model import load_model


def test_convert_writes_a_loadable_safetensors_file(tiny_checkpoint, tmp_path, tiny_outputs):
    out = tmp_path / "tiny.safetensors"
    assert main(["convert", str(tiny_checkpoint), str(out)]) == 0
    wave = tiny_outputs["wave4"].numpy()
    assert np.array_equal(load_model(out).predict(wave)["framewise"], load_model(tiny_checkpoint).predict(wave)["framewise"])


def test_export_onnx_int8_reports_its_drift(tiny_checkpoint, tmp_path, capsys, tiny_outputs):
    out = tmp_path / "tiny.int8.onnx"
    assert main(["export-onnx", str(tiny_checkpoint), str(out), "--int8"]) == 0
    printed = capsys.readouterr().out
    assert "framewise max abs" in printed and "top-5 clipwise agreement" in printed
    quantised = load_model(out, backend="onnx")
    assert quantised.labels == [f"class_{i}" for i in range(10)]
    result = quantised.predict(tiny_outputs["wave10"].numpy())
    assert result["framewise"].shape == (2, 1024, 10)
    assert np.abs(result["framewise"] - tiny_outputs["out10"]["framewise"].numpy()).mean() < 0.1


def test_an_onnx_file_selects_onnx_runtime_by_itself(tiny_checkpoint, tmp_path):
    import pytest

    out = tmp_path / "tiny.onnx"
    assert main(["export-onnx", str(tiny_checkpoint), str(out)]) == 0
    assert load_model(out).backend.name == "onnx" and load_model(out, backend="auto").backend.name == "onnx"
    assert load_model(tiny_checkpoint).backend.name == "torch"
    with pytest.raises(ValueError, match="runs on ONNX Runtime, not on torch"):
        load_model(out, backend="torch")


def test_bench_prints_every_contender(tiny_checkpoint, capsys):
    assert main(["bench", "--model", str(tiny_checkpoint), "--rounds", "1", "--batch", "1"]) == 0
    printed = capsys.readouterr().out
    for name in ["reference (official ops, eager)", "torch fp32", "torch bf16", "onnxruntime fp32", "onnxruntime int8"]:
        assert name in printed
    reference_row = next(line for line in printed.splitlines() if line.startswith("reference"))
    assert "1.00x" in reference_row


def test_export_onnx_agreement_uses_at_most_the_class_count(tiny_checkpoint, tmp_path, capsys):
    from dataclasses import replace

    import torch

    from htsat_live.model.checkpoint import read_checkpoint, save_checkpoint
    from htsat_live.model.htsat import HTSAT

    torch.manual_seed(0)
    three = HTSAT(replace(read_checkpoint(tiny_checkpoint).config, num_classes=3))
    save_checkpoint(tmp_path / "three.safetensors", three, ["a", "b", "c"])
    assert main(["export-onnx", str(tmp_path / "three.safetensors"), str(tmp_path / "three.onnx")]) == 0
    printed = capsys.readouterr().out
    assert "top-3 clipwise agreement 1.000" in printed and "top-5" not in printed
