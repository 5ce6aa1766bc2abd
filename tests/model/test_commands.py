import numpy as np
import pytest

from htsat_live.cli import main
from htsat_live.model import load_model


def test_convert_writes_a_loadable_safetensors_file(tiny_checkpoint, tmp_path, tiny_outputs):
    out = tmp_path / "tiny.safetensors"
    assert main(["convert", str(tiny_checkpoint), str(out)]) == 0
    wave = tiny_outputs["wave4"].numpy()
    assert np.array_equal(
        load_model(out).predict(wave)["framewise"], load_model(tiny_checkpoint).predict(wave)["framewise"]
    )


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


def test_an_onnx_file_selects_onnx_runtime_by_itself(tiny_checkpoint, tiny_onnx):
    import pytest

    out = tiny_onnx
    assert load_model(out).backend.name == "onnx" and load_model(out, backend="auto").backend.name == "onnx"
    assert load_model(tiny_checkpoint).backend.name == "torch"
    with pytest.raises(ValueError, match="runs on ONNX Runtime, not on torch"):
        load_model(out, backend="torch")


@pytest.mark.timeout(300)  # times every backend, full-size model included
def test_bench_prints_every_contender(tiny_checkpoint, capsys):
    assert main(["bench", "--model", str(tiny_checkpoint), "--rounds", "1", "--batch", "1"]) == 0
    printed = capsys.readouterr().out
    for name in ["reference (official ops, eager)", "torch fp32", "torch bf16", "onnxruntime fp32", "onnxruntime int8"]:
        assert name in printed
    reference_row = next(line for line in printed.splitlines() if line.startswith("reference"))
    assert "1.00x" in reference_row


def test_top_k_agreement_uses_at_most_the_class_count():
    from htsat_live.model.commands import top_k_agreement

    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.1]], np.float32)  # [clips, 3 classes]
    assert top_k_agreement(scores, scores[:, ::-1]) == (1.0, 3)  # any order: all 3 classes are the top 3
    assert top_k_agreement(scores, -scores, k=1) == (0.0, 1)  # opposite rankings
    six = np.arange(12, dtype=np.float32).reshape(2, 6)
    assert top_k_agreement(six, six) == (1.0, 5)


def test_convert_reads_the_official_class_labels_csv(tiny_checkpoint, tmp_path):
    labels = tmp_path / "class_labels_indices.csv"
    rows = [f'{i},/m/{i:04d},"Sound, number {i}"' for i in range(10)]
    labels.write_text("index,mid,display_name\n" + "\n".join(rows) + "\n")
    assert main(["convert", str(tiny_checkpoint), str(tmp_path / "t.safetensors"), "--labels", str(labels)]) == 0
    assert load_model(tmp_path / "t.safetensors").labels == [f"Sound, number {i}" for i in range(10)]
    plain = tmp_path / "labels.txt"
    plain.write_text("\n".join(f"c{i}" for i in range(10)) + "\n")
    assert main(["convert", str(tiny_checkpoint), str(tmp_path / "p.safetensors"), "--labels", str(plain)]) == 0
    assert load_model(tmp_path / "p.safetensors").labels == [f"c{i}" for i in range(10)]


def test_convert_with_the_wrong_label_count_is_one_line_and_exit_2(tiny_checkpoint, tmp_path, capsys):
    plain = tmp_path / "labels.txt"
    plain.write_text("a\nb\n")
    assert main(["convert", str(tiny_checkpoint), str(tmp_path / "x.safetensors"), "--labels", str(plain)]) == 2
    err = capsys.readouterr().err
    assert "2 labels for a model of 10 classes" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.safetensors").exists()
