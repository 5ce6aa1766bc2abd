"""OpenVINO backend: the transformer trunk compiled by Intel's CPU inference engine.

The front end (torch.stft log-mel), bn0, the official tiling of short clips and the bicubic fold into the
256 x 256 image stay in torch, exactly as on the torch backend: OpenVINO cannot read ONNX's STFT, and these
steps cost little. The trunk (image -> per-token logits) is converted from the torch module once per
checkpoint, cached as OpenVINO IR beside the ONNX cache, and compiled for the CPU in float32 (the official
outputs to float32 rounding), with bfloat16 matrix products, or in int8.

int8 is static post-training quantisation by NNCF, OpenVINO's own quantiser, calibrated by default on the
embedded demo recording and on synthetic signals (noise, sweeps, gated tones at three levels), or on the site's
own recordings (`--calibration DIR`: up to CALIBRATION_WINDOWS of their 10-s windows, a uniform sample of them
all; cached per checkpoint and per calibration set; docs/speed.md says how much it helps). Each half of the
default set alone fits its own kind of input and drifts on the other (on the starter model, synthetic
calibration alone gave a mean framewise drift of 1.1e-2 on the demo, demo calibration alone 1.2e-2 on the
bench's synthetic probes; together 1.1e-3 and
3.6e-3). Two parts stay in float32: the patch embedding, whose input is the log-mel image itself (8-bit steps
on it made most of the int8 drift), and the attention's own products (query x key, weights x value), which ran
no faster in int8 when measured (docs/speed.md).
"""

import contextlib
import hashlib
import logging
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import torch

from htsat_live.model.audio import AudioFileError, read_blocks, read_clip
from htsat_live.model.cache import cache_entry, user_cache_dir
from htsat_live.model.clip_set import AUDIO_SUFFIXES
from htsat_live.model.embedded import DEMO_RECORDING
from htsat_live.model.htsat import HTSAT, scores_from_logits, tile_frames
from htsat_live.model.timebase import SAMPLE_RATE, WINDOW_SAMPLES, WINDOW_SECONDS

OPENVINO_PRECISIONS = ("fp32", "bf16", "int8")
# OpenVINO's names for the number type of what is not int8. Its CPU plugin picks bf16 by itself on CPUs that
# have it, so fp32 must be asked for explicitly; an int8 trunk keeps its float layers in fp32.
INFERENCE_PRECISION = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
# nodes NNCF leaves in float32 (see the module docstring); names as the torch converter writes them
INT8_KEPT_FLOAT = [r".*patch_embed.*", r".*\.attn/aten::.*"]
# the most 10-s windows of a calibration folder that NNCF runs (its own default subset size)
CALIBRATION_WINDOWS = 300


class _Trunk(torch.nn.Module):
    """The part OpenVINO runs: image [B, 1, 256, 256] -> token logits [B, C, 32]."""

    def __init__(self, model: HTSAT):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model.trunk(image)


def import_openvino():
    """The openvino module, or ValueError saying how to install it.

    OpenVINO's converter and NNCF send usage statistics to Google Analytics unless a consent file in the
    user's home says no. This backend never lets them: with their telemetry package unimportable, both use
    their silent stubs. (The block is skipped when something imported the package first.)"""
    sys.modules.setdefault("openvino_telemetry", None)
    try:
        import openvino
    except ImportError:
        raise ValueError("the OpenVINO backend needs the openvino package: pip install openvino") from None
    return openvino


def convert_trunk(model: HTSAT):
    """The trunk as an OpenVINO model with a dynamic batch (float32 weights, as in the checkpoint)."""
    ov = import_openvino()
    side = model.config.spec_size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer warns about Python ints taken from shapes
        return ov.convert_model(
            _Trunk(model.eval()),
            example_input=torch.zeros(1, 1, side, side),
            input=[ov.PartialShape([-1, 1, side, side])],
        )


def calibration_waves(seed: int = 1234) -> np.ndarray:
    """The int8 calibration set, [29, 320000] at 32 kHz: the demo recording's 10-s windows at a 2.5-s hop (20),
    then white noise, a linear sweep and three gated tones over light noise, each at three levels a factor of
    ten apart, the loudest peaking near 1 (9)."""
    demo = read_clip(DEMO_RECORDING)
    hop = WINDOW_SAMPLES // 4
    waves = [demo[start : start + WINDOW_SAMPLES] for start in range(0, demo.size - WINDOW_SAMPLES, hop)]
    rng = np.random.default_rng(seed)
    t = np.arange(WINDOW_SAMPLES) / SAMPLE_RATE
    for level in (0.003, 0.03, 0.3):
        waves.append(level * rng.standard_normal(t.size))
        start, end = rng.uniform(50, 500), rng.uniform(2000, 14000)  # Hz
        waves.append(3 * level * np.sin(2 * np.pi * (start * t + (end - start) * t**2 / (2 * WINDOW_SECONDS))))
        gate = np.sin(2 * np.pi * rng.uniform(0.2, 2) * t) > 0
        tones = sum(np.sin(2 * np.pi * rng.uniform(100, 8000) * t) for _ in range(3)) / 3
        waves.append(3 * level * gate * tones + 0.2 * level * rng.standard_normal(t.size))
    return np.asarray(waves, dtype=np.float32)


def calibration_recordings(folder: str | Path, setting: str = "--calibration {} ([model] calibration)") -> list[Path]:
    """The audio files anywhere under a calibration folder, sorted; ValueError naming `setting` (the flag and the
    config key; {} is the folder) when the folder is missing or holds none."""
    folder = Path(folder)
    where = setting.format(folder)
    if not folder.is_dir():
        raise ValueError(f"{where}: no such folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise ValueError(f"{where}: holds no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
    return files


def calibration_digest(folder: str | Path, files: list[Path]) -> str:
    """What names a calibration set in the cache: its files' paths in the folder, sizes and modification times
    (a file added, removed, renamed or rewritten gives another digest)."""
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def recording_windows(
    files: list[Path], limit: int = CALIBRATION_WINDOWS, seed: int = 0, flag: str = "--calibration"
) -> list[np.ndarray]:
    """At most `limit` 10-s windows of the recordings, a uniform sample of all their windows (reservoir sampling,
    seeded: the same files give the same sample), each [320000] at 32 kHz, or shorter for a recording shorter
    than one window (the front end tiles it, as for any short clip). Windows start every 10 s; a tail shorter
    than a window is left out. Files that cannot be read are said on stderr and skipped; ValueError when none
    gives audio, naming `flag`, the option that gave the recordings."""
    from tqdm import tqdm

    purpose = flag.strip("-").replace("-", " ")  # "calibration", "probe audio"
    rng = np.random.default_rng(seed)
    kept: list[np.ndarray] = []
    seen = 0

    def offer(window: np.ndarray) -> None:
        nonlocal seen
        slot = seen if seen < limit else int(rng.integers(0, seen + 1))
        seen += 1
        if slot < limit:
            kept[slot : slot + 1] = [window.copy()]

    for path in tqdm(files, desc=f"reading the {purpose} recordings", unit="file", file=sys.stderr):
        pending, full = np.zeros(0, np.float32), 0
        try:
            for block in read_blocks(path):
                pending = np.concatenate([pending, block])
                while pending.size >= WINDOW_SAMPLES:
                    offer(pending[:WINDOW_SAMPLES])
                    pending, full = pending[WINDOW_SAMPLES:], full + 1
        except AudioFileError as error:
            tqdm.write(f"{purpose}: skipped {error}", file=sys.stderr)
            continue
        if full == 0 and pending.size >= SAMPLE_RATE // 10:  # a short recording: one window of its own
            offer(pending)
    if not kept:
        raise ValueError(f"{flag}: none of the {len(files)} audio files there could be read")
    return kept


def calibration_images(model: HTSAT, waves) -> list[np.ndarray]:
    """What the trunk sees of each calibration wave [N]: the front end's image, [1, 1, 256, 256] each."""
    with torch.inference_mode():
        return [model.image(tile_frames(model.logmel(torch.from_numpy(wave[None])))).numpy() for wave in waves]


def quantize_trunk(model: HTSAT, trunk, recordings: list[Path] | None = None):
    """The trunk with int8 weights and activations: NNCF's transformer preset, calibrated on 10-s windows of
    `recordings` (recording_windows), or on calibration_waves when None. NNCF's progress bars go to stderr, so
    that they never mix with events printed on stdout."""
    import_openvino()  # first: it keeps NNCF's telemetry off
    try:
        import nncf
    except ImportError:
        raise ValueError("int8 on the OpenVINO backend needs the nncf package: pip install nncf") from None
    waves = calibration_waves() if recordings is None else recording_windows(recordings)
    images = calibration_images(model, waves)
    print(f"calibrating int8 on {len(images)} windows of 10 s", file=sys.stderr, flush=True)
    nncf.set_log_level(logging.ERROR)
    with contextlib.redirect_stdout(sys.stderr):
        return nncf.quantize(
            trunk,
            nncf.Dataset(images),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(images),
            ignored_scope=nncf.IgnoredScope(patterns=INT8_KEPT_FLOAT),
        )


def trunk_for(model: HTSAT, precision: str, calibration: str | Path | None = None):
    """The OpenVINO model a precision runs: the converted trunk, quantised for int8 (on the recordings under the
    folder `calibration`, else on the default calibration set)."""
    if calibration and precision != "int8":
        raise ValueError(f"--calibration {calibration} calibrates int8: it needs --precision int8 --backend openvino")
    recordings = calibration_recordings(calibration) if calibration else None
    trunk = convert_trunk(model)
    return quantize_trunk(model, trunk, recordings) if precision == "int8" else trunk


def cached_trunk(
    model: HTSAT, checkpoint_path: Path, precision: str = "fp32", calibration: str | Path | None = None
) -> Path:
    """Convert (and for int8 quantise) the trunk on first use; reuse the IR while the checkpoint's bytes stay
    the same, and for int8 on the site's recordings while the calibration set does (calibration_digest). fp32
    and bf16 share one float IR; bf16 is chosen when it is compiled."""
    ov = import_openvino()
    digest = hashlib.sha256(Path(checkpoint_path).read_bytes()).hexdigest()[:16]
    suffix = "-int8" if precision == "int8" else ""
    if calibration:
        suffix += f"-{calibration_digest(calibration, calibration_recordings(calibration))}"
    path = user_cache_dir() / "openvino" / f"{Path(checkpoint_path).stem}-{digest}{suffix}.xml"
    if not path.is_file():
        if precision == "int8":
            on = f"the recordings in {calibration}" if calibration else "the default calibration set"
            print(
                f"quantising {Path(checkpoint_path).name} to int8 for OpenVINO, calibrated on {on} (once; cached "
                f"in {path.parent})",
                file=sys.stderr,
                flush=True,
            )
        else:
            print(
                f"converting {Path(checkpoint_path).name} for OpenVINO (once; cached in {path.parent})",
                file=sys.stderr,
                flush=True,
            )
        with cache_entry(path) as staged:  # the .xml and its .bin land together: concurrent loads see both or none
            # the default would store the weights as float16: a second rounding the checkpoint never had
            ov.save_model(trunk_for(model, precision, calibration), str(staged), compress_to_fp16=False)
    return path


def check_settings(device: str, precision: str) -> None:
    """One clear error for what this backend cannot do, before any conversion work."""
    if device != "cpu":
        raise ValueError(f"the OpenVINO backend runs on the CPU, not on {device!r}")
    if precision not in OPENVINO_PRECISIONS:
        raise ValueError(f"precision must be one of {OPENVINO_PRECISIONS}, got {precision!r}")


class OpenVinoBackend:
    name = "openvino"

    def __init__(self, model: HTSAT, trunk, device: str = "cpu", precision: str = "fp32", threads: int | None = None):
        """trunk: an OpenVINO model from trunk_for(model, precision), or the path of its cached IR."""
        check_settings(device, precision)
        self.device = device
        self.precision = precision
        self.model = model.float().eval()  # front end, bn0 and fold, float32 as on the torch backend
        settings = {
            "INFERENCE_PRECISION_HINT": INFERENCE_PRECISION[precision],
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
        }
        self.compiled = (
            import_openvino().Core().compile_model(str(trunk) if isinstance(trunk, Path) else trunk, "CPU", settings)
        )
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
