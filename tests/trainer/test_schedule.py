import math

import pytest
import torch
from recipe_api.v1alpha1 import SchedulerSpec
from recipe_trainer.training.schedule import LearningRateSchedule

PEAK = 1e-3
LOW = 1e-5


def _spec(**overrides) -> SchedulerSpec:
    fields = {"warmup_steps": 10, "first_cycle_steps": 100, "cycle_multiplier": 2.0, "min_learning_rate": LOW}
    return SchedulerSpec(**(fields | overrides))


def _sgdr_closed_form(step: int, warmup: int, first: int, mult: float) -> float:
    """SGDR (Loshchilov & Hutter) with geometric cycles, cycle index from the logarithm."""
    if step < warmup:
        return PEAK * step / warmup
    s = step - warmup
    if mult == 1.0:
        cycle, start = s // first, (s // first) * first
    else:
        cycle = math.floor(math.log(1 + s * (mult - 1) / first, mult) + 1e-12)
        start = first * (mult**cycle - 1) / (mult - 1)
    length = first * mult**cycle
    return LOW + (PEAK - LOW) * 0.5 * (1 + math.cos(math.pi * (s - start) / length))


@pytest.mark.parametrize("mult", [1.0, 1.5, 2.0])
def test_cosine_restarts_follow_the_closed_form_at_every_step(mult):
    schedule = LearningRateSchedule(PEAK, _spec(cycle_multiplier=mult))
    for step in range(0, 1600):
        assert schedule.lr(step) == pytest.approx(_sgdr_closed_form(step, 10, 100, mult), rel=1e-9, abs=1e-15)


def test_warmup_rises_linearly_from_zero_and_each_cycle_restarts_at_the_peak():
    schedule = LearningRateSchedule(PEAK, _spec())
    assert schedule.lr(0) == 0.0
    assert schedule.lr(5) == pytest.approx(PEAK / 2)
    # cycles of 100, 200, 400 steps start 10, 110, 310, 710 steps in
    for cycle_start, length in [(10, 100), (110, 200), (310, 400), (710, 800)]:
        assert schedule.lr(cycle_start) == pytest.approx(PEAK)
        assert schedule.lr(cycle_start + length // 2) == pytest.approx((PEAK + LOW) / 2)
        last = schedule.lr(cycle_start + length - 1)
        assert LOW < last < LOW + (PEAK - LOW) * 0.5 * (1 - math.cos(math.pi / length)) + 1e-12


@pytest.mark.parametrize(
    ("kind", "middle"), [("cosine", (PEAK + LOW) / 2), ("linear", (PEAK + LOW) / 2), ("constant", PEAK)]
)
def test_single_decays_reach_the_minimum_at_the_last_step(kind, middle):
    schedule = LearningRateSchedule(PEAK, _spec(type=kind), total_steps=210)
    assert schedule.lr(10) == pytest.approx(PEAK)
    assert schedule.lr(110) == pytest.approx(middle)
    assert schedule.lr(210) == pytest.approx(PEAK if kind == "constant" else LOW)
    assert schedule.lr(500) == pytest.approx(PEAK if kind == "constant" else LOW)


def test_cosine_quarter_point_is_not_linear():
    cosine = LearningRateSchedule(PEAK, _spec(type="cosine"), total_steps=210)
    linear = LearningRateSchedule(PEAK, _spec(type="linear"), total_steps=210)
    quarter = LOW + (PEAK - LOW) * 0.5 * (1 + math.cos(math.pi / 4))
    assert cosine.lr(60) == pytest.approx(quarter)
    assert linear.lr(60) == pytest.approx(LOW + (PEAK - LOW) * 0.75)


def test_decays_without_a_total_step_count_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="maxSteps"):
        LearningRateSchedule(PEAK, _spec(type="cosine"))


def test_lambda_lr_and_apply_drive_the_optimizer_with_the_same_rates():
    schedule = LearningRateSchedule(PEAK, _spec(warmup_steps=3, first_cycle_steps=4))
    weight = torch.nn.Parameter(torch.zeros(2))
    by_lambda = torch.optim.SGD([weight], lr=PEAK)
    by_apply = torch.optim.SGD([weight], lr=123.0)
    scheduler = schedule.lambda_lr(by_lambda)
    for step in range(20):
        assert schedule.apply(by_apply, step) == by_apply.param_groups[0]["lr"]
        assert by_lambda.param_groups[0]["lr"] == pytest.approx(by_apply.param_groups[0]["lr"])
        by_lambda.step()
        scheduler.step()


def test_null_warmup_and_cycle_follow_the_run_length():
    """The API's defaults: 5% warmup, then two cosine cycles (the second cycleMultiplier times the
    first) ending at the last step, so a 60-step run and a 60,000-step run both reach the peak."""
    for total in (60, 60_000):
        spec = SchedulerSpec(warmup_steps=None, first_cycle_steps=None, min_learning_rate=LOW)
        schedule = LearningRateSchedule(PEAK, spec, total_steps=total)
        warmup, first = round(0.05 * total), math.ceil((total - round(0.05 * total)) / 3)
        assert (schedule.warmup_steps, schedule.first_cycle_steps) == (warmup, first)
        assert schedule.lr(warmup) == pytest.approx(PEAK)
        assert schedule.lr(warmup + first) == pytest.approx(PEAK), "the warm restart"
        assert schedule.lr(total - 1) < 0.02 * PEAK, "the second cycle ends with the run"
    with pytest.raises(ValueError, match="total number of optimizer steps"):
        LearningRateSchedule(PEAK, SchedulerSpec())
