"""The learning-rate schedule (torch's LambdaLR of `Schedule`) against its formula, resumed with the same or another
length, and the weight average's buffers."""

import math

import pytest
import torch

from htsat_live.training.loop import (
    Schedule,
    schedule_steps,
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
    return optimizer, schedule_steps(optimizer, Schedule.planned(total, settings), settings.lr)


def run(optimizer, schedule, steps: int) -> list[float]:
    """The rate each of `steps` optimizer steps takes, the schedule stepped after each as in training."""
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return rates


@pytest.mark.parametrize("total", [1, 2, 7, 100, 2000])
@pytest.mark.parametrize(
    "settings",
    [
        TrainSettings(),
        TrainSettings(lr=3e-3, warmup_fraction=0.1, final_lr_fraction=0.05),
        TrainSettings(warmup_fraction=0.0),
    ],
)
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


def resumed_rates(schedule: Schedule, settings: TrainSettings, step: int, steps: int) -> list[float]:
    """The rates of `steps` steps of a run resumed at `step` as train() resumes one: a new optimizer whose state
    holds the last rate, and the schedule restarted at `step`."""
    optimizer = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=123.0)  # a stale rate: must be overridden
    return run(optimizer, schedule_steps(optimizer, schedule, settings.lr, step), steps)


def test_a_run_resumed_with_its_own_length_gets_the_uninterrupted_rates():
    settings = TrainSettings(warmup_fraction=0.1)
    uninterrupted = run(*optimizer_and_schedule(300, settings), 300)
    plan = Schedule.planned(300, settings)
    for step in (10, 29, 30, 120):  # in the warm-up, at its end, at the cosine's start, in the cosine
        assert plan.extended(step, 300) == plan
        assert resumed_rates(plan, settings, step, 300 - step) == uninterrupted[step:]


def test_a_run_resumed_for_more_steps_continues_its_rate_and_decays_to_the_floor():
    """Resumed at step 200 of 300 for 500 steps in all: the first rate after the resume is the one the
    uninterrupted run had at step 200 (the old code jumped to the 500-step curve's, 2.4x higher here), then
    the rest of the cosine runs down to the same floor at step 500."""
    settings = TrainSettings(warmup_fraction=0.1)
    uninterrupted = run(*optimizer_and_schedule(300, settings), 300)
    longer = Schedule.planned(300, settings).extended(200, 500)
    rates = resumed_rates(longer, settings, 200, 300)
    assert rates[0] == pytest.approx(uninterrupted[200], rel=1e-12)
    assert rates[0] < 0.5 * formula_rate(200, 500, settings)  # not the rate a 500-step run would have there
    assert all(a >= b for a, b in zip(rates, rates[1:])) and rates[0] > rates[150] > rates[-1]
    assert rates[-1] == pytest.approx(settings.lr * settings.final_lr_fraction, rel=1e-3)
    # the old run's last 100 steps of decay, stretched over 300: 150 steps after the resume, its step 250's rate
    assert rates[150] == pytest.approx(uninterrupted[250], rel=1e-9)


def test_a_finished_run_given_more_steps_stays_at_its_final_rate():
    settings = TrainSettings()
    uninterrupted = run(*optimizer_and_schedule(100, settings), 100)
    rates = resumed_rates(Schedule.planned(100, settings).extended(100, 150), settings, 100, 50)
    floor = settings.lr * settings.final_lr_fraction
    assert rates == pytest.approx([floor] * 50, rel=1e-12) and uninterrupted[-1] > floor


def test_a_run_resumed_in_its_warm_up_for_more_steps_warms_up_as_planned():
    settings = TrainSettings(warmup_fraction=0.1)  # 100 steps: warm-up of 10
    longer = Schedule.planned(100, settings).extended(5, 400)
    rates = resumed_rates(longer, settings, 5, 395)
    assert rates[:5] == pytest.approx([settings.lr * (step + 1) / 10 for step in range(5, 10)], rel=1e-12)
    expected = [formula_rate(step, 400, TrainSettings(warmup_fraction=10 / 400)) for step in range(10, 400)]
    assert rates[5:] == pytest.approx(expected, rel=1e-9)


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
