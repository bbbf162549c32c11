"""Local mode's CPU rank layout: single-thread ranks only where they measured faster (2 cores),
the optimizer step's sequences kept (split evenly over the ranks), one thread per rank, and the
spec the trainer reads saying the same."""

from __future__ import annotations

import pytest
from recipe_api.launch import trainer_launch
from recipe_api.v1alpha1 import RecipeTrainingJobSpec
from recipe_api.validation import gradient_accumulation_steps
from recipe_trainer.commands.local import _apply_cpu_layout
from recipe_trainer.local.rank_layout import cpu_layout

from .conftest import job_spec, trainer_config


@pytest.mark.parametrize(
    ("cpus", "micro", "global_batch", "ranks", "micro_per_rank"),
    [
        (2, 2, 2, 2, 1),  # the demo: 2 sequences per step -> one per rank
        (2, 4, 8, 2, 4),  # 4 x accumulation 2 -> each rank 4 x accumulation 1
        (2, 4, 12, 2, 3),  # 6 per rank do not fill micro-batches of 4: micro-batches of 3
        (2, 1, 3, 1, 1),  # an odd step does not split: one rank
        (1, 4, 8, 1, 4),  # one core: nothing to split
        (16, 4, 64, 1, 4),  # not measured: one rank using every core
    ],
)
def test_layout_per_core_count_and_step(cpus, micro, global_batch, ranks, micro_per_rank):
    chosen = cpu_layout(cpus, micro, global_batch)
    assert (chosen.ranks, chosen.micro_batch_size, chosen.global_batch_size) == (
        ranks,
        micro_per_rank,
        global_batch,
    )
    assert global_batch % (chosen.ranks * chosen.micro_batch_size) == 0  # whole micro-batches on every rank
    assert chosen.reason


@pytest.mark.parametrize(("micro", "accumulation"), [(2, 2), (2, 3), (4, 1)])
def test_local_mode_writes_the_split_into_the_resolved_spec(micro, accumulation, tmp_path):
    training = {"microBatchSize": micro, "gradientAccumulationSteps": accumulation}
    spec = RecipeTrainingJobSpec.model_validate(job_spec(training=training))
    ranks, reason = _apply_cpu_layout(spec, cpus=2)
    assert ranks == 2 and "single-thread" in reason
    t = spec.training
    # the trainer derives accumulation from the global batch: the step keeps its sequences
    assert t.micro_batch_size * gradient_accumulation_steps(spec, ranks) * ranks == micro * accumulation
    config = trainer_config(tmp_path, training=training)
    launch = trainer_launch(config, tmp_path / "c.yaml", master_port=1, processes=ranks, on_gpu=False, cpus=2)
    assert launch.env["OMP_NUM_THREADS"] == "1"  # one thread per rank: the ranks share 2 cores


def test_a_step_that_does_not_split_stays_one_rank_and_untouched():
    odd = RecipeTrainingJobSpec.model_validate(
        job_spec(training={"microBatchSize": 3, "gradientAccumulationSteps": 1})
    )
    assert _apply_cpu_layout(odd, cpus=2)[0] == 1
    assert odd.training.global_batch_size is None and odd.training.micro_batch_size == 3  # untouched
