"""OpenVINO backend: the transformer trunk compiled by Intel's CPU inference engine.

The front end (torch.stft log-mel), bn0, the official tiling of short clips and the bicubic fold into the
256 x 256 image stay in torch, exactly as on the torch backend: OpenVINO cannot read ONNX's STFT, and these
steps cost little. The trunk (image -> per-token logits) is converted from the torch module once per
checkpoint, cached as OpenVINO IR beside the ONNX cache, and compiled for the CPU in float32 (the official
outputs to float32 rounding) or with bfloat16 matrix products.

OpenVINO has no int8 path here: a static int8 trunk (QDQ, calibrated on the demo recording) ran no faster
than bf16 and moved the demo's events; int8 stays with ONNX Runtime's dynamic quantisation (`model/onnx.py`).
"""

import hashlib
import threading
import warnings
from pathlib import Path

import numpy as np
import torch

from htsat_live.model.htsat import HTSAT, scores_from_logits, tile_frames
from htsat_live.model.onnx import onnx_cache_dir
from htsat_live.model.predictor import PRECISIONS

# OpenVINO's own names for our precisions. Its CPU plugin picks bf16 by itself on CPUs that have it, so
# fp32 must be asked for explicitly.
INFERENCE_PRECISION = {"fp32": "f32", "bf16": "bf16"}


class _Trunk(torch.nn.Module):
    """The part OpenVINO runs: image [B, 1, 256, 256] -> token logits [B, C, 32]."""

    def __init__(self, model: HTSAT):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model.trunk(image)


def _openvino():
    try:
        import openvino
    except ImportError:
        raise ValueError("the OpenVINO backend needs the openvino package: pip install openvino") from None
    return openvino


def convert_trunk(model: HTSAT):
    """The trunk as an OpenVINO model with a dynamic batch (float32 weights, as in the checkpoint)."""
    ov = _openvino()
    side = model.config.spec_size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer warns about Python ints taken from shapes
        return ov.convert_model(_Trunk(model.eval()), example_input=torch.zeros(1, 1, side, side),
                                input=[ov.PartialShape([-1, 1, side, side])])


def cached_trunk(model: HTSAT, checkpoint_path: Path) -> Path:
    """Convert the trunk on first use; reuse the IR while the checkpoint's bytes stay the same."""
    ov = _openvino()
    digest = hashlib.sha256(Path(checkpoint_path).read_bytes()).hexdigest()[:16]
    path = onnx_cache_dir().parent / "openvino" / f"{Path(checkpoint_path).stem}-{digest}.xml"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        # the default would store the weights as float16: a second rounding the checkpoint never had
        ov.save_model(convert_trunk(model), str(path), compress_to_fp16=False)
    return path


def check_settings(device: str, precision: str) -> None:
    """One clear error for what this backend cannot do, before any conversion work."""
    if device != "cpu":
        raise ValueError(f"the OpenVINO backend runs on the CPU, not on {device!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")


class OpenVinoBackend:
    name = "openvino"

    def __init__(self, model: HTSAT, trunk, device: str = "cpu", precision: str = "fp32", threads: int | None = None):
        """trunk: an OpenVINO model from convert_trunk, or the path of its cached IR."""
        check_settings(device, precision)
        self.device = device
        self.precision = precision
        self.model = model.float().eval()  # front end, bn0 and fold, float32 as on the torch backend
        settings = {"INFERENCE_PRECISION_HINT": INFERENCE_PRECISION[precision], "PERFORMANCE_HINT": "LATENCY",
                    "INFERENCE_NUM_THREADS": threads or torch.get_num_threads()}
        self.compiled = _openvino().Core().compile_model(str(trunk) if isinstance(trunk, Path) else trunk, "CPU", settings)
        self.request = self.compiled.create_infer_request()
        self.lock = threading.Lock()  # one infer request: one call at a time

    def run(self, wave: np.ndarray, tile_short: bool) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            mel = self.model.logmel(torch.from_numpy(wave))  # [B, T, 64]
            if tile_short:
                mel = tile_frames(mel)
            image = self.model.image(mel).numpy()  # [B, 1, 256, 256]
        with self.lock:  # the logits live in the request's output buffer until the next call
            logits = torch.from_numpy(self.request.infer({0: image})[0])  # [B, C, 32]
            clipwise, framewise = scores_from_logits(logits)
        return clipwise.numpy(), framewise.numpy()
