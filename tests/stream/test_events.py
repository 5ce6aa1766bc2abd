"""The event detector: thresholds, hysteresis, filtering, merging, groups, revisions, flush, confirmation."""

import numpy as np
import pytest

from htsat_live.model import (
    DEMO_RECORDING,
    FRAME_SECONDS,
    MODEL_FRAMES,
    SAMPLE_RATE,
    Target,
    load_model,
    median_over_frames,
    official_events,
    read_clip,
)
from htsat_live.stream.config import ConfigError, EventsConfig, WindowsConfig
from htsat_live.stream.events import ConfirmedView, Event, EventDetector, targets_from_config
from htsat_live.stream.replay import replay
from htsat_live.stream.stitch import Stitcher, TimelineUpdate
from htsat_live.stream.windows import WindowScheduler

LABELS = ["Speech", "Dog", "Bark", "Cat"]


def timeline(values, start=0, final_upto=None) -> TimelineUpdate:
    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 1:
        values = values[:, None]
    end = start + values.shape[0]
    return TimelineUpdate(start, values, end, end if final_upto is None else final_upto)


def detector(on=0.5, off=None, **kwargs) -> EventDetector:
    return EventDetector([Target("x", (0,), on, on if off is None else off)], **kwargs)


def ends(reports):
    return [(r.onset_frame, r.offset_frame) for r in reports if r.state == "end" and not r.cancelled]


def reference_runs(scores: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Runs of frames whose score exceeds the threshold (the official DESED rule)."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], (scores > threshold).astype(np.int8), [0]))))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def test_events_are_the_runs_of_frames_above_threshold():
    rng = np.random.default_rng(1)
    scores = np.repeat(rng.random(64), 32)  # token-like steps
    events = detector(0.6)
    reports = events.update(timeline(scores)) + events.flush()
    assert ends(reports) == reference_runs(scores, 0.6)
    first = next(r for r in reports if r.state == "end")
    assert first.onset == pytest.approx(first.onset_frame * FRAME_SECONDS)
    assert first.peak == pytest.approx(scores[first.onset_frame : first.offset_frame].max(), abs=1e-6)
    assert first.mean == pytest.approx(scores[first.onset_frame : first.offset_frame].mean(), abs=1e-6)


def test_hysteresis_keeps_an_event_on_until_the_score_falls_to_the_off_threshold():
    scores = [0.1] * 10 + [0.6] * 10 + [0.45] * 10 + [0.35] * 10 + [0.45] * 10
    events = detector(0.5, 0.4)
    assert ends(events.update(timeline(scores)) + events.flush()) == [(10, 30)]
    plain = detector(0.5)
    assert ends(plain.update(timeline(scores)) + plain.flush()) == [(10, 20)]


def test_median_filter_removes_a_one_frame_spike():
    scores = [0.1] * 20 + [0.9] + [0.1] * 20 + [0.9] * 10 + [0.1] * 5
    events = detector(0.5, median_frames=5)
    assert ends(events.update(timeline(scores)) + events.flush()) == [(41, 51)]


def test_offline_median_filter_is_the_detectors_filter():
    scores = np.random.default_rng(3).random((300, 1)).astype(np.float32)
    filtered = median_over_frames(scores, 33)
    events = detector(0.5, median_frames=33)
    streamed = ends(
        events.update(timeline(scores[:170], final_upto=120))
        + events.update(timeline(scores[170:], start=170))
        + events.flush()
    )
    assert streamed == reference_runs(filtered[:, 0], 0.5)
    assert filtered[0, 0] == np.median(np.concatenate([np.repeat(scores[:1], 16), scores[:17, 0]]))
    assert median_over_frames(scores, 1) is scores


def test_median_filter_length_comes_from_the_config_else_the_model():
    thresholds = np.full(len(LABELS), 0.5, np.float32)
    assert EventDetector.from_config(EventsConfig(), LABELS, thresholds, model_median_frames=95).half == 47
    assert (
        EventDetector.from_config(EventsConfig(median_frames=1), LABELS, thresholds, model_median_frames=95).half == 0
    )
    assert EventDetector.from_config(EventsConfig(), LABELS, None).half == 0


def test_short_events_are_dropped_and_close_ones_are_merged():
    scores = [0.9] * 10 + [0.0] * 5 + [0.9] * 40 + [0.0] * 40 + [0.9] * 20 + [0.0] * 10
    merged = detector(0.5, gap_merge=5 * FRAME_SECONDS, min_duration=25 * FRAME_SECONDS)
    assert ends(merged.update(timeline(scores)) + merged.flush()) == [(0, 55)]
    events = detector(0.5, min_duration=25 * FRAME_SECONDS)
    assert ends(events.update(timeline(scores)) + events.flush()) == [(15, 55)]


def test_group_score_is_the_max_of_its_members_and_allow_deny_pick_targets():
    config = EventsConfig(groups={"dog": ("Dog", 2)}, allow=("dog", "Cat"), thresholds={"dog": 0.5})
    targets = targets_from_config(config, LABELS, None)
    assert [(t.name, t.classes) for t in targets] == [("Cat", (3,)), ("dog", (1, 2))]
    values = np.zeros((60, 4), np.float32)
    values[10:20, 1] = 0.9  # Dog
    values[30:40, 2] = 0.9  # Bark
    events = EventDetector(targets)
    reports = events.update(timeline(values)) + events.flush()
    assert [(r.label, r.onset_frame, r.offset_frame) for r in reports if r.state == "end"] == [
        ("dog", 10, 20),
        ("dog", 30, 40),
    ]
    assert targets_from_config(EventsConfig(deny=("Speech",)), LABELS, None)[0].name == "Dog"


def test_thresholds_come_from_config_then_model_then_default():
    config = EventsConfig(
        thresholds={"Dog": 0.7}, hysteresis=0.5, off_thresholds={"Cat": 0.1}, groups={"pets": ("Dog", "Cat")}
    )
    targets = {t.name: t for t in targets_from_config(config, LABELS, np.array([0.2, 0.3, 0.4, 0.6]))}
    assert (targets["Dog"].on, targets["Dog"].off) == (0.7, 0.35)
    assert (targets["Speech"].on, targets["Cat"].on, targets["Cat"].off) == (0.2, 0.6, 0.1)
    assert targets["pets"].on == 0.5  # groups fall back to events.threshold


@pytest.mark.parametrize(
    "config, message",
    [
        (EventsConfig(groups={"g": ("Horse",)}), "events.groups.g: unknown label 'Horse'"),
        (EventsConfig(groups={"g": (9,)}), "events.groups.g: class index 9 outside 0..3"),
        (EventsConfig(allow=("Horse",)), "events.allow: unknown target 'Horse'"),
        (EventsConfig(thresholds={"Horse": 0.3}), "events.thresholds: unknown target 'Horse'"),
        (EventsConfig(thresholds={"Dog": 0.3}, off_thresholds={"Dog": 0.4}), "events.off_thresholds.Dog: must be <="),
        (EventsConfig(classes=False), "events: no detection target"),
    ],
)
def test_settings_that_do_not_fit_the_model_are_config_errors(config, message):
    with pytest.raises(ConfigError, match=message):
        targets_from_config(config, LABELS, None)


def test_targets_typed_in_another_case_are_found_and_a_typo_gets_its_near_miss():
    config = EventsConfig(
        allow=("dog", "SPEECH", "pets"), deny=("speech",), thresholds={"DOG": 0.7}, groups={"pets": ("cat", "BARK")}
    )
    targets = {t.name: t for t in targets_from_config(config, LABELS, None)}
    assert sorted(targets) == ["Dog", "pets"] and targets["Dog"].on == 0.7
    assert targets["pets"].classes == (LABELS.index("Cat"), LABELS.index("Bark"))
    for typo, message in (
        (
            EventsConfig(allow=("Dgo",)),
            "events.allow: unknown target 'Dgo' (not a class label or group); did you mean 'Dog'?",
        ),
        (
            EventsConfig(deny=("speach",)),
            "events.deny: unknown target 'speach' (not a class label or group); did you mean 'Speech'?",
        ),
        (EventsConfig(groups={"g": ("Cta",)}), "events.groups.g: unknown label 'Cta'; did you mean 'Cat'?"),
        (EventsConfig(allow=("Horse",)), "events.allow: unknown target 'Horse' (not a class label or group)"),
    ):
        with pytest.raises(ConfigError) as caught:
            targets_from_config(typo, LABELS, None)
        assert str(caught.value) == message


def test_an_event_starts_on_provisional_frames_and_ends_when_final():
    events = detector(0.5, wall_time=lambda sample: 1000.0 + sample / 32000)
    scores = [0.1] * 100 + [0.9] * 50
    [start] = events.update(timeline(scores, final_upto=100), now=1010.0)
    assert (start.state, start.final, start.onset_frame, start.offset_frame) == ("start", False, 100, 150)
    assert start.onset_wall == pytest.approx(1000.0 + 100 * FRAME_SECONDS)
    assert start.latency == pytest.approx(1010.0 - start.onset_wall)
    [update] = events.update(timeline([0.9] * 30 + [0.1] * 20, start=150, final_upto=170), now=1011.0)
    assert (update.state, update.id, update.offset_frame) == ("update", start.id, 180)
    [end] = events.update(timeline([0.1] * 10, start=200, final_upto=210), now=1012.0)
    assert (end.state, end.id, end.final, end.offset_frame, end.latency) == ("end", start.id, True, 180, start.latency)
    assert end.offset_wall == pytest.approx(1000.0 + 180 * FRAME_SECONDS)


def test_a_provisional_event_that_revisions_remove_is_cancelled():
    events = detector(0.5, confirm_updates=2)
    [start] = events.update(timeline([0.1] * 100 + [0.9] * 50, final_upto=100))
    [cancel] = events.update(timeline([0.2] * 50, start=100, final_upto=100))
    assert (cancel.state, cancel.id, cancel.cancelled) == ("end", start.id, True)
    assert events.flush() == []


def test_flush_ends_open_events_at_the_stream_end():
    events = detector(0.5)
    events.update(timeline([0.9] * 40, final_upto=40))
    [end] = events.flush()
    assert (end.state, end.offset_frame, end.final, end.cancelled) == ("end", 40, True, False)


def test_streaming_through_the_stitcher_gives_the_offline_events_of_the_final_timeline():
    rng = np.random.default_rng(7)
    seconds = 60
    truth = np.repeat(rng.random((seconds * 1024 // 10 // 32 + 40, 3)), 32, axis=0).astype(np.float32)
    stitcher = Stitcher(3, history_frames=seconds * 1024 // 10 + 2048)
    events = EventDetector(
        [Target("a", (0,), 0.7, 0.5), Target("ab", (0, 1), 0.8, 0.8), Target("c", (2,), 0.6, 0.6)],
        median_frames=33,
        min_duration=0.5,
        gap_merge=0.4,
    )
    streamed = []
    for w in WindowScheduler(1.25).due(seconds * 32000):
        first = int(round(w.start / 312.5))
        framewise = truth[first : first + MODEL_FRAMES] + 0.15 * rng.standard_normal((MODEL_FRAMES, 3)).astype(
            np.float32
        )
        valid = min(MODEL_FRAMES, int(np.ceil(w.samples // 320 * 1.024)))
        streamed += events.update(stitcher.add(framewise, w.start, valid, w.next_start))
    streamed += events.update(stitcher.finish()) + events.flush()

    offline = EventDetector(events.targets, median_frames=33, min_duration=0.5, gap_merge=0.4)
    whole = offline.update(timeline(stitcher.frames(0, stitcher.end))) + offline.flush()

    def key(r):
        return r.label, r.onset_frame, r.offset_frame

    # Every start is confirmed at once (confirm_updates 1), so what revisions remove ends with final false;
    # the ends on final frames are the offline events.
    final_streamed = sorted((r for r in streamed if r.state == "end" and r.final), key=key)
    assert not any(r.cancelled for r in streamed)
    final_whole = sorted((r for r in whole if r.state == "end"), key=key)
    assert list(map(key, final_streamed)) == list(map(key, final_whole))
    for a, b in zip(final_streamed, final_whole):
        assert (a.peak, a.mean) == pytest.approx((b.peak, b.mean), abs=1e-5)
        assert isinstance(a.onset_frame, int) and isinstance(a.offset_frame, int)
    assert len(whole) > 10
    by_id = {}
    for report in streamed:
        by_id.setdefault(report.id, []).append(report.state)
    for states in by_id.values():  # every event: one start, updates, exactly one end, nothing after it
        assert states[0] == "start" and states[-1] == "end" and states.count("end") == 1
        assert set(states[1:-1]) <= {"update"}


def test_many_quiet_targets_give_the_official_events_of_the_timeline():
    """Most targets stay below their threshold (the filter skips them), a few cross it in short bursts, some
    just within the filter's reach of a window's frames: the final events are the official rule's."""
    rng = np.random.default_rng(11)
    classes, seconds, median = 40, 90, 31
    truth = (0.45 * rng.random((seconds * 1024 // 10 + MODEL_FRAMES, classes))).astype(np.float32)
    for _ in range(25):  # bursts of 0.2-1 s above 0.5 on a few classes
        onset, length = int(rng.integers(0, truth.shape[0] - 200)), int(rng.integers(20, 100))
        truth[onset : onset + length, int(rng.integers(0, 5))] = 0.6 + 0.3 * rng.random()
    targets = [Target(f"t{c}", (c,), 0.5, 0.5) for c in range(classes)]
    stitcher = Stitcher(classes, history_frames=2048)
    events = EventDetector(list(targets), median_frames=median)
    streamed = []
    for w in WindowScheduler(1.25).due(seconds * SAMPLE_RATE):
        first = int(round(w.start / 312.5))
        valid = min(MODEL_FRAMES, int(np.ceil(w.samples // 320 * 1.024)))
        streamed += events.update(stitcher.add(truth[first : first + MODEL_FRAMES], w.start, valid, w.next_start))
    at_end = events.update(stitcher.finish()) + events.flush()
    assert all(r.offset_frame > stitcher.end - MODEL_FRAMES // 2 for r in at_end)  # the others ended on time
    expected, _ = official_events(truth[: stitcher.end], targets, median)
    got = sorted((r.onset, r.offset, r.label) for r in streamed + at_end if r.state == "end" and r.final)
    assert got == sorted(expected) and len(expected) >= 10


def test_an_event_waiting_out_its_merge_gap_ends_once_quiet_final_frames_pass_it():
    events = detector(0.5, median_frames=5, gap_merge=0.2)  # 20 frames of gap
    events.update(timeline([0.9] * 40 + [0.1] * 10, final_upto=50))  # off, the gap not yet over
    reports = events.update(timeline([0.1] * 100, start=50, final_upto=150))  # quiet: no score near the threshold
    assert ends(reports) == [(0, 40)]


def test_reset_forgets_events_and_ids():
    events = detector(0.5)
    events.update(timeline([0.9] * 40, final_upto=0))
    events.reset()
    assert events.flush() == []
    [start] = events.update(timeline([0.9] * 10, final_upto=0))
    assert start.id == 1


def test_memory_stays_flat_over_a_long_stream():
    import tracemalloc

    rng = np.random.default_rng(3)
    stitcher = Stitcher(5)
    events = EventDetector([Target(f"t{i}", (i,), 0.6, 0.4) for i in range(5)], median_frames=5, gap_merge=0.3)
    windows = WindowScheduler(1.25).due(600 * 32000)  # ten minutes: 61440 frames, 1.2 MB if kept
    tracemalloc.start()
    try:
        for k, w in enumerate(windows):
            framewise = np.repeat(rng.random((32, 5), dtype=np.float32), 32, axis=0)
            events.update(stitcher.add(framewise, w.start, MODEL_FRAMES, w.next_start))
            if k == 50:
                early = tracemalloc.get_traced_memory()[0]
        late = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert late - early < 256 * 1024, f"memory grew by {late - early} bytes"


def test_a_threshold_changed_mid_stream_judges_the_frames_still_to_come():
    scores = [0.4] * 100
    events = detector(0.5, 0.45)
    assert events.update(timeline(scores[:50])) == []
    changed = events.set_threshold("x", 0.3)
    assert (changed.on, changed.off) == pytest.approx((0.3, 0.27))  # the off-threshold keeps its ratio
    reports = events.update(timeline(scores[50:], start=50)) + events.flush()
    assert ends(reports) == [(50, 100)]
    with pytest.raises(ValueError, match="unknown detection target"):
        events.set_threshold("nothing", 0.3)
    with pytest.raises(ValueError, match="must be in 0..1"):
        events.set_threshold("x", 1.5)


# --- confirmation -----------------------------------------------------------------------------------


def states(reports):
    return [(r.state, r.confirmed) for r in reports]


def test_an_event_is_confirmed_once_seen_in_enough_updates():
    events = detector(0.5, confirm_updates=3, wall_time=lambda sample: 1000.0 + sample / 32000)
    start = events.update(timeline([0.1] * 100 + [0.6] * 20, final_upto=100), now=1010.0)
    assert states(start) == [("start", False)] and start[0].confirm_latency is None
    assert events.update(timeline([0.6] * 10, start=120, final_upto=100), now=1011.0)[0].confirmed is False
    [confirmed] = events.update(timeline([0.6] * 10, start=130, final_upto=100), now=1012.0)
    assert (confirmed.state, confirmed.confirmed) == ("update", True)
    assert confirmed.confirm_latency == pytest.approx(1012.0 - (1000.0 + 100 * FRAME_SECONDS))
    [end] = events.update(timeline([0.1] * 10, start=140, final_upto=150))
    assert (end.state, end.confirmed, end.confirm_latency) == ("end", True, confirmed.confirm_latency)


def test_an_unchanged_event_reports_only_its_confirmation():
    events = detector(0.5, confirm_updates=2)
    events.update(timeline([0.1] * 100 + [0.6] * 20, final_upto=100))
    [confirmed] = events.update(timeline([0.6] * 20, start=100, final_upto=100))  # the same frames again
    assert (confirmed.state, confirmed.confirmed, confirmed.offset_frame) == ("update", True, 120)
    assert events.update(timeline([0.6] * 20, start=100, final_upto=100)) == []


def test_a_clear_event_is_confirmed_at_once_and_a_faint_one_waits():
    events = EventDetector(
        [Target("x", (0,), 0.3, 0.3), Target("y", (1,), 0.3, 0.3)], confirm_updates=5, confirm_ratio=2.0
    )
    values = np.zeros((120, 2), np.float32)
    values[100:, 0] = 0.65  # > 2 x 0.3
    values[100:, 1] = 0.5
    reports = events.update(timeline(values, final_upto=100))
    assert {r.label: r.confirmed for r in reports} == {"x": True, "y": False}


def test_an_event_that_ends_before_it_is_confirmed_is_confirmed_by_its_final_frames():
    events = detector(0.5, confirm_updates=10)
    reports = events.update(timeline([0.1] * 10 + [0.9] * 20 + [0.1] * 10, final_upto=40))
    assert states(reports) == [("start", True), ("end", True)]


def test_a_revised_away_event_is_cancelled_before_it_is_confirmed():
    events = detector(0.5, confirm_updates=2)
    events.update(timeline([0.1] * 100 + [0.9] * 50, final_upto=100))
    [cancel] = events.update(timeline([0.2] * 50, start=100, final_upto=100))
    assert (cancel.state, cancel.cancelled, cancel.confirmed) == ("end", True, False)


def test_a_confirmed_event_that_revisions_remove_ends_as_an_event_at_its_last_extent():
    events = detector(0.5, confirm_updates=2)
    [start] = events.update(timeline([0.1] * 100 + [0.9] * 50, final_upto=100))
    [confirmed] = events.update(timeline([0.9] * 60, start=100, final_upto=100))
    assert (confirmed.state, confirmed.confirmed, confirmed.offset_frame) == ("update", True, 160)
    [end] = events.update(timeline([0.2] * 60, start=100, final_upto=100))  # the revision removes it
    assert (end.state, end.id, end.cancelled, end.confirmed, end.final) == ("end", start.id, False, True, False)
    assert (end.onset_frame, end.offset_frame) == (100, 160)
    assert events.flush() == []
    view = ConfirmedView()
    shown = [r for report in (start, confirmed, end) for r in view.take("mic", report)]
    assert [(r.state, r.cancelled) for r in shown] == [("start", False), ("end", False)]


def test_a_run_that_merges_a_confirmed_event_with_an_unconfirmed_one_keeps_the_confirmed_one():
    events = EventDetector([Target("x", (0,), 0.3, 0.3)], confirm_updates=5, confirm_ratio=2.0)
    values = [0.1] * 100 + [0.4] * 10 + [0.1] * 10 + [0.7] * 10  # a faint event, then a clear one
    faint, clear = events.update(timeline(values, final_upto=100))
    assert (faint.confirmed, clear.confirmed) == (False, True)
    reports = events.update(timeline([0.4] * 30, start=100, final_upto=100))  # revised into one run
    by_id = {r.id: r for r in reports}
    assert (by_id[faint.id].state, by_id[faint.id].cancelled) == ("end", True)  # never shown: withdrawn
    assert (by_id[clear.id].state, by_id[clear.id].onset_frame, by_id[clear.id].offset_frame) == ("update", 100, 130)


def scene_mixes() -> dict[str, np.ndarray]:
    """Recordings of other scenes made from the demo (float32 [N] at 32 kHz): busy (three scenes at
    once), noisy (white noise as loud as the scene), quiet (the demo 24 dB down over faint noise)."""
    demo = read_clip(DEMO_RECORDING)
    noise = np.random.default_rng(3).standard_normal(demo.size).astype(np.float32)
    loudness = float(np.sqrt(np.mean(demo**2)))
    mixes = {
        "busy": demo + 0.8 * np.roll(demo, 13 * SAMPLE_RATE) + 0.6 * np.roll(demo, 31 * SAMPLE_RATE),
        "noisy": demo + loudness * noise,
        "quiet": 0.06 * demo + 0.003 * noise,
    }
    return {name: (wave * min(1.0, 0.99 / np.abs(wave).max())).astype(np.float32) for name, wave in mixes.items()}


@pytest.mark.timeout(400)
def test_no_confirmed_event_is_cancelled_on_the_demo_and_on_busy_noisy_and_quiet_scenes():
    """Each recording replayed at the default hop (stream.replay) through the default event rule, every
    update at the capture time of its newest sample, as in real time with inference taking no time.
    Prints the figures (pytest -s)."""
    model = load_model()
    config = EventsConfig()
    recordings = {"demo": read_clip(DEMO_RECORDING), **scene_mixes()}
    for name, wave in recordings.items():
        events = EventDetector.from_config(config, model.labels, model.thresholds, model.median_frames)
        view = ConfirmedView()
        shown, now = [], 0.0
        for update in replay(model, wave, WindowsConfig().hop):
            now = update.end * FRAME_SECONDS
            shown += [r for report in events.update(update, now=now) for r in view.take(name, report)]
        shown += [r for report in events.flush(now=now) for r in view.take(name, report)]
        latencies = [r.confirm_latency for r in shown if r.state == "start"]
        withdrawn = [r.id for r in shown if r.state == "end" and r.cancelled]
        by_revision = [r.id for r in shown if r.state == "end" and not r.final]
        print(
            f"{name}: {len(latencies)} confirmed, {len(withdrawn)} confirmed then cancelled, "
            f"{len(by_revision)} ended by a revision, confirmed start latency p50 {np.median(latencies):.2f} s"
        )
        assert withdrawn == []
        assert len(latencies) >= 3 and sum(r.state == "end" for r in shown) == len(latencies)


def body(id, state, confirmed, cancelled=False) -> Event:
    return Event(
        id=id,
        state=state,
        label="Dog",
        classes=(74,),
        onset_frame=0,
        offset_frame=1,
        onset=0.0,
        offset=FRAME_SECONDS,
        onset_wall=0.0,
        offset_wall=FRAME_SECONDS,
        peak=0.9,
        mean=0.9,
        threshold=0.5,
        final=False,
        cancelled=cancelled,
        latency=1.0,
        confirmed=confirmed,
        confirm_latency=1.0 if confirmed else None,
    )


def test_the_confirmed_view_announces_an_event_when_it_is_confirmed_and_hides_the_rest():
    view = ConfirmedView()
    assert view.take("mic", body(1, "start", False)) == []
    assert view.take("mic", body(1, "end", False, cancelled=True)) == []  # never shown: never happened
    assert view.take("mic", body(2, "start", False)) == []
    assert view.take("mic", body(2, "update", True)) == [body(2, "start", True)]
    assert view.take("mic", body(2, "update", True)) == [body(2, "update", True)]
    assert view.take("other", body(2, "update", True)) == [body(2, "start", True)]  # another stream's event 2
    assert view.take("mic", body(2, "end", True)) == [body(2, "end", True)]
    assert view.take("mic", body(3, "end", True)) == [body(3, "start", True), body(3, "end", True)]
    view.reset()
    assert view.take("other", body(2, "end", True)) == [body(2, "start", True), body(2, "end", True)]


def test_the_demo_prints_no_cancelled_event_and_provisional_restores_every_report(run_demo_detect):
    def detect(*extra):
        result = run_demo_detect(flags=extra)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        return [line for line in lines if " start " in line], [line for line in lines if "cancelled" in line]

    starts, cancelled = detect()
    early_starts, early_cancelled = detect("--provisional")
    assert len(cancelled) == 0 and len(starts) >= 10
    assert len(early_cancelled) > len(cancelled) and len(early_starts) > len(starts)
