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

Rank 0 appends one event per start, step, validation, checkpoint and end to the run log
(`run_log`): the local progress bar, the curves and the resume test read it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from recipe_api.contract import EXIT_CODE_PEER_LOST, checkpoint_step_dir
from recipe_api.trainer_config import TerminationSummary, TrainerConfig
from recipe_api.v1alpha1 import Evaluation
from recipe_api.validation import gradient_accumulation_steps

from .. import run_layout
from ..checkpoint_layout import read_trainer_state
from ..run_log import RunLogWriter
from .checkpointing import CheckpointWriter, find_resume_checkpoint, load_engine_state, load_rank_state
from .collective_watchdog import CollectiveWatchdog
from .rng import capture_rng_state, restore_rng_state, seed_everything

log = logging.getLogger("recipe_trainer")

MAX_NONFINITE_STEPS_IN_A_ROW = 5


class TrainingDiverged(RuntimeError):
    """K optimizer steps in a row had a NaN or infinite loss."""


class StopRequested(Exception):
    """A signal asked the run to stop; a checkpoint was written."""

    def __init__(self, signum: int, step: int):
        self.signum, self.step = signum, step
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step} after saving a checkpoint")


@dataclass
class EarlyStopping:
    """Validation-loss early stopping (`spec.validation.earlyStopping`), state_dict-able."""

    patience: int
    min_delta: float
    best: float | None = None
    bad_validations: int = 0

    def update(self, loss: float) -> bool:
        """Record a validation loss; True when it is a new best."""
        if self.best is None or loss < self.best - self.min_delta:
            self.best, self.bad_validations = loss, 0
            return True
        self.bad_validations += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.bad_validations >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "bad_validations": self.bad_validations}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.bad_validations = state["best"], int(state["bad_validations"])


@dataclass
class TrainingPosition:
    """Where training is (step, epoch position, best and last checkpoints); saved in
    trainer_state.json under "progress"."""

    step: int = 0
    epochs_completed: int = 0
    micro_batches_in_epoch: int = 0
    best_step: int | None = None
    last_validation_step: int | None = None
    last_checkpoint: str | None = None
    best_checkpoint: str | None = None
    nonfinite_steps: int = 0
    last_evaluation: dict = field(default_factory=dict)


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
        self.run_log: RunLogWriter | None = None  # rank 0's, from setup on
        self.stop_signal: int | None = None
        self.stopped_early = False
        self.resumed_from_step: int | None = None
        self._nonfinite_in_a_row = 0
        self._batches = None  # the current epoch's micro-batch iterator
        self._epoch_ended = False

    # ------------------------------------------------------------------ setup

    def setup(self) -> None:
        import deepspeed
        from deepspeed import comm as dist

        from ..data.pipeline import TrainingData
        from .deepspeed_config import build_deepspeed_config
        from .gradient_noise import GradientNoise, innermost_torch_optimizer, install_noise_hook
        from .precision import cpu_flags, resolve_precision
        from .schedule import LearningRateSchedule

        if self.spec.deepspeed.zero_stage == 3:  # partitioned weights: no noise term, no save_pretrained
            raise ValueError(
                "spec.deepspeed.zeroStage: 3 is not supported by this trainer; use 2 (LoRA and models that fit "
                "one GPU train faster with it)"
            )
        # A deliberate bound on every collective (runPolicy.collectiveTimeoutSeconds), not DeepSpeed's
        # 10-minute DEEPSPEED_TIMEOUT default: a hung peer ends the gang with PeerLost, never a hang.
        timeout = self.spec.run_policy.collective_timeout_seconds
        deepspeed.init_distributed(timeout=timedelta(seconds=timeout))
        self.dist = dist
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        # in case gloo does not time out (collective_watchdog); one rank has no peer to wait for
        self.watchdog = CollectiveWatchdog(timeout, self._peer_lost, enabled=self.world_size > 1)
        self.is_main = self.rank == 0
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self.run_log = RunLogWriter(self.run_dir) if self.is_main else None
        self._install_signal_handlers()
        t = self.spec.training
        on_gpu = torch.cuda.is_available()
        self.precision = resolve_precision(
            t.precision, on_gpu, on_gpu and torch.cuda.is_bf16_supported(), () if on_gpu else cpu_flags()
        )
        self._log(self.precision.describe())  # among the log's first lines: it decides the speed
        seed_everything(t.seed)  # identical on all ranks: identical LoRA initialisation

        built = self._build_model()
        self.model, self.tokenizer, self.task = built.model, built.tokenizer, built.task
        from .forward import enable_segment_attention

        if enable_segment_attention(self.model):  # forward.py: packed recipes attend only inside themselves
            self._log("attention: per recipe on flattened packed batches (masked-out pairs are not computed)")
        self._log(
            f"model: {built.total_parameters:,} parameters, {built.trainable_parameters:,} trainable "
            f"({100 * built.trainable_fraction:.2f}%), task {self.task}, "
            f"{'LoRA' if self.spec.lora.enabled else 'full fine-tuning'}"
        )

        from ..model import decoder_start_token_id, packing_plan

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
            self._barrier()

        ds_config = build_deepspeed_config(self.spec, self.world_size, on_gpu, self.precision)
        self.resume_checkpoint = find_resume_checkpoint(self.checkpoint_dir, self.resume_from)
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
        self.device = self.engine.device
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
            self._all_reduce if sharded else None,
        )
        self.writer = CheckpointWriter(
            self.checkpoint_dir, self.rank, self.spec.checkpoint.keep_last, barrier=self._barrier
        )
        seed_everything(t.seed + self.rank)  # dropout differs between ranks
        self._resume()
        self._start_reporting()

    def _build_model(self):
        from ..data.pipeline import tokenizer_training_corpus
        from ..model import load_model, write_scratch_base

        if self.spec.model.init == "scratch" and self.is_main:
            write_scratch_base(
                self.spec.model, self.checkpoint_dir, lambda: tokenizer_training_corpus(self.spec)
            )
        self._barrier()
        return load_model(
            self.spec.model, self.spec.lora, self.checkpoint_dir, self.spec.training.gradient_checkpointing
        )

    def _resume(self) -> None:
        checkpoint = self.resume_checkpoint
        if checkpoint is None:
            return
        reshard_dir = self.run_dir / run_layout.UNIVERSAL_DIR if self.reshard else None
        load_engine_state(self.engine, checkpoint, self.is_main, self._barrier, reshard_dir)
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
        saved = state.get("precision", "fp32")  # checkpoints before this field were fp32 or GPU bf16
        switched = (
            f", trained so far in {saved}, now {self.precision.name}" if saved != self.precision.name else ""
        )
        self._log(f"resumed from step {self.progress.step} ({checkpoint}){switched}")

    def _start_reporting(self) -> None:
        from .metrics import TrainerMetrics
        from .notifications import Notifier

        self.metrics = TrainerMetrics()
        self.notifier = Notifier.from_config(self.config) if self.is_main else None
        if self.is_main:
            try:
                self.metrics.serve(self.spec.metrics.port)
            except OSError as exc:  # metrics matter less than training: say so and go on
                self._log(f"metrics endpoint not started on port {self.spec.metrics.port}: {exc}")
            self.metrics.on_start(self.total_steps, self.progress.step, self._epoch_fraction())
            self.notifier.on_start(self.total_steps, self.resumed_from_step)
        self._event(
            "start",
            total_steps=self.total_steps,
            resumed_from_step=self.resumed_from_step,
            world_size=self.world_size,
            micro_batches_per_epoch=self.micro_batches_per_epoch,
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
            with self.watchdog.guard("optimizer step"):  # DeepSpeed's collectives included
                self._train_step(micro_batches, started)
            if self._stop_requested():
                self.save_checkpoint()
                raise StopRequested(self.stop_signal or signal.SIGTERM, self.progress.step)
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
        from ..losses import plain_cross_entropy_sum
        from .forward import batch_loss

        step = self.progress.step
        self.data.set_progress(step / self.total_steps)
        local = [
            sum(b[k] for b in micro_batches) for k in ("num_target_tokens", "num_real_tokens", "num_examples")
        ]
        step_tokens, real_tokens, examples = self._all_reduce(local)
        scale = self.world_size / max(1.0, step_tokens)
        learning_rate = self.schedule.lr(step)
        loss_sum, objective_sum, step_is_finite = 0.0, 0.0, True
        smoothing = self.spec.training.label_smoothing
        for index, batch in enumerate(micro_batches):
            batch = self._to_device(batch)
            with self.precision.autocast():  # the backward below runs outside it, as autocast wants
                result = batch_loss(self.engine, batch, self.task, smoothing)  # logits at labels only
            logits, labels, token_loss = result.logits, result.labels, result.loss
            finite = self._all_finite(token_loss.sum)
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
        self._after_step(
            step_is_finite, (loss_sum, objective_sum), step_tokens, real_tokens, examples, learning_rate,
            sigma, seconds,
        )  # fmt: skip

    def _after_step(
        self, finite, loss_sum, step_tokens, real_tokens, examples, learning_rate, sigma, seconds
    ):
        step = self.progress.step
        loss_sum, objective_sum = self._all_reduce(list(loss_sum))
        grad_norm = self.engine.get_global_grad_norm()
        grad_norm = float(grad_norm) if grad_norm is not None and math.isfinite(float(grad_norm)) else None
        if not finite:
            self._nonfinite_in_a_row += 1
            self.progress.nonfinite_steps += 1
            self._log(f"step {step}: non-finite loss, step skipped ({self._nonfinite_in_a_row} in a row)")
            if self.is_main:
                self.metrics.on_nonfinite_step()
            self._event("step", step=step, loss=None, skipped=True, learning_rate=0.0)
            if self._nonfinite_in_a_row >= MAX_NONFINITE_STEPS_IN_A_ROW:
                raise TrainingDiverged(
                    f"training diverged: {self._nonfinite_in_a_row} optimizer steps in a row had a NaN or "
                    f"infinite loss (up to step {step}); lower spec.training.learningRate or check the data"
                )
            return
        self._nonfinite_in_a_row = 0
        loss = loss_sum / max(1.0, step_tokens)
        objective = objective_sum / max(1.0, step_tokens)
        tokens_per_second = real_tokens / seconds if seconds > 0 else None
        if self.is_main:
            self.metrics.on_step(
                step, self._epoch_fraction(), loss, learning_rate, grad_norm, int(real_tokens),
                int(examples), seconds, noise_sigma=sigma, packing_efficiency=self.data.packing_efficiency,
                objective=objective,
            )  # fmt: skip
            self.metrics.on_curriculum(self.data.curriculum_stage, self.data.quality_threshold)
        self._event(
            "step", step=step, epoch=self._epoch_fraction(), loss=loss, objective=objective,
            learning_rate=learning_rate,
            grad_norm=grad_norm, tokens=int(real_tokens), seconds=seconds, tokens_per_second=tokens_per_second,
            noise_sigma=sigma, curriculum_stage=self.data.curriculum_stage,
        )  # fmt: skip

    # ------------------------------------------------------------------ validate

    def validate(self) -> dict[str, Any]:
        """Validation loss and perplexity over the validation split (plain cross-entropy), a few
        generated recipes scored on rank 0, early-stopping bookkeeping and the best checkpoint."""
        from .forward import batch_loss
        from .metrics import perplexity

        step = self.progress.step
        self.engine.eval()
        total, count = 0.0, 0
        with torch.no_grad(), self.precision.autocast():
            for batch in self.data.validation_batches():
                batch = self._to_device(batch)
                token_loss = batch_loss(self.engine, batch, self.task, 0.0).loss
                total += float(token_loss.sum)
                count += int(token_loss.tokens)
        total, count = self._all_reduce([total, count])
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
        self._event("validation", step=step, **evaluation, quality_scores=quality, best=improved)
        if self.is_main:
            self.metrics.on_validation(loss, best, quality)
            self.notifier.on_validation(step, loss, best, evaluation["perplexity"], quality)
        if improved and step > 0:  # the untrained model is no checkpoint worth keeping
            self.progress.best_step = step
            self.save_checkpoint(best=True)
        return evaluation

    def _sample_quality(self) -> dict[str, float]:
        """Generate recipes for the first validation prompts and average their quality scores."""
        n = self.spec.validation.samples
        if n == 0:
            return {}
        from ..inference import generate_recipes
        from ..quality import recipe_quality

        scores: dict[str, list[float]] = {}
        self._samples = []
        prompts = [prompt for prompt, _reference in self.data.validation_examples(n)]
        with self.precision.autocast():
            texts = generate_recipes(
                self.engine.module, self.tokenizer, prompts,
                max_new_tokens=self.spec.training.max_target_length,
                max_source_length=self.spec.training.max_source_length,
            )  # fmt: skip
        for prompt, text in zip(prompts, texts, strict=True):
            result = recipe_quality(text)
            self._samples.append({"prompt": prompt, "recipe": text, "quality": result.get("overall")})
            for name, value in result.items():
                if isinstance(value, int | float):
                    scores.setdefault(name, []).append(float(value))
        (self.run_dir / run_layout.SAMPLES_FILE).write_text(json.dumps(self._samples, indent=1))
        return {name: sum(values) / len(values) for name, values in scores.items()}

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
            "noise": {"step": self.noise.step, "seed": self.noise.seed},
            "time": time.time(),
        }
        rank_state = {
            "rng": capture_rng_state(),
            "data": self.data.state_dict(),
            "noise": self.noise.state_dict(),
        }
        with self.watchdog.guard("checkpoint save"):
            path, seconds, size = self.writer.save(
                step, self.engine, self.tokenizer, self.config.to_yaml(), state, rank_state, best=best
            )
        if self.is_main:
            self.metrics.on_checkpoint(step, seconds, size)
        self._event("checkpoint", step=step, path=str(path), seconds=seconds, bytes=size, best=best)
        return path

    # ------------------------------------------------------------------ cleanup

    def cleanup(self) -> None:
        if getattr(self, "dist", None) is not None and self.dist.is_initialized():
            self._barrier()
            self.dist.destroy_process_group()

    # ------------------------------------------------------------------ helpers

    def _summary(self) -> TerminationSummary:
        """Best validation loss (and its perplexity), the latest quality score, both checkpoints."""
        from .metrics import perplexity

        last = self.progress.last_evaluation
        best_path = (
            str(self.checkpoint_dir / self.progress.best_checkpoint)
            if self.progress.best_checkpoint
            else None
        )
        summary = TerminationSummary(
            step=self.progress.step,
            epoch=self._epoch_fraction(),
            best_checkpoint=best_path,
            last_checkpoint=str(self.checkpoint_dir / checkpoint_step_dir(self.progress.step)),
            stopped_early=self.stopped_early,
            evaluation=Evaluation(
                validation_loss=self.early_stopping.best,
                perplexity=perplexity(self.early_stopping.best)
                if self.early_stopping.best is not None
                else None,
                quality=last.get("quality"),
                best_checkpoint=best_path,
            ),
        )
        self._event("end", **summary.model_dump(mode="json"))
        if self.is_main:
            self.notifier.on_finish(summary)
        return summary

    def _epoch_fraction(self) -> float:
        within = self.progress.micro_batches_in_epoch / max(1, self.micro_batches_per_epoch)
        return self.progress.epochs_completed + min(within, 0.999)

    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def _all_reduce(self, values: list[float]) -> list[float]:
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.world_size > 1:
            with self.watchdog.guard("all_reduce"):
                self.dist.all_reduce(tensor)
        return tensor.tolist()

    def _barrier(self) -> None:
        with self.watchdog.guard("barrier"):
            self.dist.barrier()

    def _peer_lost(self, what: str, seconds: float) -> None:
        """The watchdog's verdict (`collective_watchdog`): leave as a transport timeout would."""
        from .termination import first_failure, peer_lost_message, write_failure

        error = TimeoutError(f"{what} still waiting for another rank after {seconds:.0f} s")
        termination_log = self.config.runtime.termination_log
        if first_failure(termination_log):
            write_failure(peer_lost_message(error), termination_log)
        else:
            print(f"training failed: {peer_lost_message(error)}", file=sys.stderr, flush=True)
        os._exit(EXIT_CODE_PEER_LOST)  # the training thread is stuck in the collective: no clean exit

    def _all_finite(self, value: torch.Tensor) -> bool:
        """True when this micro-batch's loss is finite on every rank (all ranks take the same branch)."""
        (bad,) = self._all_reduce([0.0 if torch.isfinite(value) else 1.0])
        return bad == 0.0

    def _stop_requested(self) -> bool:
        """Whether any rank got SIGINT/SIGTERM: decided together, so all ranks stop at one step."""
        (flag,) = self._all_reduce([1.0 if self.stop_signal is not None else 0.0])
        if flag and self.stop_signal is None:
            self.stop_signal = signal.SIGTERM
        return bool(flag)

    def _install_signal_handlers(self) -> None:
        def request_stop(signum, _frame):
            if self.stop_signal is None:
                self.stop_signal = signum
                self._log(
                    f"{signal.Signals(signum).name}: checkpointing at the end of this step, then stopping"
                )

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, request_stop)

    def _log(self, message: str) -> None:
        if getattr(self, "is_main", True):
            log.info(message)

    def _event(self, kind: str, **fields: Any) -> None:
        if self.run_log is not None:  # rank 0's
            self.run_log.write(kind, **fields)
