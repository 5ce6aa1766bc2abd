from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import soxr

from htsat_live.cli import main
from htsat_live.model import SAMPLE_RATE, read_events

DEMO = Path(__file__).resolve().parents[2] / "model" / "data"
DESED_RATE = 44100  # DESED's own rate: the folder is read at any rate and channel count


def write_desed_folder(root: Path) -> Path:
    """A DESED-style folder from the embedded demo recording (real recordings, held out from the starter's
    training): its 60 s cut into six clips in audio/ (44.1 kHz stereo; the last one 7 s long),
    `soundscapes.tsv` with the demo's events cut to the clips plus one Bird event that overlaps another, and
    `durations.tsv`."""
    wave, rate = sf.read(str(DEMO / "demo.wav"), dtype="float32")
    assert rate == SAMPLE_RATE
    truth = read_events(DEMO / "demo.tsv")
    (root / "audio").mkdir(parents=True)
    events, durations = [], []
    for k in range(6):
        name, seconds = f"demo_{k}.wav", 7.0 if k == 5 else 10.0
        clip = soxr.resample(
            wave[k * 10 * SAMPLE_RATE : int((k * 10 + seconds) * SAMPLE_RATE)], SAMPLE_RATE, DESED_RATE
        )
        sf.write(str(root / "audio" / name), np.stack([clip, 0.5 * clip], axis=1), DESED_RATE, subtype="PCM_16")
        durations.append((name, seconds))
        for _, onset, offset, label in truth.itertuples(index=False):
            if onset < k * 10 + seconds and offset > k * 10:
                events.append(
                    (name, round(max(onset - 10 * k, 0.0), 3), round(min(offset - 10 * k, seconds), 3), label)
                )
    events.append(("demo_0.wav", 3.0, 4.0, "Bird"))  # inside the Bird event at 2.47-4.91 s: one to merge
    pd.DataFrame(events, columns=["filename", "onset", "offset", "event_label"]).to_csv(
        root / "soundscapes.tsv", sep="\t", index=False
    )
    pd.DataFrame(durations, columns=["filename", "duration"]).to_csv(root / "durations.tsv", sep="\t", index=False)
    return root


@pytest.fixture(scope="module")
def desed_dir(tmp_path_factory) -> Path:
    return write_desed_folder(tmp_path_factory.mktemp("desed"))


@pytest.fixture
def train_on_desed(desed_dir):
    """`train_on_desed(out, *options)`: the exit code of `htsat-live train --train-dir <the DESED-style folder>
    --val-dir <the same> --out OUT *options`, run in this process."""

    def train(out: Path, *options: str) -> int:
        return main(["train", "--train-dir", str(desed_dir), "--val-dir", str(desed_dir), "--out", str(out), *options])

    return train


@pytest.fixture
def interrupted_validation(monkeypatch):
    """`with interrupted_validation(n): train(...)`: the n-th call of the validation's post-processing tuning
    raises KeyboardInterrupt, as a Ctrl-C during that epoch's validation would; the real one is back after."""
    import htsat_live.training.validation as validation  # validate() looks tune_post_processing up there

    @contextmanager
    def interrupt_at(call: int):
        tune, calls = validation.tune_post_processing, []

        def tune_or_interrupt(*args):
            calls.append(1)
            if len(calls) == call:
                raise KeyboardInterrupt
            return tune(*args)

        monkeypatch.setattr(validation, "tune_post_processing", tune_or_interrupt)
        try:
            with pytest.raises(KeyboardInterrupt):
                yield
        finally:
            monkeypatch.setattr(validation, "tune_post_processing", tune)

    return interrupt_at
