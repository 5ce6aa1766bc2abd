"""The bench's measuring helpers: memory high-water mark, the matmul peak probe, the flop count."""

import numpy as np
import pytest
import torch

from htsat_live.evaluation.model_bench import matmul_peaks, peak_mib, window_gflop


def test_peak_memory_sees_a_transient_allocation():
    def allocate():
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched, then freed
        return block.sum()

    peak = peak_mib(allocate)
    if peak is None:
        pytest.skip("no /proc/self/clear_refs here")
    assert 48 < peak < 256


def test_matmul_probe_gives_a_rate_for_every_number_type():
    peaks = matmul_peaks(size=128, repeats=2)
    assert set(peaks) == {"fp32", "bf16", "int8"}
    assert all(rate > 0.1 for rate in peaks.values())


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
