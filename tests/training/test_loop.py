"""The learning-rate schedule (torch's LinearLR + CosineAnnealingLR) against its formula, and the weight average's
buffers."""

import math

import pytest
import torch

from htsat_live.training.loop import (
    learning_rate_schedule,
    replay_schedule,
    weight_average,
)
from htsat_live.training.settings import TrainSettings


def formula_rate(step: int, total: int, settings: TrainSettings) -> float:
    """The schedule as a formula: linear warm-up to lr over max(1, int(warmup_fraction * total)) steps, then
    cosine decay from lr towards lr * final_lr_fraction."""
    warmup = max(1, int(settings.warmup_fraction * total))
    if step < warmup:
        return settings.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    floor = settings.lr * settings.final_lr_fraction
    return floor + (settings.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def optimizer_and_schedule(total: int, settings: TrainSettings):
    optimizer = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=settings.lr)
    return optimizer, learning_rate_schedule(optimizer, total, settings)


def run(optimizer, schedule, steps: int) -> list[float]:
    """The rate each of `steps` optimizer steps takes, the schedule stepped after each as in training."""
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return rates


@pytest.mark.parametrize("total", [1, 2, 7, 100, 2000])
@pytest.mark.parametrize("settings", [TrainSettings(), TrainSettings(lr=3e-3, warmup_fraction=0.1, final_lr_fraction=0.05),
                                      TrainSettings(warmup_fraction=0.0)])
def test_the_schedule_gives_the_formula_rates_over_a_run(total, settings):
    rates = run(*optimizer_and_schedule(total, settings), total)
    expected = [formula_rate(step, total, settings) for step in range(total)]
    assert rates == pytest.approx(expected, rel=1e-9)


def test_a_restored_schedule_continues_where_it_stopped():
    settings = TrainSettings(warmup_fraction=0.1)
    optimizer, schedule = optimizer_and_schedule(300, settings)
    first = run(optimizer, schedule, 120)
    saved_optimizer, saved_schedule = optimizer.state_dict(), schedule.state_dict()
    rest = run(optimizer, schedule, 180)
    optimizer, schedule = optimizer_and_schedule(300, settings)
    optimizer.load_state_dict(saved_optimizer)
    schedule.load_state_dict(saved_schedule)
    assert run(optimizer, schedule, 180) == rest and len(first + rest) == 300


def test_a_replayed_schedule_joins_a_longer_run_at_the_step_reached():
    settings = TrainSettings()
    optimizer, schedule = optimizer_and_schedule(100, settings)
    run(optimizer, schedule, 100)  # a finished run of 100 steps, now resumed for 250
    longer = learning_rate_schedule(optimizer, 250, settings)
    replay_schedule(longer, 100)
    rates = run(optimizer, longer, 150)
    assert rates == pytest.approx([formula_rate(step, 250, settings) for step in range(100, 250)], rel=1e-9)


def test_the_weight_average_copies_the_buffers_of_the_trained_model():
    trained = torch.nn.BatchNorm1d(3)
    average = weight_average(trained, decay=0.99)
    with torch.no_grad():
        trained.weight.fill_(2.0)
        trained.running_mean.fill_(5.0)
    trained.num_batches_tracked.fill_(7)
    average.update_parameters(trained)
    assert torch.equal(average.module.running_mean, trained.running_mean)  # copied, not averaged
    assert int(average.module.num_batches_tracked) == 7
    torch.testing.assert_close(average.module.weight, torch.full((3,), 1.0 + 0.9))  # averaged: 90 % of the way
