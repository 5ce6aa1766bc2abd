"""Reading and writing HTS-AT weights.

Read: official PyTorch Lightning checkpoints (`state_dict` with the `sed_model.` prefix), plain state dicts,
and our own format: one `.safetensors` file whose `__metadata__` holds a JSON document under the key
`htsat_live` (config, labels, thresholds, median filter length, provenance). Pickled files are opened with
`torch.load(weights_only=True)` only, so a file that needs code to unpickle is refused.

The architecture is inferred from tensor shapes; every key is checked against the model we build, and
anything missing, unexpected or misshapen is refused with the key names. Loading for another class count
(fine-tuning) takes every weight but the head's, which starts afresh.
"""

import csv
import json
import math
import pickle
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import safetensors
import safetensors.torch
import torch

from htsat_live.model.htsat import HTSAT, HTSATConfig
from htsat_live.model.registry import resolve_model

FORMAT_NAME = "htsat-live"
FORMAT_VERSION = 1
METADATA_KEY = "htsat_live"
LIGHTNING_PREFIX = "sed_model."
# keys of the official model that our model does not use: torchlibrosa's STFT/mel buffers (our front end
# computes them) and the linear head that the token-semantic path never calls
UNUSED_PREFIXES = ("spectrogram_extractor.", "logmel_extractor.", "head.")
HEAD_PREFIX = "tscam_conv."  # the token-semantic head: the only weights whose shape follows the class count
# buffers the official model saves but that follow from the architecture; we derive and compare them
DERIVED_BUFFERS = ("attn.relative_position_index", "attn_mask")
AUDIOSET_CLASSES = 527
MAX_MEDIAN_FRAMES = 1023


class CheckpointError(ValueError):
    """A file that is not a usable HTS-AT checkpoint; the message says why."""


@dataclass
class Checkpoint:
    config: HTSATConfig
    state_dict: dict[str, torch.Tensor]
    labels: list[str]
    thresholds: list[float] | None = None
    median_frames: int = 1  # default median filter of the event rule, grid frames (odd; 1 = none)
    metadata: dict = field(default_factory=dict)  # provenance and anything else our format carried


def audioset_labels() -> list[str]:
    """The 527 AudioSet display names in model output order."""
    return read_labels(Path(__file__).resolve().parent / "data" / "class_label_indice.csv")


def read_labels(path: str | Path) -> list[str]:
    """Class labels in output order from a file: a CSV with a `display_name` column (AudioSet's
    class_labels_indices.csv: index, mid, display_name), or plain text with one label per line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read labels: {getattr(error, 'strerror', None) or error}") from None
    if lines and "display_name" in next(csv.reader(lines[:1])):
        return [row["display_name"] for row in csv.DictReader(lines)]
    return [line.strip() for line in lines if line.strip()]


def default_labels(num_classes: int) -> list[str]:
    return audioset_labels() if num_classes == AUDIOSET_CLASSES else [f"class_{i}" for i in range(num_classes)]


def read_checkpoint(path: str | Path) -> Checkpoint:
    """The checkpoint in a file, or in the model folder under a model name (model/registry.py)."""
    try:
        path = resolve_model(path)
    except ValueError as error:
        raise CheckpointError(str(error)) from None
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    state_dict = _strip_lightning_prefix(_torch_load_state_dict(path), path)
    config = infer_config(state_dict, path)
    return Checkpoint(config, state_dict, default_labels(config.num_classes), metadata={"source": str(path)})


def _torch_load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    # torch's own messages for these cases advise retrying with weights_only=False, which would run the
    # file's code: we never repeat that advice, and say what the file is instead.
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
        if refused:
            raise CheckpointError(
                f"{path}: refused: besides tensors it holds Python objects ({refused.group(1)}), "
                "and htsat-live reads tensors only, never code"
            ) from None
        raise CheckpointError(
            f"{path}: not a readable checkpoint (neither a PyTorch nor a safetensors file, or corrupt)"
        ) from None
    except Exception:  # torch raises many types for garbage bytes (EOFError, KeyError, RuntimeError...)
        raise CheckpointError(
            f"{path}: not a readable checkpoint (neither a PyTorch nor a safetensors file, or truncated)"
        ) from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not loaded or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise CheckpointError(f"{path}: not a checkpoint: expected a state dict of tensors (or a Lightning checkpoint)")
    return loaded


def _strip_lightning_prefix(state_dict: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    prefixed = [k for k in state_dict if k.startswith(LIGHTNING_PREFIX)]
    if not prefixed:
        return state_dict
    if len(prefixed) != len(state_dict):
        others = sorted(k for k in state_dict if not k.startswith(LIGHTNING_PREFIX))
        raise CheckpointError(f"{path}: unexpected keys outside '{LIGHTNING_PREFIX}': {_name_keys(others)}")
    return {k[len(LIGHTNING_PREFIX) :]: v for k, v in state_dict.items()}


def _read_safetensors(path: Path) -> Checkpoint:
    try:
        with safetensors.safe_open(str(path), framework="pt") as handle:
            metadata_text = (handle.metadata() or {}).get(METADATA_KEY)
            state_dict = {key: handle.get_tensor(key) for key in handle.keys()}
    except (safetensors.SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file: {error}") from None
    if not state_dict:
        raise CheckpointError(f"{path}: holds no tensors")
    shape_config = infer_config(state_dict, path)
    if metadata_text is None:
        return Checkpoint(
            shape_config, state_dict, default_labels(shape_config.num_classes), metadata={"source": str(path)}
        )
    try:
        metadata = json.loads(metadata_text)
        config = HTSATConfig.from_dict(metadata["config"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: broken '{METADATA_KEY}' metadata: {error}") from None
    labels = metadata.get("labels") or default_labels(config.num_classes)
    thresholds = metadata.get("thresholds")
    if len(labels) != config.num_classes:
        raise CheckpointError(f"{path}: {len(labels)} labels for {config.num_classes} classes")
    if thresholds is not None and len(thresholds) != config.num_classes:
        raise CheckpointError(f"{path}: {len(thresholds)} thresholds for {config.num_classes} classes")
    return Checkpoint(config, state_dict, list(labels), thresholds, median_frames_of(metadata, path), metadata)


def valid_median_frames(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_MEDIAN_FRAMES and value % 2 == 1


def median_frames_of(metadata: dict, path: Path | str) -> int:
    """The median filter length in our metadata document (1 when absent), or CheckpointError."""
    median_frames = metadata.get("median_frames", 1)
    if not valid_median_frames(median_frames):
        raise CheckpointError(
            f"{path}: median_frames must be an odd integer in 1..{MAX_MEDIAN_FRAMES}, got {median_frames!r}"
        )
    return median_frames


def infer_config(state_dict: dict[str, torch.Tensor], path: Path | str = "checkpoint") -> HTSATConfig:
    """Every architecture number from tensor shapes (patch stride = patch size, as in the official models)."""
    required = ("patch_embed.proj.weight", "tscam_conv.weight", "layers.0.blocks.0.attn.relative_position_bias_table")
    missing = [k for k in required if k not in state_dict]
    if missing:
        raise CheckpointError(f"{path}: not an HTS-AT checkpoint: missing keys {_name_keys(missing)}")
    patch = state_dict["patch_embed.proj.weight"]  # [D, 1, p, p]
    depths: dict[int, int] = {}
    for key in state_dict:
        match = re.match(r"layers\.(\d+)\.blocks\.(\d+)\.", key)
        if match:
            stage, block = int(match[1]), int(match[2])
            depths[stage] = max(depths.get(stage, 0), block + 1)
    stages = range(len(depths))
    if sorted(depths) != list(stages):
        raise CheckpointError(f"{path}: stages {sorted(depths)} are not numbered 0..{len(depths) - 1}")
    heads = []
    for stage in stages:
        key = f"layers.{stage}.blocks.0.attn.relative_position_bias_table"
        if key not in state_dict:
            raise CheckpointError(f"{path}: missing key {key}")
        heads.append(int(state_dict[key].shape[1]))
    table_rows = state_dict["layers.0.blocks.0.attn.relative_position_bias_table"].shape[0]
    window = (math.isqrt(table_rows) + 1) // 2
    fc1 = state_dict.get("layers.0.blocks.0.mlp.fc1.weight")
    mlp_ratio = fc1.shape[0] / patch.shape[0] if fc1 is not None else 4.0
    try:
        return HTSATConfig(
            num_classes=int(state_dict["tscam_conv.weight"].shape[0]),
            embed_dim=int(patch.shape[0]),
            depths=tuple(depths[s] for s in stages),
            num_heads=tuple(heads),
            window_size=window,
            patch_size=int(patch.shape[-1]),
            patch_stride=int(patch.shape[-1]),
            mlp_ratio=mlp_ratio,
        )
    except ValueError as error:
        raise CheckpointError(f"{path}: tensor shapes do not describe a valid HTS-AT: {error}") from None


def load_weights(checkpoint: Checkpoint, path: Path | str = "checkpoint", num_classes: int | None = None) -> HTSAT:
    """An HTSAT of the checkpoint's architecture holding its weights (in train mode, as built). With
    `num_classes`, the head (tscam_conv) is new: sized for that many classes and randomly initialised, the
    checkpoint's head left out (fine-tuning for other classes). Every other key is checked: anything missing,
    unexpected or misshapen is refused with the key names."""
    new_head = num_classes is not None
    model = HTSAT(replace(checkpoint.config, num_classes=num_classes) if new_head else checkpoint.config)
    expected = model.state_dict()
    head = {key for key in expected if new_head and key.startswith(HEAD_PREFIX)}
    derived = {name: buffer for name, buffer in model.named_buffers() if name.endswith(DERIVED_BUFFERS)}
    unexpected, misshapen, weights = [], [], {}
    for key, tensor in checkpoint.state_dict.items():
        if new_head and key.startswith(HEAD_PREFIX):
            continue
        if key in expected:
            target = expected[key]
        elif key in derived:
            target = derived[key]
        elif key.startswith(UNUSED_PREFIXES):
            continue
        else:
            unexpected.append(key)
            continue
        if tuple(tensor.shape) != tuple(target.shape):
            misshapen.append(f"{key} {list(tensor.shape)} (model expects {list(target.shape)})")
        elif key in expected:
            weights[key] = tensor
        elif not torch.equal(tensor.to(target.dtype), target):
            misshapen.append(f"{key} (values differ from the architecture's own)")
    missing = sorted(set(expected) - set(checkpoint.state_dict) - head)
    problems = []
    if missing:
        problems.append(f"missing keys {_name_keys(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_name_keys(sorted(unexpected))}")
    if misshapen:
        problems.append(f"shape mismatches {_name_keys(misshapen)}")
    if problems:
        raise CheckpointError(f"{path}: does not fit HTS-AT {model.config}: " + "; ".join(problems))
    model.load_state_dict({**weights, **{key: expected[key] for key in head}})  # a new head: the model's own
    if new_head:
        # drawn again after the model's initialisation, as fine-tuning always did, so seeded runs repeat old ones
        model.tscam_conv.reset_parameters()
    return model


def build_model(checkpoint: Checkpoint, path: Path | str = "checkpoint") -> HTSAT:
    """An eval-mode HTSAT holding the checkpoint's weights; refuses any key that does not fit."""
    return load_weights(checkpoint, path).eval()


def save_checkpoint(
    path: str | Path,
    model: HTSAT,
    labels: list[str],
    thresholds: list[float] | None = None,
    provenance: dict | None = None,
    median_frames: int = 1,
) -> None:
    """Write our format: safetensors weights + JSON metadata (config, labels, thresholds, median filter
    length of the event rule, provenance)."""
    config = model.config
    if len(labels) != config.num_classes:
        raise ValueError(f"{len(labels)} labels for {config.num_classes} classes")
    if thresholds is not None and len(thresholds) != config.num_classes:
        raise ValueError(f"{len(thresholds)} thresholds for {config.num_classes} classes")
    if not valid_median_frames(median_frames):
        raise ValueError(f"median_frames must be an odd integer in 1..{MAX_MEDIAN_FRAMES}, got {median_frames!r}")
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "labels": list(labels),
        "thresholds": None if thresholds is None else [float(t) for t in thresholds],
        "median_frames": median_frames,
        "provenance": provenance or {},
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # Written by Python, not safetensors.save_file, so that the file gets the umask's mode (not 0600).
    Path(path).write_bytes(safetensors.torch.save(tensors, metadata={METADATA_KEY: json.dumps(metadata)}))


def _name_keys(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" ... ({len(keys)} in all)" if len(keys) > limit else "")
