"""Sound event detection metrics, computed with the field's reference libraries.

- Event-based F1 per class and macro: psds_eval's `PSDSEval(dtc 0.5, gtc 0.5, cttc 0.3)` and
  `compute_macro_f_score`, the protocol of Table 3 of the HTS-AT paper (DESED).
- Collar-based event F1 between two event lists (sed_eval's `EventBasedMetrics`), used to
  compare streaming events with offline ones.
- Segment-based F1 on 1-s segments: sed_eval's `SegmentBasedMetrics`, each clip evaluated over
  its full duration from the metadata.
- PSDS1 and PSDS2 (the DCASE 2021+ settings) from per-clip score files: sed_scores_eval, which
  sweeps every threshold of the scores (psds_eval's own `psds` fails under numpy 2).

Event tables are TSV files with the columns filename, onset, offset, event_label (seconds);
metadata tables have filename, duration. A score file is `<clip stem>.tsv` with the columns
onset, offset and one column per class (one row per frame), as sed_scores_eval writes them.
"""

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from htsat_live.model.event_table import event_f1, labelled

SEGMENT_SECONDS = 1.0
# Collars of the collar-based event F1 (DCASE task 4 up to 2019).
EVENT_COLLAR = 0.2  # seconds, onsets and offsets
EVENT_OFFSET_FRACTION = 0.2  # offsets also within this fraction of the reference event's length


@dataclass(frozen=True)
class PSDSSetting:
    """One PSDS scenario: matching criteria of PSDSEval and weights of `psds`."""

    dtc: float
    gtc: float
    cttc: float | None
    alpha_ct: float
    alpha_st: float
    max_efpr: float


PSDS1 = PSDSSetting(dtc=0.7, gtc=0.7, cttc=None, alpha_ct=0.0, alpha_st=1.0, max_efpr=100.0)
PSDS2 = PSDSSetting(dtc=0.1, gtc=0.1, cttc=0.3, alpha_ct=0.5, alpha_st=1.0, max_efpr=100.0)


@dataclass(frozen=True)
class Evaluation:
    macro_f1: float  # event-based, psds_eval, fraction
    class_f1: dict[str, float]
    segment_f1: float  # segment-based micro F1 over all classes, 1-s segments
    segment_class_f1: dict[str, float]
    psds1: float | None = None
    psds2: float | None = None


def _sed_eval():
    """The sed_eval and dcase_util modules (dcase_util warns on import that pkg_resources is deprecated)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import dcase_util
        import sed_eval
    return dcase_util, sed_eval


def _clip_id(filename: str) -> str:
    """sed_scores_eval names a clip by its file name without the extension."""
    return Path(filename).stem


def segment_f1(
    ground_truth: pd.DataFrame, metadata: pd.DataFrame, detections: pd.DataFrame
) -> tuple[float, dict[str, float]]:
    """Micro and per-class segment-based F1 on 1-s segments (sed_eval)."""
    dcase_util, sed_eval = _sed_eval()
    reference, estimated = labelled(ground_truth), labelled(detections)
    labels = sorted(set(reference["event_label"]) | set(estimated["event_label"]))
    metrics = sed_eval.sound_event.SegmentBasedMetrics(event_label_list=labels, time_resolution=SEGMENT_SECONDS)
    reference_by_file = dict(tuple(reference.groupby("filename")))
    estimated_by_file = dict(tuple(estimated.groupby("filename")))
    empty = reference.iloc[:0]
    for filename, duration in zip(metadata["filename"], metadata["duration"]):
        metrics.evaluate(
            reference_event_list=dcase_util.containers.MetaDataContainer(
                reference_by_file.get(filename, empty).to_dict("records")
            ),
            estimated_event_list=dcase_util.containers.MetaDataContainer(
                estimated_by_file.get(filename, empty).to_dict("records")
            ),
            evaluated_length_seconds=float(duration),
        )
    with warnings.catch_warnings():  # sed_eval averages empty slices for classes one side lacks
        warnings.simplefilter("ignore", RuntimeWarning)
        results = metrics.results()
    truth_labels = set(reference["event_label"])
    # A class of the ground truth that nothing detected scores 0, not NaN (sed_eval's precision is 0/0 there).
    per_class = {
        label: _zero_if_missed(scores["f_measure"]["f_measure"], label in truth_labels)
        for label, scores in results["class_wise"].items()
    }
    return _zero_if_missed(results["overall"]["f_measure"]["f_measure"], bool(truth_labels)), per_class


def _zero_if_missed(value: float, expected: bool) -> float:
    value = float(value)
    return 0.0 if expected and math.isnan(value) else value


def event_based_f1(
    reference: dict[str, list[tuple[float, float, str]]],
    estimated: dict[str, list[tuple[float, float, str]]],
    labels: list[str],
) -> float:
    """Micro event-based F1 of `estimated` against `reference` events, clip by clip (sed_eval, the DCASE
    task 4 collars: onsets within 200 ms, offsets within max(200 ms, 20 % of the event)); nan when
    neither side holds an event. Both map a clip name to its (onset s, offset s, label) events."""
    dcase_util, sed_eval = _sed_eval()
    metrics = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=labels, t_collar=EVENT_COLLAR, percentage_of_length=EVENT_OFFSET_FRACTION
    )

    def container(clip: str, events):
        return dcase_util.containers.MetaDataContainer(
            [
                {"filename": clip, "onset": onset, "offset": offset, "event_label": label}
                for onset, offset, label in events
            ]
        )

    for clip in sorted(set(reference) | set(estimated)):
        metrics.evaluate(
            reference_event_list=container(clip, reference.get(clip, [])),
            estimated_event_list=container(clip, estimated.get(clip, [])),
        )
    with warnings.catch_warnings():  # sed_eval averages empty slices for classes one side lacks
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(metrics.results()["overall"]["f_measure"]["f_measure"])


def read_scores(directory: str | Path, filenames: list[str]) -> dict[str, pd.DataFrame]:
    """The score table of every clip in `filenames`, keyed by clip id (`<stem>.tsv` in `directory`)."""
    from sed_scores_eval.base_modules.scores import validate_score_dataframe

    directory = Path(directory)
    scores = {}
    for filename in filenames:
        path = directory / f"{_clip_id(filename)}.tsv"
        if not path.is_file():
            raise ValueError(f"no score file {path} for the clip {filename}")
        table = pd.read_csv(path, sep="\t")
        try:
            validate_score_dataframe(table)
        except (ValueError, AssertionError) as error:
            raise ValueError(f"{path}: not a score table (onset, offset, one column per class): {error}") from error
        scores[_clip_id(filename)] = table
    return scores


def psds(
    ground_truth: pd.DataFrame, metadata: pd.DataFrame, scores: dict[str, pd.DataFrame], setting: PSDSSetting
) -> float:
    """PSDS of one scenario from score tables (sed_scores_eval, over every threshold of the scores)."""
    from sed_scores_eval import intersection_based

    reference = {_clip_id(filename): [] for filename in metadata["filename"]}
    for filename, onset, offset, label in labelled(ground_truth).itertuples(index=False):
        reference[_clip_id(filename)].append((float(onset), float(offset), label))
    durations = {
        _clip_id(filename): float(duration) for filename, duration in zip(metadata["filename"], metadata["duration"])
    }
    value, *_ = intersection_based.psds(
        scores=scores,
        ground_truth=reference,
        audio_durations=durations,
        dtc_threshold=setting.dtc,
        gtc_threshold=setting.gtc,
        cttc_threshold=setting.cttc,
        alpha_ct=setting.alpha_ct,
        alpha_st=setting.alpha_st,
        max_efpr=setting.max_efpr,
    )
    return float(value)


def evaluate(
    ground_truth: pd.DataFrame,
    metadata: pd.DataFrame,
    detections: pd.DataFrame,
    scores: dict[str, pd.DataFrame] | None = None,
) -> Evaluation:
    macro, per_class = event_f1(ground_truth, metadata, detections)
    segment, segment_per_class = segment_f1(ground_truth, metadata, detections)
    psds1 = psds2 = None
    if scores is not None:
        psds1 = psds(ground_truth, metadata, scores, PSDS1)
        psds2 = psds(ground_truth, metadata, scores, PSDS2)
    return Evaluation(macro, per_class, segment, segment_per_class, psds1, psds2)
