"""ONNX export of the whole model (waveform in, clipwise and framewise out) and the ONNX Runtime backend.

The graph includes the front end (ONNX STFT) and the official tiling of short clips, with dynamic batch
and length. Its metadata carries our JSON document (config, labels, thresholds, median filter length,
provenance), so an .onnx file loads behind the same Predictor API as a checkpoint. `--int8` applies ONNX
Runtime's dynamic quantisation of the matrix-multiply weights.
"""

import hashlib
import json
import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from htsat_live.model.cache import cache_entry, user_cache_dir
from htsat_live.model.checkpoint import (
    FORMAT_NAME,
    FORMAT_VERSION,
    METADATA_KEY,
    Checkpoint,
    CheckpointError,
    median_frames_of,
)
from htsat_live.model.htsat import HTSAT, HTSATConfig
from htsat_live.model.predictor import MIN_REPEAT_SAMPLES, Predictor
from htsat_live.model.timebase import WINDOW_SAMPLES

OPSET = 18


class _Exportable(torch.nn.Module):
    """The model as the graph sees it: tiling of short clips always on (a no-op for 10-s input)."""

    def __init__(self, model: HTSAT):
        super().__init__()
        self.model = model

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model(wave, tile_short=True)


def export_onnx(model: HTSAT, checkpoint: Checkpoint, path: str | Path, int8: bool = False) -> Path:
    """Write `path` (fp32, or int8 dynamic quantisation when int8 is set)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fp32_path = path.with_name(path.stem + ".fp32.onnx") if int8 else path
    example = torch.zeros(1, WINDOW_SAMPLES)
    batch = torch.export.Dim("batch", min=1, max=1024)
    samples = torch.export.Dim("samples", min=MIN_REPEAT_SAMPLES, max=WINDOW_SAMPLES)
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # the exporter chats about optional torchvision ops
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                _Exportable(model).eval(),
                (example,),
                dynamo=True,
                opset_version=OPSET,
                input_names=["wave"],
                output_names=["clipwise", "framewise"],
                dynamic_shapes=({0: batch, 1: samples},),
                verbose=False,
            )
    finally:
        exporter_log.setLevel(level)
    program.save(str(fp32_path))
    import onnx

    graph = onnx.load(str(fp32_path))
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": checkpoint.config.to_dict(),
        "labels": checkpoint.labels,
        "thresholds": checkpoint.thresholds,
        "median_frames": checkpoint.median_frames,
        "provenance": {**checkpoint.metadata.get("provenance", {}), "int8": int8},
    }
    entry = graph.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    onnx.save(graph, str(fp32_path))
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(
            str(fp32_path), str(path), weight_type=QuantType.QInt8, nodes_to_quantize=_weight_matmuls(graph)
        )
        fp32_path.unlink()
    return path


def _weight_matmuls(graph) -> list[str]:
    """MatMul nodes that multiply by a learned weight matrix: the transformer's linear layers.

    The front end's mel projection stays fp32 (power spectra span many decades; 8-bit activations would
    flatten the quiet bands), and so do the attention products of two activations.
    """
    initializers = {tensor.name for tensor in graph.graph.initializer}
    return [
        node.name
        for node in graph.graph.node
        if node.op_type == "MatMul" and node.input[1] in initializers and "frontend" not in node.input[1]
    ]


class OnnxBackend:
    name = "onnx"

    def __init__(self, path: Path, device: str, threads: int | None = None):
        """threads: ONNX Runtime's intra-op threads (None: its default, one per physical core)."""
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ValueError(f"device {device!r} requested but ONNX Runtime has no CUDA provider here")
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        # no busy-waiting between runs: the stream's other threads (capture, publisher, GUI) and any torch
        # work in the same process need the cores while the model is idle
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        self.device = device
        self.session = ort.InferenceSession(str(path), options, providers=providers)

    def run(self, wave: np.ndarray, tile_short: bool) -> tuple[np.ndarray, np.ndarray]:
        if not tile_short:
            raise ValueError("the ONNX graph always tiles short clips; pad them before calling it")
        clipwise, framewise = self.session.run(None, {"wave": wave})
        return clipwise, framewise


def load_onnx_predictor(path: str | Path, device: str = "cpu") -> Predictor:
    import onnx

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such ONNX file")
    try:
        graph = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # onnx raises its own DecodeError types
        raise CheckpointError(f"{path}: not a readable ONNX file: {error}") from None
    props = {p.key: p.value for p in graph.metadata_props}
    if METADATA_KEY not in props:
        raise CheckpointError(
            f"{path}: ONNX file has no '{METADATA_KEY}' metadata; export it with `htsat-live export-onnx`"
        )
    metadata = json.loads(props[METADATA_KEY])
    config = HTSATConfig.from_dict(metadata["config"])
    thresholds = metadata.get("thresholds")
    return Predictor(
        OnnxBackend(path, device),
        config,
        list(metadata["labels"]),
        None if thresholds is None else np.asarray(thresholds, dtype=np.float32),
        str(path),
        median_frames_of(metadata, path),
    )


def cached_onnx_predictor(path: Path, checkpoint: Checkpoint, model: HTSAT, device: str) -> Predictor:
    """Export a checkpoint on first use and reuse the export while the checkpoint's bytes stay the same."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    onnx_path = user_cache_dir() / "onnx" / f"{Path(path).stem}-{digest}.onnx"
    if not onnx_path.is_file():
        print(f"exporting {Path(path).name} to ONNX (once; cached in {onnx_path.parent})", file=sys.stderr, flush=True)
        with cache_entry(onnx_path) as staged:
            export_onnx(model, checkpoint, staged)
    return load_onnx_predictor(onnx_path, device)
