"""Audio files and blocks to the model's input: 32 kHz mono float32, finite.

`Conditioner` turns raw blocks of any rate and channel count into 32 kHz mono, block by block, with a
soxr stream whose state carries across blocks; the live file, microphone and ffmpeg sources and
`read_clip` (a whole file at once) all go through it, so a file gives the same samples offline and live.
Torch-free.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from htsat_live.model.timebase import SAMPLE_RATE

CLIP_LEVEL = 0.999  # |sample| at or above this counts as clipped


class AudioFileError(ValueError):
    """An audio file that cannot be used (missing, empty, corrupt); the message names it and says why."""


@dataclass
class SampleCounts:
    """What conditioning found; the live sources count into their own stats object of the same fields."""

    nonfinite_samples: int = 0  # NaN/inf samples replaced by 0
    clipped_samples: int = 0  # samples at full scale


class Conditioner:
    """Raw blocks [frames, channels] at `input_rate` -> 32 kHz mono float32 [n], finite.

    Mixes channels by their mean, zeroes and counts non-finite samples, counts clipped ones (into
    `counts`, anything with the fields of SampleCounts), and resamples with a soxr stream whose state
    carries across blocks.
    """

    def __init__(self, input_rate: int, counts: SampleCounts):
        self.input_rate = int(input_rate)
        self.counts = counts
        self.reset()

    def reset(self) -> None:
        self._resampler = None
        if self.input_rate != SAMPLE_RATE:
            self._resampler = soxr.ResampleStream(self.input_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")

    def process(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        block = np.asarray(block, dtype=np.float32)
        if block.ndim == 2:  # [frames, channels] -> [frames]
            block = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
        finite = np.isfinite(block)
        if not finite.all():
            self.counts.nonfinite_samples += int(block.size - np.count_nonzero(finite))
            block = np.where(finite, block, np.float32(0.0))
        self.counts.clipped_samples += int(np.count_nonzero(np.abs(block) >= CLIP_LEVEL))
        if self._resampler is None:
            return np.ascontiguousarray(block)
        return self._resampler.resample_chunk(np.ascontiguousarray(block), last=last)


def check_audio_file(path: str | Path) -> soundfile.SoundFile:
    """Open an audio file for reading, or raise AudioFileError saying why it cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: no such file")
    try:
        handle = soundfile.SoundFile(str(path))
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioFileError(f"{path}: not a readable audio file ({error})") from error
    if handle.frames == 0:
        handle.close()
        raise AudioFileError(f"{path}: the file holds no audio")
    return handle


def read_blocks(
    path: str | Path, block_seconds: float = 10.0, counts: SampleCounts | None = None
) -> Iterator[np.ndarray]:
    """An audio file as consecutive 32 kHz mono float32 blocks [n] of about `block_seconds`, read and
    conditioned one at a time, so that a file of any length takes bounded memory. AudioFileError when it
    cannot be opened or read."""
    with check_audio_file(path) as handle:
        conditioner = Conditioner(handle.samplerate, counts or SampleCounts())
        try:
            for raw in handle.blocks(
                blocksize=max(1, round(block_seconds * handle.samplerate)), dtype="float32", always_2d=True
            ):  # [frames, channels]
                yield conditioner.process(raw)
        except (soundfile.LibsndfileError, RuntimeError) as error:
            raise AudioFileError(f"{path}: read failed ({error})") from error
        yield conditioner.process(np.zeros((0, handle.channels), np.float32), last=True)


def read_clip(path: str | Path) -> np.ndarray:
    """A whole audio file as 32 kHz mono float32 [N] (`read_blocks`, joined)."""
    return np.concatenate(list(read_blocks(path)))
