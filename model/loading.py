"""`load_model(path)`: any checkpoint we read, or an exported .onnx file, behind the Predictor API, on the
backend asked for, or chosen by the rule of "auto" (model/backend_choice.py): torch (model/predictor.py), ONNX
Runtime (model/onnx.py) or OpenVINO (model/openvino.py).
"""

import sys
from collections.abc import Sequence
from pathlib import Path

from htsat_live.model.backend_choice import BackendChoice, choose_backend
from htsat_live.model.checkpoint import build_model, read_checkpoint
from htsat_live.model.embedded import DEFAULT_MODEL
from htsat_live.model.ensemble import ensemble
from htsat_live.model.predictor import (
    Predictor,
    TorchBackend,
    predictor_from_checkpoint,
)
from htsat_live.model.registry import resolve_model


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
    backend None or "auto" follows the rule in model/backend_choice.py: an .onnx file runs on ONNX Runtime; on
    the CPU a model of 10 M parameters or more runs on OpenVINO fp32, a smaller one on torch; torch where
    OpenVINO is missing or cannot convert or compile the model. The predictor's `backend_note` says how "auto"
    chose. backend "onnx" with a checkpoint exports it on load and caches the graph in the user's cache
    directory. backend "openvino" runs the transformer on OpenVINO (CPU; the front end stays in torch) and
    caches its converted trunk there too. precision "bf16" runs the torch or OpenVINO backend's transformer in
    bfloat16 (faster on CPUs with AVX-512 bf16), "int8" the OpenVINO backend's transformer quantised to int8
    (model/openvino.py); `bench` reports the drift of each. calibration: a folder of the site's own recordings
    that int8 is calibrated on instead of the default set.
    """
    if calibration and precision != "int8":
        raise ValueError(f"--calibration {calibration} calibrates int8: it needs --precision int8 --backend openvino")
    if isinstance(path, (list, tuple)):
        if len(path) > 1:
            members = [load_model(member, device, backend, precision, calibration) for member in path]
            combined = ensemble(members)
            combined.backend_note = members[0].backend_note
            return combined
        path = path[0] if path else None
    path = resolve_model(path) if path is not None else DEFAULT_MODEL  # a model name: the model folder's file
    if path.suffix == ".onnx":
        choice = choose_backend(backend, True, device, precision, 0)
        if choice.backend != "onnx":
            raise ValueError(
                f"{path} is an ONNX graph, which runs on ONNX Runtime, not on {backend}: use backend 'onnx' (or 'auto')"
            )
        from htsat_live.model.onnx import load_onnx_predictor

        predictor = load_onnx_predictor(path, device)
        predictor.backend_note = choice.why
        return predictor
    checkpoint = read_checkpoint(path)
    model = build_model(checkpoint, path)
    choice = choose_backend(backend, False, device, precision, sum(p.numel() for p in model.parameters()))
    if precision == "int8" and choice.backend != "openvino":
        raise ValueError(
            f"int8 runs on the OpenVINO backend (backend 'openvino'), not on {choice.backend}; for an int8 "
            "ONNX Runtime graph, export one with `htsat-live export-onnx --int8`"
        )
    if choice.backend == "onnx":
        if precision != "fp32":
            raise ValueError("the ONNX backend runs fp32 graphs; for int8 export with `htsat-live export-onnx --int8`")
        from htsat_live.model.onnx import cached_onnx_predictor

        predictor = cached_onnx_predictor(path, checkpoint, model, device)
    elif choice.backend == "openvino":
        predictor, choice = _openvino_or_fallback(checkpoint, model, path, device, precision, calibration, choice)
    else:
        predictor = predictor_from_checkpoint(checkpoint, TorchBackend(model, device, precision), str(path))
    predictor.backend_note = choice.why
    return predictor


def _openvino_or_fallback(
    checkpoint, model, path: Path, device: str, precision: str, calibration, choice: BackendChoice
):
    """The model on OpenVINO; when "auto" chose it (choice.why set) and OpenVINO is missing or fails to convert
    or compile the model, on torch instead, the choice saying why. Asked for by name, a failure is the error."""
    from htsat_live.model.openvino import (
        OpenVinoBackend,
        cached_trunk,
        check_settings,
        import_openvino,
        trunk_for,
    )

    check_settings(device, precision)
    try:
        import_openvino()
    except ValueError as error:
        if not choice.why or precision == "int8":
            raise
        choice = choice.fallen_back(f"OpenVINO is not installed ({error})")
    else:
        try:
            try:
                trunk = cached_trunk(model, path, precision, calibration)
            except OSError as error:  # a cache that cannot be written (a read-only home): convert for this run
                print(
                    f"htsat-live: cannot keep the OpenVINO conversion of {path.name} in the cache ({error}); "
                    "converting it for this run only",
                    file=sys.stderr,
                    flush=True,
                )
                trunk = trunk_for(model, precision, calibration)
            backend = OpenVinoBackend(model, trunk, device, precision)
            return predictor_from_checkpoint(checkpoint, backend, str(path)), choice
        except ValueError:  # a setting it cannot take (--calibration without int8, a folder without audio)
            raise
        except Exception as error:  # the converter's and the compiler's own error types
            if not choice.why or precision == "int8":
                raise
            detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            choice = choice.fallen_back(f"OpenVINO could not convert or compile {path.name}: {detail}")
    return predictor_from_checkpoint(checkpoint, TorchBackend(model, device, precision), str(path)), choice
