from pathlib import Path

import pytest
import torch

GOLDEN = Path(__file__).resolve().parents[1].parent / "shared" / "golden"


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return GOLDEN


@pytest.fixture(scope="session")
def tiny_checkpoint() -> Path:
    return GOLDEN / "htsat_tiny.ckpt"


@pytest.fixture(scope="session")
def tiny_outputs() -> dict:
    return torch.load(GOLDEN / "htsat_tiny_outputs.pt", weights_only=True)
