"""`train` refuses what it cannot use in one line, exit 2, before any work: an output folder it cannot write
(a path under a file, a file, a read-only mount), a file given as --clips, clips of one class only."""

import contextlib
import io
from pathlib import Path

import numpy as np
import soundfile as sf

from htsat_live.cli import main


def htsat_live(*args: str) -> tuple[int, str, str]:
    """The command run in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def one_class(root: Path, name: str = "Dog", count: int = 4) -> Path:
    (root / name).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        sf.write(str(root / name / f"{i}.wav"), 0.1 * rng.standard_normal(8000).astype(np.float32), 32000)
    return root


def test_an_out_folder_that_cannot_be_written_is_one_line_before_any_work(tmp_path, read_only_mount):
    clips = one_class(tmp_path / "clips")
    one_class(clips, "Cat")
    plain = tmp_path / "plain"
    plain.write_text("x")
    for out, reason in (
        (plain, "it is a file, not a folder"),
        (plain / "run", f"{plain} is a file, not a folder"),
        (read_only_mount / "run", "read-only file system"),
    ):
        for data in (["--clips", str(clips)], ["--train-dir", str(clips), "--val-dir", str(clips)]):
            code, out_text, err = htsat_live("train", *data, "--out", str(out))
            assert code == 2 and out_text == "", err
            assert err.strip().splitlines() == [f"train: --out: cannot write to {out}: {reason}"]


def test_a_file_as_clips_is_not_called_missing(tmp_path):
    wav = one_class(tmp_path / "clips") / "Dog" / "0.wav"
    code, _, err = htsat_live("train", "--clips", str(wav), "--out", str(tmp_path / "run"))
    assert code == 2 and "no such" not in err
    assert err.strip().splitlines() == [
        f"train: {wav}: a file, not a folder of clips or a CSV file (DATA/<class>/*.wav, ESC-50, Speech Commands, "
        "or a CSV of filename, labels)"
    ]
    code, _, err = htsat_live("train", "--clips", str(tmp_path / "absent"), "--out", str(tmp_path / "run"))
    assert code == 2 and err.strip() == f"train: {tmp_path / 'absent'}: no such folder or CSV file"


def test_clips_of_one_class_are_refused_naming_it_and_the_way_to_add_a_background_class(tmp_path):
    clips = one_class(tmp_path / "clips")
    code, out, err = htsat_live("train", "--clips", str(clips), "--out", str(tmp_path / "run"))
    assert code == 2 and "accuracy" not in out
    assert err.strip().splitlines() == [
        f"train: {clips}: one class only (Dog); a classifier learns nothing from it: add a background class, "
        f"e.g. a folder {clips / 'background'} of clips without Dog"
    ]
    assert not (tmp_path / "run").exists()
