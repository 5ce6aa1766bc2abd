"""Training and validation splits of a clip set (`htsat_live.model.clip_set`).

- A layout that names its splits (Speech Commands' lists) is used as it is.
- Otherwise a stratified hold-out: per class, `share` of its clips (at least one) for validation.
- k-fold cross-validation: ESC-50's own folds, else scikit-learn's StratifiedKFold.

A multi-label clip is stratified by its rarest label. A class with too few clips for the split asked is a
ClipSetError naming it.
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
        raise ClipSetError(f"{clip_set.root}: {what} needs at least {needed} clips of every class; too few: {', '.join(short)}")


def holdout_split(clip_set: ClipSet, share: float = HOLDOUT_SHARE, seed: int = 0) -> tuple[list[int], list[int]]:
    """(train, val) clip indices: the layout's own split where it has one, else a stratified hold-out of
    `share` of each class (at least one clip)."""
    if clip_set.layout == "speech_commands":
        train = [i for i, clip in enumerate(clip_set.clips) if clip.split == "train"]
        val = [i for i, clip in enumerate(clip_set.clips) if clip.split == "val"]
        if not train or not val:
            raise ClipSetError(f"{clip_set.root}: validation_list.txt leaves {len(train)} training and {len(val)} validation clips")
        return train, val
    require_clips(clip_set, 2, f"a {share:.0%} hold-out")
    rng = np.random.default_rng(seed)
    stratum = strata(clip_set)
    val = []
    for c in range(len(clip_set.labels)):
        members = rng.permutation(np.flatnonzero(stratum == c))
        if len(members) >= 2:
            val += members[:max(1, round(share * len(members)))].tolist()
    val_set = set(val)
    return [i for i in range(len(clip_set.clips)) if i not in val_set], sorted(val)


def fold_splits(clip_set: ClipSet, folds: int, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """k (train, val) index pairs: ESC-50's folds (there must be `folds` of them), else stratified folds."""
    if folds < 2:
        raise ClipSetError(f"--folds must be at least 2, got {folds}")
    if clip_set.layout == "esc50":
        numbers = sorted({clip.fold for clip in clip_set.clips})
        if len(numbers) != folds:
            raise ClipSetError(f"{clip_set.root}: esc50.csv has {len(numbers)} folds ({numbers}), --folds asks {folds}")
        return [([i for i, clip in enumerate(clip_set.clips) if clip.fold != number],
                 [i for i, clip in enumerate(clip_set.clips) if clip.fold == number]) for number in numbers]
    from sklearn.model_selection import StratifiedKFold

    require_clips(clip_set, folds, f"{folds}-fold cross-validation")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    index = np.arange(len(clip_set.clips))
    return [(train.tolist(), val.tolist()) for train, val in splitter.split(index, strata(clip_set))]
