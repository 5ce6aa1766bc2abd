"""Training and validation splits of a clip set (`htsat_live.model.clip_set`).

- A layout that names its splits (Speech Commands' lists) is used as it is.
- Otherwise a stratified hold-out: per class, `share` of its clips (at least one) for validation.
- k-fold cross-validation: ESC-50's own folds, else scikit-learn's StratifiedKFold.

A multi-label clip is stratified by its rarest label. A class with too few clips for the split asked is a
ClipSetError naming it (`require_split` tells before any split is drawn).
"""

import numpy as np

from htsat_live.model.clip_set import ClipSet, ClipSetError

HOLDOUT_SHARE = 0.15


def strata(clip_set: ClipSet) -> np.ndarray:
    """Per clip, the index of its rarest label: [N]."""
    targets = clip_set.targets()  # [N, C]
    counts = targets.sum(axis=0)
    return np.where(targets > 0, counts[None], np.inf).argmin(axis=1)


def require_clips(clip_set: ClipSet, needed: int, what: str) -> None:
    counts = clip_set.targets().sum(axis=0).astype(int)
    short = [f"{label} ({n})" for label, n in zip(clip_set.labels, counts) if n < needed]
    if short:
        raise ClipSetError(
            f"{clip_set.root}: {what} needs at least {needed} clips of every class; too few: {', '.join(short)}"
        )


def require_split(clip_set: ClipSet, folds: int | None = None, share: float = HOLDOUT_SHARE) -> None:
    """A ClipSetError saying what is missing when `clip_set` cannot be split into `folds` folds (None: the
    layout's own split, or a hold-out of `share`)."""
    if folds is None:
        if clip_set.layout == "speech_commands":
            train, val = (sum(clip.split == name for clip in clip_set.clips) for name in ("train", "val"))
            if not train or not val:
                raise ClipSetError(
                    f"{clip_set.root}: validation_list.txt leaves {train} training and {val} validation clips"
                )
        else:
            require_clips(clip_set, 2, f"a {share:.0%} hold-out")
    elif folds < 2:
        raise ClipSetError(f"--folds must be at least 2, got {folds}")
    elif clip_set.layout == "esc50":
        numbers = sorted({clip.fold for clip in clip_set.clips})
        if len(numbers) != folds:
            raise ClipSetError(f"{clip_set.root}: esc50.csv has {len(numbers)} folds ({numbers}), --folds asks {folds}")
    else:
        require_clips(clip_set, folds, f"{folds}-fold cross-validation")


def holdout_split(clip_set: ClipSet, share: float = HOLDOUT_SHARE, seed: int = 0) -> tuple[list[int], list[int]]:
    """(train, val) clip indices: the layout's own split where it has one, else a stratified hold-out of
    `share` of each class (at least one clip)."""
    require_split(clip_set, share=share)
    if clip_set.layout == "speech_commands":
        return (
            [i for i, clip in enumerate(clip_set.clips) if clip.split == "train"],
            [i for i, clip in enumerate(clip_set.clips) if clip.split == "val"],
        )
    rng = np.random.default_rng(seed)
    stratum = strata(clip_set)
    val = []
    for c in range(len(clip_set.labels)):
        members = rng.permutation(np.flatnonzero(stratum == c))
        if len(members) >= 2:
            val += members[: max(1, round(share * len(members)))].tolist()
    val_set = set(val)
    return [i for i in range(len(clip_set.clips)) if i not in val_set], sorted(val)


def fold_splits(clip_set: ClipSet, folds: int, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """k (train, val) index pairs: ESC-50's folds (there must be `folds` of them), else stratified folds."""
    require_split(clip_set, folds)
    if clip_set.layout == "esc50":
        numbers = sorted({clip.fold for clip in clip_set.clips})
        return [
            (
                [i for i, clip in enumerate(clip_set.clips) if clip.fold != number],
                [i for i, clip in enumerate(clip_set.clips) if clip.fold == number],
            )
            for number in numbers
        ]
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    index = np.arange(len(clip_set.clips))
    return [(train.tolist(), val.tolist()) for train, val in splitter.split(index, strata(clip_set))]


def draw_splits(
    clip_set: ClipSet, val_set: ClipSet | None, folds: int | None, seed: int
) -> list[tuple[list[int], list[int]]]:
    """The (train, val) clip indices of each model to train: `folds` folds, or every clip of `clip_set` against
    every clip of `val_set`, or the hold-out."""
    if folds:
        return fold_splits(clip_set, folds, seed)
    if val_set is None:
        return [holdout_split(clip_set, HOLDOUT_SHARE, seed)]
    return [(list(range(len(clip_set.clips))), list(range(len(val_set.clips))))]
