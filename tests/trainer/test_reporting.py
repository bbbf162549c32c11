"""One record per event reaches every sink: the run log (the names its readers use), the
Prometheus metrics and the webhook, each through the one `Reporter` the recipe calls."""

from __future__ import annotations

import math

from recipe_api import contract
from recipe_api.trainer_config import TerminationSummary
from recipe_trainer.run_log import RunLogWriter, read_run_log, step_losses
from recipe_trainer.training.metrics import TrainerMetrics
from recipe_trainer.training.notifications import Notifier
from recipe_trainer.training.records import (
    Checkpointed,
    Crashed,
    Finished,
    SkippedStep,
    Started,
    Stepped,
    Validated,
)
from recipe_trainer.training.reporting import NotifierSink, Reporter, RunLogSink

from .test_notifications import SLACK_PATH, chat  # noqa: F401 (the fixture)

RECORDS = [
    Started(total_steps=4, step=0, epoch=0.0, resumed_from_step=None, world_size=2, micro_batches_per_epoch=8),
    Stepped(
        step=1, epoch=0.25, loss=2.5, objective=2.6, learning_rate=1e-3, grad_norm=None, tokens=300, examples=4,
        seconds=2.0, noise_sigma=None, packing_efficiency=0.9, curriculum_stage=0, quality_threshold=0.3,
    ),
    SkippedStep(step=2),
    Validated(step=2, validation_loss=2.0, perplexity=math.exp(2.0), best_loss=2.0, improved=True,
              quality_scores={"overall": 0.6}),
    Checkpointed(step=2, path="/c/step-2", seconds=1.5, bytes=1000, best=True),
    Finished(TerminationSummary(step=2)),
]  # fmt: skip


def test_every_sink_gets_each_record_once(tmp_path, chat):  # noqa: F811 (the fixture)
    server = chat()
    metrics = TrainerMetrics()
    reporter = Reporter(
        [metrics, NotifierSink(Notifier("pasta", server.url(SLACK_PATH))), RunLogSink(RunLogWriter(tmp_path))]
    )
    for record in [*RECORDS, Crashed("boom", 2)]:
        reporter.report(record)

    events = read_run_log(tmp_path)
    assert [e["event"] for e in events] == ["start", "step", "step", "validation", "checkpoint", "end"]
    assert events[0]["world_size"] == 2 and events[0]["resumed_from_step"] is None
    assert step_losses(events) == {1: 2.5, 2: None}
    assert events[1]["tokens_per_second"] == 150 and events[2]["skipped"] is True
    assert events[3]["best"] is True and events[3]["quality"] == 0.6
    assert events[5]["step"] == 2

    exposition = metrics.exposition().decode()
    assert f"{contract.NONFINITE_STEPS_TOTAL} 1.0" in exposition
    assert f"{contract.LAST_CHECKPOINT_STEP} 2.0" in exposition
    assert f"{contract.TOKENS_PER_SECOND} 150.0" in exposition

    texts = [body["text"] for _path, body in server.received]
    assert len(texts) == 4  # start, validation, finish, crash
    assert "4 steps planned" in texts[0] and "validation loss 2.0000" in texts[1]
    assert "finished at step 2" in texts[2] and "crashed at step 2: boom" in texts[3]
