"""Which inference engine runs a model: the one named, or for `backend = "auto"` (the default) the fastest one
that gives the official outputs to float32 rounding, within the parity tests' 1e-4 budget.

The rule of "auto", from `htsat-live bench` on the embedded starter model and on the full-size HTS-AT
(docs/speed.md, "Which backend runs by default"):
- an .onnx file runs on ONNX Runtime, the one engine that reads it;
- on a GPU, torch;
- int8 runs on OpenVINO, the one engine of our int8 transformer;
- on the CPU, OpenVINO for a model of OPENVINO_MIN_PARAMETERS parameters or more (the full-size model, 30 M,
  ran 1.3x torch), torch for a smaller one (the starter, 1.4 M: its windows cost little on either, busy runs
  disagreed on which is faster, and OpenVINO adds its conversion and 100-150 MiB of memory);
- torch when OpenVINO is not installed, or cannot convert or compile the model: the choice says why.

Imports nothing heavy: the command line's parsers take BACKEND_CHOICES from here.
"""

from dataclasses import dataclass

BACKENDS = ("torch", "onnx", "openvino")
BACKEND_CHOICES = ("auto", *BACKENDS)  # what --backend and [model] backend accept
OPENVINO_MIN_PARAMETERS = 10_000_000
BACKEND_HELP = (
    "inference engine (default auto: ONNX Runtime for an .onnx model; on the CPU OpenVINO fp32 for a model of "
    "10 M parameters or more, such as the full-size HTS-AT, else torch; docs/speed.md)"
)


@dataclass(frozen=True)
class BackendChoice:
    backend: str  # one of BACKENDS
    why: str = ""  # how "auto" chose it ("" when it was asked for by name)

    def fallen_back(self, reason: str) -> "BackendChoice":
        """torch instead of OpenVINO, saying why."""
        return BackendChoice("torch", f"{reason}; torch instead")


def choose_backend(
    requested: str | None, onnx_file: bool, device: str, precision: str, parameters: int
) -> BackendChoice:
    """The backend to load: `requested` when it names one, else the rule of "auto" (module docstring).
    ValueError for a name that is none of BACKEND_CHOICES."""
    if requested not in (None, "auto"):
        if requested not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKEND_CHOICES)}, got {requested!r}")
        return BackendChoice(requested)
    if onnx_file:
        return BackendChoice("onnx", "an .onnx file runs on ONNX Runtime")
    if device != "cpu":
        return BackendChoice("torch", f"torch runs on {device}")
    if precision == "int8":
        return BackendChoice("openvino", "int8 runs on OpenVINO")
    millions = f"{parameters / 1e6:.2g} M parameters"
    if parameters >= OPENVINO_MIN_PARAMETERS:
        return BackendChoice("openvino", f"{millions}, OpenVINO is faster from {OPENVINO_MIN_PARAMETERS // 10**6} M")
    return BackendChoice("torch", f"{millions}, torch below {OPENVINO_MIN_PARAMETERS // 10**6} M")


def backend_line(model, device: str) -> str:
    """What a command says about the engine a loaded model (a Predictor) runs on: `torch on cpu`, and how "auto"
    chose it: `openvino on cpu [auto: 30 M parameters, OpenVINO is faster from 10 M]`."""
    where = f"{model.backend.name} on {device}"
    return f"{where} [auto: {model.backend_note}]" if model.backend_note else where
