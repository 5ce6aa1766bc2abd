import time
from pathlib import Path

import pytest
import torch

GOLDEN = Path(__file__).resolve().parents[1].parent / "shared" / "golden"
POLL_SECONDS = 0.01  # between two looks at a condition a test waits for


def _wait_until(condition, timeout: float, what: str, between=None) -> None:
    """Return once `condition()` holds; fail naming `what` when it still does not after `timeout` s.
    `between()`, if given, runs between two looks (the GUI tests run Qt's events there)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        if between is not None:
            between()
        time.sleep(POLL_SECONDS)


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return GOLDEN


@pytest.fixture(scope="session")
def tiny_checkpoint() -> Path:
    return GOLDEN / "htsat_tiny.ckpt"


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint, tmp_path_factory) -> Path:
    """The tiny checkpoint exported to ONNX once for the session (an export takes tens of seconds)."""
    from htsat_live.model.checkpoint import build_model, read_checkpoint
    from htsat_live.model.onnx import export_onnx

    checkpoint = read_checkpoint(tiny_checkpoint)
    return export_onnx(build_model(checkpoint, tiny_checkpoint), checkpoint,
                       tmp_path_factory.mktemp("onnx") / "tiny.onnx")


@pytest.fixture(scope="session")
def tiny_outputs() -> dict:
    return torch.load(GOLDEN / "htsat_tiny_outputs.pt", weights_only=True)


@pytest.fixture(scope="session")
def wait_until():
    """Wait for something a test started to happen, with a deadline instead of a fixed sleep:
    `wait_until(condition, timeout, what, between=None)`."""
    return _wait_until
