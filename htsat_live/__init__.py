"""htsat-live: streaming sound event detection with HTS-AT.

`from htsat_live import load_model` is the public API (see `htsat_live.model`); the packages below
it are `model` (the HTS-AT core and the shared event rule), `stream` (the live path), `gui`,
`training` and `evaluation` (docs/architecture.md).
"""

__all__ = ["load_model"]


def __getattr__(name: str):
    # Imported on first use, so that `htsat-live --help` starts without torch.
    if name == "load_model":
        from htsat_live.model import load_model

        return load_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
