"""The soundscape mixer and the source split, on generated recordings and the committed source manifest."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from htsat_live.training.soundscapes import (
    FRAME,
    ClipPool,
    MixSettings,
    audible_span,
    make_set,
    mix_clip,
)
from htsat_live.training.sources import (
    LABELS,
    SAMPLE_RATE,
    SourceRecording,
    assign_splits,
    copyright_licences,
    licence_of,
    read_manifest,
    recording_of,
)

MANIFEST = Path(__file__).resolve().parents[2] / "model" / "data" / "sources_manifest.json"


def generated_sources(clips_dir: Path, per_class: int = 6) -> list[SourceRecording]:
    """Per class, `per_class` short recordings (tones and noise bursts of class-specific colour), each its own group."""
    rng = np.random.default_rng(0)
    sources = []
    for c, label in enumerate(LABELS):
        for k in range(per_class):
            seconds = 0.5 + 0.4 * k
            t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
            wave = 0.3 * np.sin(2 * np.pi * (300 + 400 * c + 37 * k) * t) + 0.05 * rng.standard_normal(len(t))
            source = SourceRecording(
                f"pkg:{label}/{k}.wav",
                label,
                "pkg",
                "1.0",
                "CC0-1.0",
                f"pkg:{label}/{k}.wav",
                seconds=round(len(t) / SAMPLE_RATE, 3),
            )
            (clips_dir / source.clip_name).parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(clips_dir / source.clip_name), wave.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
            sources.append(source)
    return assign_splits(sources, seed=3)


@pytest.fixture(scope="module")
def pool_dir(tmp_path_factory) -> tuple[Path, list[SourceRecording]]:
    clips = tmp_path_factory.mktemp("clips")
    return clips, generated_sources(clips)


def test_same_seed_rebuilds_the_same_set_bit_for_bit(pool_dir, tmp_path):
    clips, sources = pool_dir
    first = make_set(clips, sources, "train", 4, seed=5, out_dir=tmp_path / "a", progress=False)
    second = make_set(clips, sources, "train", 4, seed=5, out_dir=tmp_path / "b", progress=False)
    other = make_set(clips, sources, "train", 4, seed=6, out_dir=tmp_path / "c", progress=False)
    assert first["hash"] == second["hash"] != other["hash"]
    for clip in first["clips"]:
        assert (tmp_path / "a" / clip["filename"]).read_bytes() == (tmp_path / "b" / clip["filename"]).read_bytes()
    assert (tmp_path / "a" / "soundscapes.tsv").read_text() == (tmp_path / "b" / "soundscapes.tsv").read_text()


def test_clips_hold_one_to_three_labelled_events_inside_ten_seconds(pool_dir, tmp_path):
    clips, sources = pool_dir
    manifest = make_set(clips, sources, "train", 12, seed=1, out_dir=tmp_path, progress=False)
    for clip in manifest["clips"]:
        wave, rate = sf.read(str(tmp_path / clip["filename"]), dtype="float32")
        assert rate == SAMPLE_RATE and wave.shape == (10 * SAMPLE_RATE,)
        assert 1 <= len(clip["events"]) <= 3
        for event in clip["events"]:
            assert event["label"] in LABELS
            assert 0.0 <= event["onset"] < event["offset"] <= 10.0
            assert 0.0 <= event["snr_db"] <= 15.0
    rows = (tmp_path / "soundscapes.tsv").read_text().splitlines()
    assert rows[0] == "filename\tonset\toffset\tevent_label"
    assert len(rows) - 1 == sum(len(clip["events"]) for clip in manifest["clips"])


def test_events_only_use_recordings_of_their_split(pool_dir, tmp_path):
    clips, sources = pool_dir
    test_ids = {s.id for s in sources if s.split == "test"}
    manifest = make_set(clips, sources, "test", 10, seed=2, out_dir=tmp_path, progress=False)
    used = {piece["source"] for clip in manifest["clips"] for event in clip["events"] for piece in event["pieces"]}
    assert used and used <= test_ids


def test_spread_puts_one_event_in_each_slot(pool_dir):
    clips, sources = pool_dir
    pool = ClipPool(clips, [s for s in sources if s.split == "train"])
    settings = MixSettings(clip_seconds=30.0, events=(5, 5), spread=True)
    _, _, events = mix_clip(np.random.default_rng(0), pool, settings)
    assert sorted(int(e.placed_at // 6.0) for e in events) == [0, 1, 2, 3, 4]


def test_audible_span_is_the_loud_part_of_a_placed_event():
    event = np.zeros(SAMPLE_RATE, np.float32)
    event[12 * FRAME : 25 * FRAME] = 0.5 * np.sin(np.arange(13 * FRAME) * 0.1)  # loud in frames 12..24
    event[25 * FRAME : 40 * FRAME] = 1e-6  # far below the background: not audible
    first, last = audible_span(event, background_power=1e-4)
    assert (first, last) == (12, 25)


def test_settings_refuse_inverted_ranges():
    with pytest.raises(ValueError, match="snr_db"):
        MixSettings(snr_db=(10.0, 0.0))


def test_committed_split_never_shares_a_speaker_or_recording():
    seed, sources = read_manifest(MANIFEST)
    split_of = {}
    for source in sources:
        assert split_of.setdefault((source.label, source.group), source.split) == source.split
        assert source.package and source.version and source.licence
    for label in LABELS:
        groups = {g: s for (lab, g), s in split_of.items() if lab == label}
        assert len(groups) >= 8
        assert sum(1 for s in groups.values() if s == "test") >= 2
    assert json.loads(MANIFEST.read_text())["seed"] == seed


def test_numbered_takes_of_one_recording_form_one_group():
    assert recording_of("sound/animals/bird1_00.ogg") == recording_of("sound/animals/bird1_02.ogg") == "bird1"
    assert recording_of("sound/animals/bird2_00.ogg") != "bird1"
    assert recording_of("core/water_sounds/water0.wav") == recording_of("core/water_sounds/water5.wav") == "water"
    assert recording_of("mods/env_sounds_water.3.ogg") == "env_sounds_water"
    assert recording_of("resource/LRBark_1_LA_cut.ogg") == "LRBark_1_LA_cut"
    _, sources = read_manifest(MANIFEST)
    takes = [s for s in sources if s.package == "widelands-data" and "/bird2_" in s.id]
    assert len(takes) >= 2 and len({s.group for s in takes}) == 1


def test_split_is_deterministic_for_a_seed():
    _, sources = read_manifest(MANIFEST)
    again = assign_splits(sources, seed=8)
    assert [s.split for s in again] == [s.split for s in assign_splits(sources, seed=8)]
    assert [s.split for s in again] != [s.split for s in assign_splits(sources, seed=9)]


def test_licence_is_the_last_matching_dep5_stanza(tmp_path):
    copyright_file = tmp_path / "copyright"
    copyright_file.write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: someone\nLicense: GPL-2+\n\n"
        "Files: sounds/birds/*\n sounds/cat.ogg\nCopyright: someone else\nLicense: CC0-1.0\n\n"
        "Files: debian/*\nCopyright: packager\nLicense: MIT\n"
    )
    stanzas = copyright_licences(copyright_file)
    assert licence_of("pkg", "usr/share/x/sounds/birds/owl.ogg", stanzas) == "CC0-1.0"
    assert licence_of("pkg", "usr/share/x/sounds/cat.ogg", stanzas) == "CC0-1.0"
    assert licence_of("pkg", "usr/share/x/sounds/dog.ogg", stanzas) == "GPL-2+"
