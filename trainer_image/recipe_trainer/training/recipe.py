"""The training recipe: the one place the training loop runs (torchtune's recipe shape).

    recipe = TrainingRecipe(config)          # TrainerConfig: the validated spec + runtime dirs
    recipe.setup()                           # distributed, model, data, engine, resume
    summary = recipe.train()                 # steps, validation, checkpoints, early stopping
    recipe.cleanup()

One optimizer step = `gradient_accumulation_steps` micro-batches on every rank. How the pieces
meet, and why:

* Loss: label-smoothed cross-entropy as a (sum, tokens) pair. The token count of the whole step,
  over all micro-batches and ranks, is all-reduced *before* the backward passes, and each
  micro-batch backpropagates `sum * world_size / step_tokens`: after DeepSpeed's averaging over
  ranks, every real target token of the step weighs the same, however packing distributed them.
* Gradient noise: a pre-step hook on the torch optimizer DeepSpeed steps adds noise scaled to the
  RMS of the gradient it is about to apply: after accumulation, the all-reduce and clipping, so it
  can never swamp the gradient (`gradient_noise`). ZeRO 1/2 shards get their own seed (seed + rank)
  and the RMS is summed over ranks; no DeepSpeed private buffer is touched.
* Training loss: the logs, progress bar, metrics and curves show plain cross-entropy per target
  token, on the same footing as the validation loss; the label-smoothed objective that is optimised
  is reported beside it as `objective`.
* Precision (`precision`): bf16 on CPU is autocast around the forward passes (training,
  validation, generation); weights, optimizer state, the loss and checkpoints stay fp32, so a
  checkpoint resumes in either precision.
* Learning rate: `schedule.lr(step)` set on the optimizer before each step (no DeepSpeed scheduler).
* Non-finite loss: every micro-batch's loss is checked on all ranks; a bad one backpropagates zeros
  instead and the step runs with learning rate 0, so the weights do not move; the step is counted
  (metrics, log) and K bad steps in a row abort with a reason.
* Exact resume: a checkpoint holds the optimizer state, the data position, the noise generators
  and every rank's RNG states, all taken at a step boundary; a resumed run repeats the losses of an
  uninterrupted one (tests/trainer/test_resume.py).
* Stop requests (SIGINT from Ctrl-C in local mode, SIGTERM on pod preemption) are honoured at the
  next step boundary, agreed on by all ranks: checkpoint, then exit non-zero (the job is not done).

Every start, step, validation, checkpoint and end is one record handed to the `reporting.Reporter`:
rank 0's metrics endpoint, notifications and run log (`run_log`, which the local progress bar, the
curves and the resume test read) are its sinks.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import time
from pathlib import Path
from typing import Any

import deepspeed
import torch
from recipe_api.contract import checkpoint_step_dir
from recipe_api.status import Evaluation
from recipe_api.trainer_config import TerminationSummary, TrainerConfig
from recipe_api.validation import gradient_accumulation_steps

from .. import run_layout
from ..checkpoint_layout import read_trainer_state
from ..data.pipeline import TrainingData, tokenizer_training_corpus
from ..inference import generate_recipes
from ..losses import plain_cross_entropy_sum
from ..model import decoder_start_token_id, load_model, packing_plan, write_scratch_base
from ..quality import score_samples
from ..set_diversity import set_diversity
from .checkpointing import (
    CheckpointWriter,
    agreed_checkpoint,
    find_resume_checkpoint,
    load_engine_state,
    load_rank_state,
)
from .deepspeed_config import build_deepspeed_config
from .forward import batch_loss, enable_segment_attention
from .gradient_noise import GradientNoise, innermost_torch_optimizer, install_noise_hook
from .metrics import perplexity
from .position import EarlyStopping, TrainingPosition
from .precision import for_this_machine, resume_note
from .ranks import Ranks
from .records import Checkpointed, Finished, SkippedStep, Started, Stepped, Validated
from .reporting import Reporter
from .rng import capture_rng_state, restore_rng_state, seed_everything
from .schedule import LearningRateSchedule

log = logging.getLogger("recipe_trainer")

MAX_NONFINITE_STEPS_IN_A_ROW = 5


class TrainingDiverged(RuntimeError):
    """K optimizer steps in a row had a NaN or infinite loss."""


class StopRequested(Exception):
    """A signal asked the run to stop; a checkpoint was written."""

    def __init__(self, signum: int, step: int):
        self.signum, self.step = signum, step
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step} after saving a checkpoint")


class TrainingRecipe:
    def __init__(self, config: TrainerConfig, resume_from: str | None = None):
        self.config = config
        self.spec = config.spec
        self.resume_from = resume_from
        self.run_dir = Path(config.runtime.run_dir)
        self.checkpoint_dir = Path(config.runtime.checkpoint_dir)
        self.progress = TrainingPosition()
        self.early_stopping = EarlyStopping(
            self.spec.validation.early_stopping.patience, self.spec.validation.early_stopping.min_delta
        )
        self.reporter = Reporter()  # no sinks until setup has started reporting
        self.stopped_early = False
        self.resumed_from_step: int | None = None
        self._nonfinite_in_a_row = 0
        self._batches = None  # the current epoch's micro-batch iterator
        self._epoch_ended = False
        self._diversity: dict = {}  # the latest validation samples' diversity vs their references

    # ------------------------------------------------------------------ setup

    def setup(self) -> None:
        if self.spec.deepspeed.zero_stage == 3:  # partitioned weights: no noise term, no save_pretrained
            raise ValueError(
                "spec.deepspeed.zeroStage: 3 is not supported by this trainer; use 2 (LoRA and models that fit "
                "one GPU train faster with it)"
            )
        self.ranks = Ranks(
            self.spec.run_policy.collective_timeout_seconds, self.config.runtime.termination_log
        )
        self.rank, self.world_size, self.is_main = self.ranks.rank, self.ranks.world_size, self.ranks.is_main
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        t = self.spec.training
        on_gpu = torch.cuda.is_available()
        self.precision = for_this_machine(t.precision, on_gpu)
        self._log(self.precision.describe())  # among the log's first lines: it decides the speed
        seed_everything(t.seed)  # identical on all ranks: identical LoRA initialisation

        built = self._build_model()
        self.model, self.tokenizer, self.task = built.model, built.tokenizer, built.task

        if enable_segment_attention(self.model):  # forward.py: packed recipes attend only inside themselves
            self._log("attention: per recipe on flattened packed batches (masked-out pairs are not computed)")
        self._log(
            f"model: {built.total_parameters:,} parameters, {built.trainable_parameters:,} trainable "
            f"({100 * built.trainable_fraction:.2f}%), task {self.task}, "
            f"{'LoRA' if self.spec.lora.enabled else 'full fine-tuning'}"
        )

        packing, no_packing_reason = packing_plan(t.packing, self.model.config)
        if no_packing_reason:
            self._log(no_packing_reason)
        cache_dir = self.config.runtime.cache_dir or str(self.run_dir / run_layout.CACHE_DIR)
        for building_rank in (True, False):  # rank 0 builds the token cache, the others reuse it
            if self.is_main == building_rank:
                self.data = TrainingData.prepare(
                    self.spec, self.tokenizer, self.task, cache_dir, self.rank, self.world_size,
                    decoder_start_token_id=decoder_start_token_id(self.model.config, self.tokenizer),
                    packing=packing,
                )  # fmt: skip
            self.ranks.barrier()

        ds_config = build_deepspeed_config(self.spec, self.world_size, on_gpu, self.precision)
        self.resume_checkpoint = agreed_checkpoint(
            find_resume_checkpoint(
                self.checkpoint_dir, self.resume_from, self.config.namespace, self.config.name
            ),
            self.resume_from or self.checkpoint_dir,
            self.rank,
            self.ranks.broadcast_from_main,
        )
        saved_world = (
            read_trainer_state(self.resume_checkpoint).get("world_size") if self.resume_checkpoint else None
        )
        # ZeRO shards of another world size load only through DeepSpeed's universal format, which
        # the engine must be told about when it is built (see _resume).
        self.reshard = saved_world is not None and saved_world != self.world_size
        if self.reshard:
            ds_config["checkpoint"] = {**ds_config.get("checkpoint", {}), "load_universal": True}
        self.accumulation = gradient_accumulation_steps(self.spec, self.world_size)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.engine, *_ = deepspeed.initialize(model=self.model, model_parameters=trainable, config=ds_config)
        self.device = self.ranks.device = self.engine.device
        self.trainable = [p for p in self.engine.module.parameters() if p.requires_grad]

        self.micro_batches_per_epoch = self.data.estimated_micro_batches_per_epoch()
        steps = t.epochs * max(1, self.micro_batches_per_epoch // self.accumulation)
        self.total_steps = min(steps, t.max_steps) if t.max_steps else steps
        self.schedule = LearningRateSchedule(t.learning_rate, t.scheduler, self.total_steps)
        sharded = self.spec.deepspeed.zero_stage >= 1  # each rank updates its own gradient shard
        self.noise = GradientNoise(t.gradient_noise, seed=t.seed + (self.rank if sharded else 0))
        install_noise_hook(
            innermost_torch_optimizer(self.engine.optimizer),
            self.noise,
            self.ranks.all_reduce if sharded else None,
        )
        self.writer = CheckpointWriter(
            self.checkpoint_dir, self.rank, self.spec.checkpoint.keep_last, barrier=self.ranks.barrier
        )
        seed_everything(t.seed + self.rank)  # dropout differs between ranks
        self._resume()
        self._start_reporting()

    def _build_model(self):
        if self.spec.model.init == "scratch" and self.is_main:
            write_scratch_base(
                self.spec.model, self.checkpoint_dir, lambda: tokenizer_training_corpus(self.spec)
            )
        self.ranks.barrier()
        return load_model(
            self.spec.model, self.spec.lora, self.checkpoint_dir, self.spec.training.gradient_checkpointing
        )

    def _resume(self) -> None:
        checkpoint = self.resume_checkpoint
        if checkpoint is None:
            return
        reshard_dir = self.run_dir / run_layout.UNIVERSAL_DIR if self.reshard else None
        load_engine_state(self.engine, checkpoint, self.is_main, self.ranks.barrier, reshard_dir)
        state = read_trainer_state(checkpoint)
        self.progress = TrainingPosition(**state["progress"])
        self.early_stopping.load_state_dict(state["early_stopping"])
        rank_state = load_rank_state(checkpoint, self.rank)
        if rank_state is not None and state.get("world_size") == self.world_size:
            self.data.load_state_dict(rank_state["data"])
            self.noise.load_state_dict(rank_state["noise"])
            restore_rng_state(rank_state["rng"])
        else:  # another world size: the same data position, fresh RNG states
            self.data.load_state_dict(state["data"])
            self.noise.step = int(state["noise"]["step"])
            self._log(f"resuming with {self.world_size} ranks from a {state.get('world_size')}-rank run")
        self.resumed_from_step = self.progress.step
        switched = resume_note(state.get("precision", "fp32"), self.precision)
        self._log(f"resumed from step {self.progress.step} ({checkpoint}){switched}")

    def _start_reporting(self) -> None:
        """Rank 0 reports to the metrics, the notifications and the run log; the others to nothing."""
        self.reporter = Reporter.rank_zero(self.config) if self.is_main else Reporter()
        self.reporter.report(
            Started(
                total_steps=self.total_steps,
                step=self.progress.step,
                epoch=self._epoch_fraction(),
                resumed_from_step=self.resumed_from_step,
                world_size=self.world_size,
                micro_batches_per_epoch=self.micro_batches_per_epoch,
            )
        )

    # ------------------------------------------------------------------ train

    def train(self) -> TerminationSummary:
        self.engine.train()
        if self.progress.step == 0 and self.progress.last_validation_step is None:
            self.validate()  # the untrained baseline every later validation is compared with
        while self.progress.step < self.total_steps:
            started = time.monotonic()  # tokens/s counts the time spent making batches too
            micro_batches = self._next_step_batches()
            if micro_batches is None:
                break
            with self.ranks.watchdog.guard("optimizer step"):  # DeepSpeed's collectives included
                self._train_step(micro_batches, started)
            if self.ranks.stop_requested():
                self.save_checkpoint()
                raise StopRequested(self.ranks.stop_signal or signal.SIGTERM, self.progress.step)
            step = self.progress.step
            epoch_end, self._epoch_ended = self._epoch_ended, False
            if step % self.spec.validation.every_steps == 0 or epoch_end:
                self.validate()
            if (
                step % self.spec.checkpoint.every_steps == 0
                and self.progress.last_checkpoint != checkpoint_step_dir(step)
            ):
                self.save_checkpoint()
            if self.early_stopping.should_stop:
                self.stopped_early = True
                self._log(
                    f"early stopping at step {step}: no improvement in {self.early_stopping.patience} validations"
                )
                break
        if self.progress.last_validation_step != self.progress.step:
            self.validate()
        if self.progress.last_checkpoint != checkpoint_step_dir(self.progress.step):
            self.save_checkpoint()
        return self._summary()

    def _next_step_batches(self) -> list[dict] | None:
        """The next `accumulation` micro-batches of this rank, crossing epoch ends; None when the
        epochs are used up (a last partial step is dropped: every step has the same size)."""
        batches = []
        while len(batches) < self.accumulation:
            if self._batches is None:
                if self.data.epoch >= self.spec.training.epochs:
                    return None
                self._batches = self.data.batches()
            batch = next(self._batches, None)
            if batch is None:  # batches() advanced the data's epoch counter
                self._batches = None
                self._epoch_ended = True
                self.progress.epochs_completed = self.data.epoch
                self.progress.micro_batches_in_epoch = 0
                continue
            self.progress.micro_batches_in_epoch += 1
            batches.append(batch)
        return batches

    def _train_step(self, micro_batches: list[dict], started: float) -> None:

        step = self.progress.step
        self.data.set_progress(step / self.total_steps)
        local = [
            sum(b[k] for b in micro_batches) for k in ("num_target_tokens", "num_real_tokens", "num_examples")
        ]
        step_tokens, real_tokens, examples = self.ranks.all_reduce(local)
        scale = self.world_size / max(1.0, step_tokens)
        learning_rate = self.schedule.lr(step)
        loss_sum, objective_sum, step_is_finite = 0.0, 0.0, True
        smoothing = self.spec.training.label_smoothing
        for index, batch in enumerate(micro_batches):
            batch = self._to_device(batch)
            with self.precision.autocast():  # the backward below runs outside it, as autocast wants
                result = batch_loss(self.engine, batch, self.task, smoothing)  # logits at labels only
            logits, labels, token_loss = result.logits, result.labels, result.loss
            finite = self.ranks.all_finite(token_loss.sum)
            if finite:
                loss = token_loss.sum * scale
                objective_sum += float(token_loss.sum.detach())
                loss_sum += plain_cross_entropy_sum(logits, labels, token_loss, smoothing)
            else:  # zeros instead of NaN gradients; the weights will not move this step
                loss = sum((p * 0.0).sum() for p in self.trainable)
                step_is_finite = False
            last = index == len(micro_batches) - 1
            if last:
                sigma = self.noise.sigma()  # the hook adds the noise inside engine.step()
                for group in self.engine.optimizer.param_groups:
                    group["lr"] = learning_rate if step_is_finite else 0.0
            self.engine.backward(loss, scale_wrt_gas=False)
            self.engine.step()
        self.noise.end_step()
        self.progress.step = step + 1
        seconds = time.monotonic() - started
        if not step_is_finite:
            self._skipped_step()
            return
        self._nonfinite_in_a_row = 0
        loss_sum, objective_sum = self.ranks.all_reduce([loss_sum, objective_sum])
        grad_norm = self.engine.get_global_grad_norm()
        self.reporter.report(
            Stepped(
                step=self.progress.step,
                epoch=self._epoch_fraction(),
                loss=loss_sum / max(1.0, step_tokens),
                objective=objective_sum / max(1.0, step_tokens),
                learning_rate=learning_rate,
                grad_norm=float(grad_norm)
                if grad_norm is not None and math.isfinite(float(grad_norm))
                else None,
                tokens=int(real_tokens),
                examples=int(examples),
                seconds=seconds,
                noise_sigma=sigma,
                packing_efficiency=self.data.packing_efficiency,
                curriculum_stage=self.data.curriculum_stage,
                quality_threshold=self.data.quality_threshold,
            )
        )

    def _skipped_step(self) -> None:
        """A step with a non-finite loss: counted, reported, and K in a row end the run."""
        step = self.progress.step
        self._nonfinite_in_a_row += 1
        self.progress.nonfinite_steps += 1
        self._log(f"step {step}: non-finite loss, step skipped ({self._nonfinite_in_a_row} in a row)")
        self.reporter.report(SkippedStep(step))
        if self._nonfinite_in_a_row >= MAX_NONFINITE_STEPS_IN_A_ROW:
            raise TrainingDiverged(
                f"training diverged: {self._nonfinite_in_a_row} optimizer steps in a row had a NaN or "
                f"infinite loss (up to step {step}); lower spec.training.learningRate or check the data"
            )

    # ------------------------------------------------------------------ validate

    def validate(self) -> dict[str, Any]:
        """Validation loss and perplexity over the validation split (plain cross-entropy), a few
        generated recipes scored on rank 0, early-stopping bookkeeping and the best checkpoint."""

        step = self.progress.step
        self.engine.eval()
        total, count = 0.0, 0
        with torch.no_grad(), self.precision.autocast():
            for batch in self.data.validation_batches():
                batch = self._to_device(batch)
                token_loss = batch_loss(self.engine, batch, self.task, 0.0).loss
                total += float(token_loss.sum)
                count += int(token_loss.tokens)
        total, count = self.ranks.all_reduce([total, count])
        quality = self._sample_quality() if self.is_main else {}
        self.engine.train()
        loss = total / count if count else float("nan")
        improved = math.isfinite(loss) and self.early_stopping.update(loss)
        best = self.early_stopping.best if self.early_stopping.best is not None else loss
        evaluation = {
            "validation_loss": loss,
            "perplexity": perplexity(loss) if math.isfinite(loss) else None,
        }
        evaluation["quality"] = quality.get("overall")
        self.progress.last_validation_step = step
        self.progress.last_evaluation = evaluation
        self._log(
            f"step {step}: validation loss {loss:.4f}, perplexity {evaluation['perplexity']:.2f}"
            + (f", quality {evaluation['quality']:.3f}" if evaluation["quality"] is not None else "")
        )
        self.reporter.report(
            Validated(step, loss, evaluation["perplexity"], best, improved, quality, self._diversity)
        )
        if improved and step > 0:  # the untrained model is no checkpoint worth keeping
            self.progress.best_step = step
            self.save_checkpoint(best=True)
        return evaluation

    def _sample_quality(self) -> dict[str, float]:
        """Generate recipes for the first validation prompts and average their quality scores."""
        n = self.spec.validation.samples
        if n == 0:
            return {}

        examples = self.data.validation_examples(n)
        prompts = [prompt for prompt, _reference in examples]
        with self.precision.autocast():
            texts = generate_recipes(
                self.engine.module, self.tokenizer, prompts,
                max_new_tokens=self.spec.training.max_target_length,
                max_source_length=self.spec.training.max_source_length,
            )  # fmt: skip
        means, self._samples = score_samples(prompts, texts)
        (self.run_dir / run_layout.SAMPLES_FILE).write_text(json.dumps(self._samples, indent=1))
        if len(texts) >= 2:  # the set's diversity against the references' own
            self._diversity = set_diversity(texts, [reference for _prompt, reference in examples])
        return means

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, best: bool = False) -> Path:
        step = self.progress.step
        self.progress.last_checkpoint = checkpoint_step_dir(step)
        if best:
            self.progress.best_checkpoint = checkpoint_step_dir(step)
        state = {
            "step": step,
            "epoch": self._epoch_fraction(),
            "world_size": self.world_size,
            "precision": self.precision.name,
            "progress": vars(self.progress),
            "early_stopping": self.early_stopping.state_dict(),
            "best_metric": self.early_stopping.best,
            "data": self.data.state_dict(),
            "data_summary": self.data.summary,  # for the model card (commands/export.py)
            "noise": {"step": self.noise.step, "seed": self.noise.seed},
            "time": time.time(),
        }
        rank_state = {
            "rng": capture_rng_state(),
            "data": self.data.state_dict(),
            "noise": self.noise.state_dict(),
        }
        with self.ranks.watchdog.guard("checkpoint save"):
            path, seconds, size = self.writer.save(
                step, self.engine, self.tokenizer, self.config.to_yaml(), state, rank_state, best=best
            )
        self.reporter.report(Checkpointed(step, str(path), seconds, size, best))
        return path

    # ------------------------------------------------------------------ cleanup

    def cleanup(self) -> None:
        if getattr(self, "ranks", None) is not None:
            self.ranks.close()

    # ------------------------------------------------------------------ helpers

    def _summary(self) -> TerminationSummary:
        """Best validation loss (and its perplexity), the latest quality score, both checkpoints."""
        last, best_loss = self.progress.last_evaluation, self.early_stopping.best
        best_name = self.progress.best_checkpoint
        best_path = str(self.checkpoint_dir / best_name) if best_name else None
        summary = TerminationSummary(
            step=self.progress.step,
            epoch=self._epoch_fraction(),
            best_checkpoint=best_path,
            last_checkpoint=str(self.checkpoint_dir / checkpoint_step_dir(self.progress.step)),
            stopped_early=self.stopped_early,
            evaluation=Evaluation(
                validation_loss=best_loss,
                perplexity=perplexity(best_loss) if best_loss is not None else None,
                quality=last.get("quality"),
                best_checkpoint=best_path,
            ),
        )
        self.reporter.report(Finished(summary))
        return summary

    def _epoch_fraction(self) -> float:
        within = self.progress.micro_batches_in_epoch / max(1, self.micro_batches_per_epoch)
        return self.progress.epochs_completed + min(within, 0.999)

    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def _log(self, message: str) -> None:
        if getattr(self, "is_main", True):
            log.info(message)
