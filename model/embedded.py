"""What ships inside the package: the starter model and the demo recording it was never trained on."""

from pathlib import Path

EMBEDDED_DATA = Path(__file__).resolve().parent / "data"
DEFAULT_MODEL = EMBEDDED_DATA / "starter.safetensors"  # what load_model(None) loads
DEMO_RECORDING = EMBEDDED_DATA / "demo.wav"  # one minute of held-out recordings; its truth is demo.tsv
SOURCES_MANIFEST = EMBEDDED_DATA / "sources_manifest.json"  # the recordings the starter model was trained on
