"""`load_model(path)`: any checkpoint we read, or an exported .onnx file, behind the Predictor API, on the
backend asked for: torch (model/predictor.py), ONNX Runtime (model/onnx.py) or OpenVINO (model/openvino.py).
"""

from collections.abc import Sequence
from pathlib import Path

from htsat_live.model.checkpoint import build_model, read_checkpoint
from htsat_live.model.embedded import DEFAULT_MODEL
from htsat_live.model.ensemble import ensemble
from htsat_live.model.predictor import (
    Predictor,
    TorchBackend,
    predictor_from_checkpoint,
)
from htsat_live.model.registry import resolve_model

BACKENDS = ("torch", "onnx", "openvino")


def load_model(
    path: str | Path | Sequence[str | Path] | None = None,
    device: str = "cpu",
    backend: str | None = None,
    precision: str = "fp32",
    calibration: str | Path | None = None,
) -> Predictor:
    """Load any checkpoint we read (or an exported .onnx file) behind the Predictor API.

    A list of several paths is an ensemble (model/ensemble.py): the members are loaded alike and their outputs
    averaged; they must share their labels.

    path None = the embedded default model; a model name (`htsat-live models`) = its file in the model folder.
    backend None (or "auto") follows the file: an .onnx file runs
    on ONNX Runtime, anything else on torch. backend "onnx" with a checkpoint exports it on load and caches
    the graph in the user's cache directory. backend "openvino" runs the transformer on OpenVINO (CPU; the
    front end stays in torch) and caches its converted trunk there too. precision "bf16" runs the torch or
    OpenVINO backend's transformer in bfloat16 (faster on CPUs with AVX-512 bf16), "int8" the OpenVINO backend's
    transformer quantised to int8 (model/openvino.py); `bench` reports the drift of each. calibration: a folder
    of the site's own recordings that int8 is calibrated on instead of the default set.
    """
    if calibration and precision != "int8":
        raise ValueError(f"--calibration {calibration} calibrates int8: it needs --precision int8 --backend openvino")
    if isinstance(path, (list, tuple)):
        if len(path) > 1:
            return ensemble([load_model(member, device, backend, precision, calibration) for member in path])
        path = path[0] if path else None
    path = resolve_model(path) if path is not None else DEFAULT_MODEL  # a model name: the model folder's file
    if backend in (None, "auto"):
        backend = "onnx" if path.suffix == ".onnx" else "torch"
    if backend not in BACKENDS:
        raise ValueError(f"backend must be 'auto', 'torch', 'onnx' or 'openvino', got {backend!r}")
    if path.suffix == ".onnx":
        if backend != "onnx":
            raise ValueError(
                f"{path} is an ONNX graph, which runs on ONNX Runtime, not on {backend}: use backend 'onnx' (or 'auto')"
            )
        from htsat_live.model.onnx import load_onnx_predictor

        return load_onnx_predictor(path, device)
    if precision == "int8" and backend != "openvino":
        raise ValueError(
            f"int8 runs on the OpenVINO backend (backend 'openvino'), not on {backend}; for an int8 "
            "ONNX Runtime graph, export one with `htsat-live export-onnx --int8`"
        )
    checkpoint = read_checkpoint(path)
    model = build_model(checkpoint, path)
    if backend == "onnx":
        if precision != "fp32":
            raise ValueError("the ONNX backend runs fp32 graphs; for int8 export with `htsat-live export-onnx --int8`")
        from htsat_live.model.onnx import cached_onnx_predictor

        return cached_onnx_predictor(path, checkpoint, model, device)
    if backend == "openvino":
        from htsat_live.model.openvino import (
            OpenVinoBackend,
            cached_trunk,
            check_settings,
        )

        check_settings(device, precision)
        trunk = cached_trunk(model, path, precision, calibration)
        return predictor_from_checkpoint(checkpoint, OpenVinoBackend(model, trunk, device, precision), str(path))
    return predictor_from_checkpoint(checkpoint, TorchBackend(model, device, precision), str(path))
