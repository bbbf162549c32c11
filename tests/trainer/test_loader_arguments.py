"""Issue 23, finding 3: spec.model.config used to flow into `AutoConfig.from_pretrained` as
keyword arguments, so `trust_remote_code: true` ran Python shipped with the model, and a
checkpoint's trainer-config.yaml did the same to eval, export, generate and compare."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import recipe_trainer
from recipe_api import InvalidSpecError, parse_job
from recipe_api.trainer_config import TrainerConfig
from recipe_api.v1alpha1 import LOADER_ARGUMENTS

SOURCES = sorted(Path(recipe_trainer.__file__).parent.rglob("*.py"))
JOB = {
    "apiVersion": "training.chefgenius.io/v1alpha1",
    "kind": "RecipeTrainingJob",
    "metadata": {"name": "flan", "namespace": "ml"},
    "spec": {"model": {"name": "m"}, "dataset": {"path": "/d"}},
}


@pytest.mark.parametrize("argument", sorted(LOADER_ARGUMENTS))
def test_a_loader_argument_in_model_config_is_refused_naming_it(argument):
    job = {**JOB, "spec": {**JOB["spec"], "model": {"name": "m", "config": {argument: True}}}}
    with pytest.raises(InvalidSpecError) as exc:
        parse_job(job)
    [error] = exc.value.errors
    assert error.path == "spec.model.config" and argument in error.message


def test_a_checkpoints_trainer_config_asking_for_remote_code_is_refused_when_read():
    """eval/export/generate/compare read trainer-config.yaml from a checkpoint, which anyone who
    can write the claim (another job, a shared volume) wrote."""
    text = (
        "name: flan\nruntime: {checkpoint_dir: /c, run_dir: /r}\n"
        "spec: {model: {name: m, config: {trust_remote_code: true}}, dataset: {path: /d}}\n"
    )
    with pytest.raises(ValueError, match="trust_remote_code is a model loader argument"):
        TrainerConfig.from_yaml(text)


def _loads(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "from_pretrained":
            receiver = node.func.value
            if isinstance(receiver, ast.Name) and receiver.id == "PeftModel":
                continue  # loads adapter weights and a JSON config; PEFT runs no model code
            yield node


def test_every_load_passes_trust_remote_code_false_explicitly():
    """Explicit, so a default changed by a transformers release (or an interactive prompt) never
    decides; an override of the same name would then be a TypeError, not a silent yes."""
    loads = [(path, node) for path in SOURCES for node in _loads(path)]
    assert len(loads) >= 8, "the loads of model.py, inference.py, tokenizer.py and model_source.py"
    missing = [
        f"{path.name}:{node.lineno}"
        for path, node in loads
        if not any(
            k.arg == "trust_remote_code" and isinstance(k.value, ast.Constant) and k.value.value is False
            for k in node.keywords
        )
    ]
    assert missing == []
