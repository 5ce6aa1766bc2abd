"""Deterministic DESED-style soundscapes: 1-3 labelled events from real recordings over a background.

Why not scaper: scaper 1.6.5 installs only after `apt-get install libsox-dev` (its soxbindings dependency
builds from source) and then fails under numpy 2 (`np.Inf` was removed). Pinning numpy below 2 for one data
tool is a poor trade, so this module mixes with numpy + soundfile and writes the same kind of record:
a TSV of strong labels and a JSON manifest with every choice, from which each clip can be rebuilt.

One clip:
- background: coloured noise (spectral slope from white to brown), sometimes with mains hum, at a level
  drawn from BACKGROUND_DBFS;
- events: labels drawn without repeats within a clip (balanced across classes); the recording by speaker /
  recording group, then file; an event is 1-3 pieces of one group (several words of one speaker, a dog
  barking twice) or one excerpt of a long recording; each piece gets a speed change (pitch and time) and a
  spectral tilt; the event's level puts its active part SNR dB above the background, SNR uniform 0..15 dB;
  onsets uniform, overlaps allowed (the demo spreads its events over equal slots instead);
- strong labels: onset and offset of the event's audible part: the first and last 20-ms frame whose
  energy is within 30 dB of the event's loudest frame and no more than 6 dB below the background.

Clip i of a set uses the generator seeded with (seed, split code, i): the same seed rebuilds the same set.
"""

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from htsat_live.model.event_table import write_events
from htsat_live.model.timebase import SAMPLE_RATE
from htsat_live.training.sources import LABELS, SourceRecording

FRAME = 640  # 20-ms analysis frame for levels and audible spans
ACTIVE_DB = 30.0  # an event's active part: frames within this of its loudest frame
AUDIBLE_BELOW_BACKGROUND_DB = 6.0
FADE = 320  # 10-ms fade at both ends of every piece
SPLIT_CODES = {"train": 0, "val": 1, "test": 2, "demo": 3}


@dataclass(frozen=True)
class MixSettings:
    clip_seconds: float = 10.0
    events: tuple[int, int] = (1, 3)  # inclusive range of events per clip
    snr_db: tuple[float, float] = (0.0, 15.0)
    background_dbfs: tuple[float, float] = (-50.0, -30.0)  # background RMS
    hum_probability: float = 0.3
    max_excerpt_seconds: float = 8.0  # long recordings contribute an excerpt of 1 s up to this
    pieces: tuple[int, int] = (1, 3)  # pieces per event when the pieces are short
    short_piece_seconds: float = 2.0
    gap_seconds: tuple[float, float] = (0.05, 0.4)  # silence between the pieces of one event
    speed: tuple[float, float] = (0.9, 1.1)
    tilt_db_per_octave: tuple[float, float] = (-3.0, 3.0)
    spread: bool = False  # event k starts inside the k-th of n equal slots (readable demos), else anywhere

    def __post_init__(self):
        object.__setattr__(self, "events", tuple(self.events))
        for name in ("events", "snr_db", "background_dbfs", "pieces", "gap_seconds", "speed", "tilt_db_per_octave"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name}: low {low} > high {high}")
        if self.events[0] < 1 or self.clip_seconds <= 0:
            raise ValueError("a clip needs a positive length and at least one event")


@dataclass
class Event:
    label: str
    onset: float  # seconds, audible part
    offset: float
    snr_db: float
    placed_at: float  # seconds where the event's first sample sits
    pieces: list[dict] = field(default_factory=list)  # source id, excerpt start/length, speed, tilt


class ClipPool:
    """Prepared 32-kHz clips of one split, grouped by class and group; loaded once and kept."""

    def __init__(self, clips_dir: Path, sources: list[SourceRecording]):
        self.clips_dir = Path(clips_dir)
        self.groups: dict[str, dict[str, list[SourceRecording]]] = {}
        for source in sorted(sources, key=lambda s: s.id):
            self.groups.setdefault(source.label, {}).setdefault(source.group, []).append(source)
        self._waves: dict[str, np.ndarray] = {}
        missing = [label for label in LABELS if label not in self.groups]
        if missing:
            raise ValueError(f"no recordings for the classes {missing}")

    def wave(self, source: SourceRecording) -> np.ndarray:
        if source.id not in self._waves:
            self._waves[source.id] = sf.read(str(self.clips_dir / source.clip_name), dtype="float32")[0]
        return self._waves[source.id]


def frame_energy(wave: np.ndarray) -> np.ndarray:
    """Mean square per 20-ms frame: [N] -> [ceil(N / 640)]."""
    padded = np.pad(wave, (0, -len(wave) % FRAME))
    return (padded.reshape(-1, FRAME) ** 2).mean(axis=1)


def active_power(wave: np.ndarray) -> float:
    energy = frame_energy(wave)
    return float(energy[energy >= energy.max() * 10 ** (-ACTIVE_DB / 10)].mean())


def coloured_noise(rng: np.random.Generator, n: int, slope: float) -> np.ndarray:
    """Noise whose power falls as f^-slope (0 white, 1 pink, 2 brown), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum *= np.maximum(freqs, 20.0) ** (-slope / 2)
    noise = np.fft.irfft(spectrum, n)
    return (noise / np.sqrt(np.mean(noise**2))).astype(np.float32)


def make_background(rng: np.random.Generator, n: int, settings: MixSettings) -> tuple[np.ndarray, dict]:
    slope = float(rng.uniform(0.0, 2.0))
    wave = coloured_noise(rng, n, slope)
    hum_hz = None
    if rng.random() < settings.hum_probability:
        hum_hz = float(rng.choice([50.0, 60.0]))
        t = np.arange(n) / SAMPLE_RATE
        hum = sum(np.sin(2 * np.pi * hum_hz * k * t + rng.uniform(0, 2 * np.pi)) / k for k in (1, 2, 3))
        wave = wave + float(rng.uniform(0.3, 1.0)) * hum.astype(np.float32)
    dbfs = float(rng.uniform(*settings.background_dbfs))
    wave = wave * (10 ** (dbfs / 20) / np.sqrt(np.mean(wave**2)))
    return wave.astype(np.float32), {"slope": round(slope, 4), "hum_hz": hum_hz, "dbfs": round(dbfs, 3)}


def tilt(wave: np.ndarray, db_per_octave: float) -> np.ndarray:
    """A spectral tilt around 1 kHz (a cheap random EQ)."""
    spectrum = np.fft.rfft(wave)
    freqs = np.maximum(np.fft.rfftfreq(len(wave), 1 / SAMPLE_RATE), 50.0)
    gain_db = np.clip(db_per_octave * np.log2(freqs / 1000.0), -18.0, 18.0)
    return np.fft.irfft(spectrum * 10 ** (gain_db / 20), len(wave)).astype(np.float32)


def fade(wave: np.ndarray) -> np.ndarray:
    n = min(FADE, len(wave) // 2)
    ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
    wave = wave.copy()
    wave[:n] *= ramp
    wave[len(wave) - n :] *= ramp[::-1]
    return wave


def make_piece(
    rng: np.random.Generator, pool: ClipPool, source: SourceRecording, settings: MixSettings
) -> tuple[np.ndarray, dict]:
    wave = pool.wave(source)
    start, length = 0, len(wave)
    longest = int(settings.max_excerpt_seconds * SAMPLE_RATE)
    if length > longest:
        length = int(rng.uniform(1.0, settings.max_excerpt_seconds) * SAMPLE_RATE)
        start = int(rng.integers(0, len(wave) - length + 1))
    speed = float(rng.uniform(*settings.speed))
    slope = float(rng.uniform(*settings.tilt_db_per_octave))
    piece = wave[start : start + length]
    piece = soxr.resample(piece, SAMPLE_RATE * speed, SAMPLE_RATE).astype(
        np.float32
    )  # faster and higher when speed > 1
    piece = fade(tilt(piece, slope))
    return piece, {
        "source": source.id,
        "start": round(start / SAMPLE_RATE, 4),
        "seconds": round(length / SAMPLE_RATE, 4),
        "speed": round(speed, 4),
        "tilt": round(slope, 3),
    }


def make_event_wave(
    rng: np.random.Generator, pool: ClipPool, label: str, settings: MixSettings
) -> tuple[np.ndarray, list[dict]]:
    """1-3 pieces from one group (one speaker / one recording), or one excerpt of a long recording."""
    groups = pool.groups[label]
    group = sorted(groups)[int(rng.integers(len(groups)))]
    files = groups[group]
    first = files[int(rng.integers(len(files)))]
    count = 1
    if first.seconds < settings.short_piece_seconds:
        count = int(rng.integers(settings.pieces[0], settings.pieces[1] + 1))
    parts, records = [], []
    for i in range(count):
        source = first if i == 0 else files[int(rng.integers(len(files)))]
        piece, record = make_piece(rng, pool, source, settings)
        if parts:
            parts.append(np.zeros(int(rng.uniform(*settings.gap_seconds) * SAMPLE_RATE), np.float32))
        parts.append(piece)
        records.append(record)
    return np.concatenate(parts), records


def audible_span(event: np.ndarray, background_power: float) -> tuple[int, int]:
    """First and last+1 20-ms frame of the audible part of a placed event (see the module docstring)."""
    energy = frame_energy(event)
    floor = max(energy.max() * 10 ** (-ACTIVE_DB / 10), background_power * 10 ** (-AUDIBLE_BELOW_BACKGROUND_DB / 10))
    audible = np.flatnonzero(energy >= floor)
    return int(audible[0]), int(audible[-1]) + 1


def pick_labels(rng: np.random.Generator, count: int) -> list[str]:
    """`count` labels, no repeats until every class has been used once."""
    order = [LABELS[i] for i in rng.permutation(len(LABELS))]
    while len(order) < count:
        order += [LABELS[i] for i in rng.permutation(len(LABELS))]
    return order[:count]


def mix_clip(rng: np.random.Generator, pool: ClipPool, settings: MixSettings) -> tuple[np.ndarray, dict, list[Event]]:
    """One soundscape: wave float32 [clip samples], background record, events sorted by onset."""
    n = int(settings.clip_seconds * SAMPLE_RATE)
    mix, background = make_background(rng, n, settings)
    background_power = float(np.mean(mix**2))
    events = []
    labels = pick_labels(rng, int(rng.integers(settings.events[0], settings.events[1] + 1)))
    for k, label in enumerate(labels):
        wave, pieces = make_event_wave(rng, pool, label, settings)
        wave = wave[:n]
        snr = float(rng.uniform(*settings.snr_db))
        wave = wave * np.sqrt(background_power * 10 ** (snr / 10) / active_power(wave))
        if settings.spread:
            slot = n // len(labels)
            at = min(k * slot + int(rng.integers(0, max(1, slot - len(wave)) + 1)), n - len(wave))
        else:
            at = int(rng.integers(0, n - len(wave) + 1))
        mix[at : at + len(wave)] += wave
        first, last = audible_span(wave, background_power)
        onset = (at + first * FRAME) / SAMPLE_RATE
        offset = min(at + last * FRAME, at + len(wave)) / SAMPLE_RATE
        events.append(
            Event(label, round(onset, 3), round(offset, 3), round(snr, 3), round(at / SAMPLE_RATE, 4), pieces)
        )
    peak = float(np.abs(mix).max())
    if peak > 0.99:
        mix *= 0.99 / peak
    return mix.astype(np.float32), background, sorted(events, key=lambda e: (e.onset, e.label))


def clip_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLIT_CODES[split], index])


def make_set(
    clips_dir: Path,
    sources: list[SourceRecording],
    split: str,
    count: int,
    seed: int,
    out_dir: Path,
    settings: MixSettings = MixSettings(),
    progress: bool = True,
) -> dict:
    """Mix `count` clips of one split into out_dir: <split>_NNNNN.wav, soundscapes.tsv (strong labels),
    soundscapes_metadata.tsv (durations), manifest.json (every choice). Returns the manifest."""
    from tqdm import tqdm

    pool = ClipPool(clips_dir, [s for s in sources if s.split == (split if split != "demo" else "test")])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clips = []
    for index in tqdm(range(count), desc=f"mixing {split}", unit="clip", disable=not progress):
        wave, background, events = mix_clip(clip_rng(seed, split, index), pool, settings)
        filename = f"{split}_{index:05d}.wav"
        sf.write(str(out_dir / filename), wave, SAMPLE_RATE, subtype="PCM_16")
        clips.append({"filename": filename, "background": background, "events": [asdict(e) for e in events]})
    manifest = {
        "seed": seed,
        "split": split,
        "sample_rate": SAMPLE_RATE,
        "labels": list(LABELS),
        "settings": asdict(settings),
        "clips": clips,
    }
    manifest["hash"] = manifest_hash(manifest)
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    write_labels(out_dir, manifest)
    return manifest


def write_labels(out_dir: Path, manifest: dict, stem: str = "soundscapes") -> None:
    """<stem>.tsv (filename, onset, offset, event_label) and <stem>_metadata.tsv (filename, duration)."""
    write_events(
        Path(out_dir) / f"{stem}.tsv",
        [(clip["filename"], e["onset"], e["offset"], e["label"]) for clip in manifest["clips"] for e in clip["events"]],
    )
    seconds = manifest["settings"]["clip_seconds"]
    meta = ["filename\tduration"] + [f"{clip['filename']}\t{seconds:.3f}" for clip in manifest["clips"]]
    (Path(out_dir) / f"{stem}_metadata.tsv").write_text("\n".join(meta) + "\n", encoding="utf-8")


def manifest_hash(manifest: dict) -> str:
    """SHA-256 of the manifest's content (without its own hash): names a data set exactly."""
    content = {k: v for k, v in manifest.items() if k != "hash"}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


# The demo: one minute of held-out (test) recordings, every class at least once, one event per 6-s slot
# (overlapping only where an event is longer than its slot) so that a listener can follow it: every event
# at least 6 dB over the background, and short recordings (single words, one bark) in twos or threes.
DEMO_SETTINGS = MixSettings(clip_seconds=60.0, events=(10, 10), spread=True, snr_db=(6.0, 15.0), pieces=(2, 3))


def make_demo(
    clips_dir: Path, sources: list[SourceRecording], seed: int, out_dir: Path, settings: MixSettings = DEMO_SETTINGS
) -> dict:
    """demo.wav (32 kHz mono 16-bit), demo.tsv (its strong labels), demo_metadata.tsv and demo.json (every
    choice) in out_dir."""
    pool = ClipPool(clips_dir, [s for s in sources if s.split == "test"])
    wave, background, events = mix_clip(clip_rng(seed, "demo", 0), pool, settings)
    out_dir = Path(out_dir)
    sf.write(str(out_dir / "demo.wav"), wave, SAMPLE_RATE, subtype="PCM_16")
    manifest = {
        "seed": seed,
        "split": "demo",
        "sample_rate": SAMPLE_RATE,
        "labels": list(LABELS),
        "settings": asdict(settings),
        "clips": [{"filename": "demo.wav", "background": background, "events": [asdict(e) for e in events]}],
    }
    manifest["hash"] = manifest_hash(manifest)
    (out_dir / "demo.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    write_labels(out_dir, manifest, stem="demo")
    return manifest
