"""Optional notifications on rank 0: a Discord or Slack webhook and Weights & Biases.

Neither is needed to train, and neither may stop training: a failed post is logged (without
the URL) and the run goes on.

Webhook: `spec.notifications.webhookSecretRef` names a Secret key holding the URL; the operator
exposes it to the trainer as the env var RECIPE_TRAINER_WEBHOOK_URL (local mode: set it
yourself). The URL is a credential, so it is never logged, not even inside error messages.
Discord URLs get `{"content": ...}`, all others Slack's `{"text": ...}` (which Mattermost and
Rocket.Chat accept too). Messages go out at start, each validation, finish and crash.

W&B: on when `spec.notifications.wandb.project` is set, the `wandb` package is importable and
WANDB_API_KEY (from `wandb.apiKeySecretRef`) is set or WANDB_MODE is offline. One W&B run per
job (id = namespace-name), resumed across gang restarts.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from recipe_api.contract import WANDB_API_KEY_ENV, WEBHOOK_URL_ENV
from recipe_api.trainer_config import TerminationSummary, TrainerConfig

WANDB_MODE_ENV = "WANDB_MODE"
MESSAGE_LIMIT_CHARS = 1900  # Discord refuses content over 2000 characters
USER_AGENT = "chef-genius-trainer (notifications)"  # Discord rejects urllib's default agent

log = logging.getLogger(__name__)


def webhook_payload(url: str, text: str) -> dict[str, str]:
    """The JSON body this webhook expects: Discord's `content` or Slack's `text`."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    is_discord = host.endswith(("discord.com", "discordapp.com")) or parts.path.startswith("/api/webhooks/")
    text = text if len(text) <= MESSAGE_LIMIT_CHARS else text[: MESSAGE_LIMIT_CHARS - 3] + "..."
    return {"content": text} if is_discord else {"text": text}


class Notifier:
    """Built by `from_config` on rank 0; every method is safe to call when nothing is configured."""

    def __init__(
        self,
        job_name: str,
        webhook_url: str | None = None,
        wandb_run: Any = None,
        timeout_seconds: float = 5.0,
    ) -> None:
        self.job_name = job_name
        self._webhook_url = webhook_url or None
        self._wandb_run = wandb_run
        self._timeout = timeout_seconds

    @classmethod
    def from_config(cls, config: TrainerConfig, environ: Mapping[str, str] = os.environ) -> Notifier:
        return cls(
            job_name=config.name,
            webhook_url=environ.get(WEBHOOK_URL_ENV),
            wandb_run=_start_wandb(config, environ),
        )

    # ------------------------------------------------------------------ events

    def on_start(self, total_steps: int, resumed_from_step: int | None = None) -> None:
        how = f"resumed from step {resumed_from_step}" if resumed_from_step else "started"
        self._post(f"🍳 {self.job_name}: training {how}, {total_steps} steps planned")

    def on_validation(
        self,
        step: int,
        validation_loss: float,
        best_validation_loss: float,
        perplexity: float | None = None,
        quality: Mapping[str, float] | None = None,
    ) -> None:
        numbers = {"validation/loss": validation_loss, "validation/best_loss": best_validation_loss}
        text = f"📊 {self.job_name}: step {step}, validation loss {validation_loss:.4f} (best {best_validation_loss:.4f})"
        if perplexity is not None:
            numbers["validation/perplexity"] = perplexity
            text += f", perplexity {perplexity:.2f}"
        if quality:
            numbers.update({f"quality/{name}": value for name, value in quality.items()})
            text += ", quality " + ", ".join(f"{name} {value:.2f}" for name, value in quality.items())
        self.log_metrics(step, numbers)
        self._post(text)

    def on_finish(self, summary: TerminationSummary) -> None:
        evaluation = summary.evaluation
        text = f"✅ {self.job_name}: finished at step {summary.step}"
        if summary.stopped_early:
            text += " (early stopping)"
        if evaluation.validation_loss is not None:
            text += f", validation loss {evaluation.validation_loss:.4f}"
        if evaluation.quality is not None:
            text += f", quality {evaluation.quality:.2f}"
        if summary.best_checkpoint:
            text += f", best checkpoint {summary.best_checkpoint}"
        self._post(text)
        self._finish_wandb(summary.to_manifest(), exit_code=0)

    def on_crash(self, reason: str, step: int | None = None) -> None:
        where = f" at step {step}" if step is not None else ""
        self._post(f"❌ {self.job_name}: crashed{where}: {reason}")
        self._finish_wandb({"failure": reason}, exit_code=1)

    def log_metrics(self, step: int, values: Mapping[str, float]) -> None:
        """Training curves for W&B (the webhook only gets the events above)."""
        if self._wandb_run is None:
            return
        try:
            self._wandb_run.log(dict(values), step=step)
        except Exception as exc:
            log.warning("W&B log failed, training goes on: %s", type(exc).__name__)

    # ------------------------------------------------------------------ delivery

    def _post(self, text: str) -> None:
        if self._webhook_url is None:
            return
        body = json.dumps(webhook_payload(self._webhook_url, text)).encode()
        request = urllib.request.Request(
            self._webhook_url,
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout):
                pass
        except Exception as exc:  # a chat outage must never stop training
            log.warning("webhook notification failed, training goes on: %s", self._redacted(exc))

    def _redacted(self, exc: Exception) -> str:
        """The error without the URL or its secret path, in case a library quoted them."""
        text = f"{type(exc).__name__}: {exc}"
        parts = urlsplit(self._webhook_url or "")
        for secret in (self._webhook_url, parts.path, parts.query, *parts.path.split("/")):
            if secret and len(secret) > 3:
                text = text.replace(secret, "<webhook>")
        return text

    def _finish_wandb(self, summary: Mapping[str, Any], exit_code: int) -> None:
        if self._wandb_run is None:
            return
        try:
            self._wandb_run.summary.update(dict(summary))
            self._wandb_run.finish(exit_code=exit_code)
        except Exception as exc:
            log.warning("W&B finish failed: %s", type(exc).__name__)
        self._wandb_run = None


def _start_wandb(config: TrainerConfig, environ: Mapping[str, str]) -> Any:
    """A W&B run when configured and installed, else None (and a log line saying why)."""
    project = config.spec.notifications.wandb.project
    if not project:
        return None
    if importlib.util.find_spec("wandb") is None:
        log.warning("W&B project %r is set but wandb is not installed; W&B logging is off", project)
        return None
    if not environ.get(WANDB_API_KEY_ENV) and environ.get(WANDB_MODE_ENV) not in ("offline", "disabled"):
        log.warning("W&B project %r is set but %s is not; W&B logging is off", project, WANDB_API_KEY_ENV)
        return None
    import wandb

    run_id = f"{config.namespace}-{config.name}" if config.namespace else config.name
    try:
        return wandb.init(
            project=project, name=config.name, id=run_id, resume="allow", config=config.spec.to_manifest()
        )
    except Exception as exc:
        log.warning("W&B start failed, training goes on without it: %s", type(exc).__name__)
        return None
