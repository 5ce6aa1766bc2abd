"""The bench's measuring helpers: memory high-water mark, the matmul peak probes (no share of peak above 100 %),
the flop count; its int8 row calibrated on the user's recordings."""

import re

import numpy as np
import pytest
import soundfile
import torch

from htsat_live.evaluation.model_bench import (
    OWN_CALIBRATION,
    Contender,
    Peak,
    matmul_peaks,
    openvino_matmul_rates,
    peak_mib,
    print_tables,
    window_gflop,
)


def test_peak_memory_sees_a_transient_allocation():
    def allocate():
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched, then freed
        return block.sum()

    peak = peak_mib(allocate)
    if peak is None:
        pytest.skip("no /proc/self/clear_refs here")
    assert 48 < peak < 256


def test_matmul_probe_gives_a_rate_for_every_number_type_from_torch_and_openvino():
    peaks = matmul_peaks(size=128, repeats=2)
    assert set(peaks) == {"fp32", "bf16", "int8"}
    assert all(peak.rate > 0.1 and peak.source in ("torch", "openvino") for peak in peaks.values())
    rates = openvino_matmul_rates(128, 2, threads=1)
    assert set(rates) == {"fp32", "bf16", "int8"} and all(rate > 0.1 for rate in rates.values())


def _share_column(printed: str) -> dict[str, float]:
    """contender -> its "% peak" (rows of the speed table only)."""
    shares = {}
    for line in printed.splitlines():
        match = re.match(r"(.{32}) +\d+ .* (\d+)% ", line)
        if match:
            shares[match[1].strip()] = float(match[2])
    return shares


def test_a_contender_faster_than_every_probe_raises_the_peak_to_its_own_rate(capsys):
    def contender(name, dtype, seconds):
        return Contender(name, dtype, build=lambda: None, times={1: [seconds] * 3})

    contenders = [contender("reference", "fp32", 0.5), contender("fast fp32", "fp32", 0.1)]
    contenders.append(contender("int8", "int8", 0.1))
    outputs = {c.name: np.zeros((1, 1024, 3), np.float32) for c in contenders}
    probes = {"fp32": Peak(50.0, "torch"), "bf16": Peak(80.0, "torch"), "int8": Peak(400.0, "openvino")}
    print_tables(contenders, outputs, [1], 10.0, probes, threads=2)  # 10 GFLOP in 0.1 s: 100 GFLOP/s
    printed = capsys.readouterr().out
    assert "fp32 100 GFLOP/s (fast fp32, faster than every probe)" in printed
    assert "int8 400 GOP/s (openvino)" in printed
    assert _share_column(printed) == {"reference": 20.0, "fast fp32": 100.0, "int8": 25.0}


@pytest.mark.timeout(600)
def test_bench_shares_of_peak_stay_within_100_and_own_calibration_has_a_row(tiny_checkpoint, tmp_path, capsys):
    from htsat_live.cli import main
    from htsat_live.model.audio import read_clip
    from htsat_live.model.embedded import DEMO_RECORDING

    demo = read_clip(DEMO_RECORDING)  # 60 s: the first 40 s calibrate, the last 20 s probe the drift
    (tmp_path / "calibration").mkdir()
    (tmp_path / "probes").mkdir()
    soundfile.write(tmp_path / "calibration" / "a.wav", demo[: 40 * 32000], 32000)
    soundfile.write(tmp_path / "probes" / "b.wav", demo[40 * 32000 :], 32000)
    arguments = ["--model", str(tiny_checkpoint), "--rounds", "1", "--batch", "1", "--only", "openvino"]
    arguments += ["--calibration", str(tmp_path / "calibration"), "--probe-audio", str(tmp_path / "probes")]
    assert main(["bench", *arguments]) == 0
    printed = capsys.readouterr().out
    assert "drift probes: 2 windows of 10 s" in printed
    shares = _share_column(printed)
    assert set(shares) == {
        "reference (official ops, eager)",
        "openvino fp32",
        "openvino bf16",
        "openvino int8",
        OWN_CALIBRATION,
    }
    assert all(0 <= share <= 100 for share in shares.values()), shares


def test_flop_count_of_the_full_size_model_is_the_known_one():
    from htsat_live.model.htsat import HTSAT, HTSATConfig

    # 12.0 GFLOP: performance.md's 14.1 less the official convolution STFT's 2.1 (ours is an FFT)
    assert window_gflop(HTSAT(HTSATConfig()).eval()) == pytest.approx(12.0, abs=0.1)


@pytest.mark.parametrize(
    "dtype, largest, mean, ok",
    [
        ("fp32", 5e-5, 1e-6, True),
        ("fp32", 2e-4, 1e-6, False),
        ("bf16", 4e-2, 1e-3, True),
        ("bf16", 4e-2, 3e-3, False),
        ("bf16", 6e-2, 1e-3, False),
        ("int8", 0.3, 4e-3, True),
        ("int8", 0.3, 6e-3, False),
    ],
)
def test_drift_budget_of_each_number_type(dtype, largest, mean, ok):
    from htsat_live.evaluation.model_bench import within_budget

    drift = np.full(10_000, mean)
    drift[0] = largest  # moves the mean by at most 3e-5
    assert within_budget(dtype, drift) == ok


@pytest.mark.skipif(torch.cuda.is_available(), reason="the GPU rows run where CUDA is present")
def test_bench_on_cuda_without_a_gpu_is_one_line_and_exit_2(capsys):
    from htsat_live.cli import main

    assert main(["bench", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--device cuda" in err and "no CUDA device" in err


def test_bench_times_an_ensemble_against_its_first_member(tiny_checkpoint, tmp_path, capsys):
    import re

    from htsat_live.cli import main

    second = tmp_path / "tiny_copy.ckpt"
    second.write_bytes(tiny_checkpoint.read_bytes())
    assert main(["bench", "--model", str(tiny_checkpoint), "--model", str(second), "--rounds", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("ensemble of 2 models") and "3 rounds" in lines[0]
    ensemble_ms, first_ms = (float(re.search(r"([\d.]+) ms per window", line)[1]) for line in lines[1:3])
    assert ensemble_ms > 0 and first_ms > 0 and float(lines[3].split()[1].rstrip("x")) > 0
    assert main(["bench", "--model", str(tiny_checkpoint), "--model", str(second), "--stream"]) == 2
