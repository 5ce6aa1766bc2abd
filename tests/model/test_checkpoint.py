import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

from htsat_live.model import load_model
from htsat_live.model.checkpoint import (
    CheckpointError,
    build_model,
    load_weights,
    read_checkpoint,
    save_checkpoint,
)
from htsat_live.model.htsat import HTSATConfig


def _official_state_dict(tiny_checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(tiny_checkpoint, weights_only=True)["state_dict"]


def test_config_is_inferred_from_the_tiny_checkpoint(tiny_checkpoint):
    config = read_checkpoint(tiny_checkpoint).config
    assert config == HTSATConfig(
        num_classes=10, embed_dim=24, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), window_size=8
    )


def test_full_size_official_key_set_loads_and_runs(official_checkpoints):
    """A checkpoint with every key and shape of the official AudioSet model loads and predicts."""
    path = official_checkpoints[0]
    model = load_model(path)
    assert model.config == HTSATConfig()
    assert len(model.labels) == 527 and model.labels[0] == "Speech"
    out = model.predict(np.zeros((1, 32000), dtype=np.float32), short="pad")
    assert out["framewise"].shape == (1, 1024, 527)


def test_plain_state_dict_loads(tiny_checkpoint, tmp_path, tiny_outputs):
    plain = {k.removeprefix("sed_model."): v for k, v in _official_state_dict(tiny_checkpoint).items()}
    torch.save(plain, tmp_path / "plain.pt")
    out = load_model(tmp_path / "plain.pt").predict(tiny_outputs["wave4"].numpy())
    assert np.abs(out["clipwise"] - tiny_outputs["out4"]["clipwise"].numpy()).max() < 1e-4


def test_our_format_round_trips_labels_thresholds_and_outputs(tiny_checkpoint, tmp_path, tiny_outputs):
    checkpoint = read_checkpoint(tiny_checkpoint)
    labels = [f"sound {i}" for i in range(10)]
    thresholds = [0.1 * i for i in range(10)]
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(path, build_model(checkpoint), labels, thresholds, {"trained_on": "nothing"})
    model = load_model(path)
    assert model.labels == labels
    np.testing.assert_allclose(model.thresholds, thresholds, rtol=1e-6)
    wave = tiny_outputs["wave10"].numpy()
    assert np.abs(model.predict(wave)["framewise"] - load_model(tiny_checkpoint).predict(wave)["framewise"]).max() == 0
    metadata = json.loads(safetensors.safe_open(str(path), "pt").metadata()["htsat_live"])
    assert metadata["provenance"] == {"trained_on": "nothing"}
    assert model.median_frames == 1


def test_our_format_carries_the_median_filter_length_and_refuses_a_bad_one(tiny_checkpoint, tmp_path):
    model = build_model(read_checkpoint(tiny_checkpoint))
    labels = [f"sound {i}" for i in range(10)]
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(path, model, labels, None, {}, median_frames=95)
    assert load_model(path).median_frames == 95
    with pytest.raises(ValueError, match="median_frames must be an odd integer"):
        save_checkpoint(tmp_path / "even.safetensors", model, labels, None, {}, median_frames=64)
    with safetensors.safe_open(str(path), "pt") as handle:
        metadata = json.loads(handle.metadata()["htsat_live"])
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    safetensors.torch.save_file(
        tensors,
        str(tmp_path / "bad.safetensors"),
        metadata={"htsat_live": json.dumps({**metadata, "median_frames": 2.5})},
    )
    with pytest.raises(CheckpointError, match="median_frames must be an odd integer in 1..1023, got 2.5"):
        read_checkpoint(tmp_path / "bad.safetensors")


def test_missing_keys_are_named(tiny_checkpoint, tmp_path):
    state_dict = _official_state_dict(tiny_checkpoint)
    del state_dict["sed_model.layers.1.blocks.0.mlp.fc2.bias"]
    torch.save({"state_dict": state_dict}, tmp_path / "missing.ckpt")
    with pytest.raises(CheckpointError, match=r"missing keys layers\.1\.blocks\.0\.mlp\.fc2\.bias"):
        load_model(tmp_path / "missing.ckpt")


def test_unexpected_keys_are_named_but_known_unused_ones_pass(tiny_checkpoint, tmp_path):
    state_dict = _official_state_dict(tiny_checkpoint)
    assert "sed_model.head.weight" in state_dict and "sed_model.logmel_extractor.melW" in state_dict
    state_dict["sed_model.decoder.weight"] = torch.zeros(3)
    torch.save({"state_dict": state_dict}, tmp_path / "extra.ckpt")
    with pytest.raises(CheckpointError, match=r"unexpected keys decoder\.weight"):
        load_model(tmp_path / "extra.ckpt")


def test_shape_mismatch_is_named(tiny_checkpoint, tmp_path):
    state_dict = _official_state_dict(tiny_checkpoint)
    state_dict["sed_model.layers.2.blocks.1.mlp.fc1.weight"] = torch.zeros(100, 96)
    torch.save({"state_dict": state_dict}, tmp_path / "shape.ckpt")
    with pytest.raises(CheckpointError, match=r"shape mismatches layers\.2\.blocks\.1\.mlp\.fc1\.weight \[100, 96\]"):
        load_model(tmp_path / "shape.ckpt")


def test_a_new_head_for_other_classes_takes_every_other_weight(tiny_checkpoint):
    checkpoint = read_checkpoint(tiny_checkpoint)
    model = load_weights(checkpoint, tiny_checkpoint, num_classes=3)
    assert model.config == replace(checkpoint.config, num_classes=3) and model.training
    loaded = model.state_dict()
    assert loaded["tscam_conv.weight"].shape[0] == 3 != checkpoint.state_dict["tscam_conv.weight"].shape[0]
    for key, tensor in loaded.items():
        if not key.startswith("tscam_conv."):
            assert torch.equal(tensor, checkpoint.state_dict[key]), key
    assert model.token_logits(torch.zeros(2, 1001, 64)).shape == (2, 3, model.config.time_tokens)
    same_count = load_weights(checkpoint, tiny_checkpoint, num_classes=10)  # new classes, as many as before
    assert not torch.equal(same_count.tscam_conv.weight, checkpoint.state_dict["tscam_conv.weight"])


def test_a_new_head_still_refuses_every_other_key_that_does_not_fit(tiny_checkpoint):
    checkpoint = read_checkpoint(tiny_checkpoint)
    extra = {**checkpoint.state_dict, "decoder.weight": torch.zeros(3)}
    with pytest.raises(CheckpointError, match=r"unexpected keys decoder\.weight"):
        load_weights(replace(checkpoint, state_dict=extra), num_classes=3)
    missing = {k: v for k, v in checkpoint.state_dict.items() if k != "layers.1.blocks.0.mlp.fc2.bias"}
    with pytest.raises(CheckpointError, match=r"missing keys layers\.1\.blocks\.0\.mlp\.fc2\.bias$"):
        load_weights(replace(checkpoint, state_dict=missing), num_classes=3)
    misshapen = {**checkpoint.state_dict, "layers.2.blocks.1.mlp.fc1.weight": torch.zeros(100, 96)}
    with pytest.raises(CheckpointError, match=r"shape mismatches layers\.2\.blocks\.1\.mlp\.fc1\.weight"):
        load_weights(replace(checkpoint, state_dict=misshapen), num_classes=3)
    headless = {k: v for k, v in checkpoint.state_dict.items() if not k.startswith("tscam_conv.")}
    assert load_weights(replace(checkpoint, state_dict=headless), num_classes=3).tscam_conv.out_channels == 3


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickle_that_needs_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": _Payload()}, path)
    with pytest.raises(CheckpointError, match=r"refused: besides tensors it holds Python objects \(.*print\)") as error:
        load_model(path)
    assert "this must never run" not in capsys.readouterr().out
    assert "weights_only" not in str(error.value)  # never torch's advice to load it with code enabled


@pytest.mark.parametrize("content", [b"", b"\x00\x01garbage" * 100, bytes(range(256)) * 20])
def test_random_bytes_are_not_a_checkpoint_and_no_advice_to_run_code(tmp_path, content):
    path = tmp_path / "noise.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a readable checkpoint") as error:
        load_model(path)
    assert "weights_only" not in str(error.value) and "unpickle" not in str(error.value)


def test_truncated_file_is_refused(tiny_checkpoint, tmp_path):
    path = tmp_path / "truncated.ckpt"
    path.write_bytes(tiny_checkpoint.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_model(path)


def test_non_checkpoint_files_are_refused(tmp_path):
    (tmp_path / "notes.ckpt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_model(tmp_path / "notes.ckpt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_model(tmp_path / "list.pt")
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an HTS-AT checkpoint"):
        load_model(tmp_path / "other.pt")
    (tmp_path / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{bad")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_model(tmp_path / "broken.safetensors")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(tmp_path / "absent.ckpt")


def test_saved_checkpoints_follow_the_umask(tiny_checkpoint, tmp_path):
    import os

    from htsat_live.model.checkpoint import (
        build_model,
        read_checkpoint,
        save_checkpoint,
    )

    checkpoint = read_checkpoint(tiny_checkpoint)
    previous = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "shared.safetensors", build_model(checkpoint), checkpoint.labels)
    finally:
        os.umask(previous)
    assert (tmp_path / "shared.safetensors").stat().st_mode & 0o777 == 0o644
