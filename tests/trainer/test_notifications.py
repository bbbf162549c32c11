import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from recipe_api.status import Evaluation
from recipe_api.trainer_config import TerminationSummary, TrainerConfig, TrainerRuntime
from recipe_api.v1alpha1 import RecipeTrainingJobSpec
from recipe_trainer.training.notifications import WEBHOOK_URL_ENV, Notifier, webhook_payload

SECRET = "s3cr3t-T0KEN-abcdef"
DISCORD_PATH = f"/api/webhooks/1234/{SECRET}"
SLACK_PATH = f"/services/T000/B000/{SECRET}"


class _ChatServer(HTTPServer):
    """A real HTTP server on 127.0.0.1 that records what it is sent and answers `status`."""

    def __init__(self, status: int = 204) -> None:
        self.status = status
        self.received: list[tuple[str, dict]] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_port}{path}"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, json.loads(body)))
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def chat():
    servers = []

    def start(status: int = 204) -> _ChatServer:
        server = _ChatServer(status)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _config(**notifications) -> TrainerConfig:
    spec = RecipeTrainingJobSpec.model_validate(
        {"model": {"name": "tiny"}, "dataset": {"path": "/data/r.csv"}, "notifications": notifications}
    )
    return TrainerConfig(
        name="pasta-lora", spec=spec, runtime=TrainerRuntime(checkpoint_dir="/c", run_dir="/r")
    )


def _notify_whole_run(notifier: Notifier) -> None:
    notifier.on_start(total_steps=500)
    notifier.on_validation(
        step=100, validation_loss=2.5, best_validation_loss=2.5, perplexity=12.18, quality={"overall": 0.62}
    )
    notifier.on_finish(
        TerminationSummary(
            step=500,
            best_checkpoint="/checkpoints/step-00000400",
            evaluation=Evaluation(validation_loss=1.9, quality=0.7),
        )
    )
    notifier.on_crash("RuntimeError: CUDA out of memory", step=501)


@pytest.mark.parametrize(("path", "key"), [(DISCORD_PATH, "content"), (SLACK_PATH, "text")])
def test_each_event_posts_one_message_in_the_chats_own_shape(chat, path, key):
    server = chat()
    notifier = Notifier.from_config(_config(), environ={WEBHOOK_URL_ENV: server.url(path)})
    _notify_whole_run(notifier)

    assert [p for p, _ in server.received] == [path] * 4
    assert all(list(payload) == [key] for _, payload in server.received)
    start, validation, finish, crash = (payload[key] for _, payload in server.received)
    assert "pasta-lora" in start and "500 steps" in start
    assert "validation loss 2.5000" in validation and "overall 0.62" in validation
    assert "step 500" in finish and "/checkpoints/step-00000400" in finish
    assert "step 501" in crash and "CUDA out of memory" in crash


def test_real_chat_urls_get_their_payload_shape():
    assert webhook_payload("https://discord.com/api/webhooks/1/x", "hi") == {"content": "hi"}
    assert webhook_payload("https://hooks.slack.com/services/T/B/x", "hi") == {"text": "hi"}
    assert len(webhook_payload("https://discord.com/api/webhooks/1/x", "x" * 5000)["content"]) <= 2000


def test_resumed_start_says_from_which_step(chat):
    server = chat()
    Notifier("pasta-lora", server.url(SLACK_PATH)).on_start(total_steps=500, resumed_from_step=240)
    assert "resumed from step 240" in server.received[0][1]["text"]


@pytest.mark.parametrize("status", [404, 500])
def test_a_failing_chat_is_logged_without_the_secret_and_training_goes_on(chat, caplog, status):
    server = chat(status)
    notifier = Notifier("pasta-lora", server.url(DISCORD_PATH))
    with caplog.at_level(logging.WARNING, logger="recipe_trainer.training.notifications"):
        _notify_whole_run(notifier)
    assert len(server.received) == 4
    assert f"HTTP Error {status}" in caplog.text
    assert SECRET not in caplog.text and str(server.server_port) not in caplog.text


def test_an_unreachable_chat_never_raises(chat, caplog):
    server = chat()
    url = server.url(SLACK_PATH)
    server.shutdown()
    server.server_close()
    with caplog.at_level(logging.WARNING, logger="recipe_trainer.training.notifications"):
        _notify_whole_run(Notifier("pasta-lora", url, timeout_seconds=2))
    assert "failed" in caplog.text and SECRET not in caplog.text


def test_nothing_configured_is_silent(caplog):
    with caplog.at_level(logging.WARNING):
        _notify_whole_run(Notifier.from_config(_config(), environ={}))
    assert caplog.text == ""


def test_wandb_configured_but_not_installed_is_off_with_a_reason(caplog, monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    with caplog.at_level(logging.WARNING, logger="recipe_trainer.training.notifications"):
        notifier = Notifier.from_config(_config(wandb={"project": "chef"}), environ={"WANDB_API_KEY": "k"})
    _notify_whole_run(notifier)
    assert "wandb is not installed" in caplog.text
