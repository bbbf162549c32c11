"""Every validation rule, as a table: each bad value must be rejected naming its field."""

from __future__ import annotations

import pytest
from manifest_fixtures import MINIMAL, with_value
from recipe_api import InvalidSpecError, parse_job
from recipe_api.validation import gradient_accumulation_steps

STAGES_DECREASING = [{"until": 0.5}, {"until": 0.4}, {"until": 1.0}]

INVALID = [
    # (path set, value, field path expected in the error, words expected in the message)
    ("spec.lora.r", 0, "spec.lora.r", "greater than or equal to 1"),
    ("spec.lora.dropout", 1.5, "spec.lora.dropout", "less than or equal to 1"),
    ("spec.lora.targetModules", 7, "spec.lora.targetModules", "auto or a list"),
    ("spec.lora.rank", 8, "spec.lora.rank", "unknown field"),
    ("spec.training.labelSmoothing", 1.0, "spec.training.labelSmoothing", "less than 1"),
    ("spec.training.labelSmoothing", -0.1, "spec.training.labelSmoothing", "greater than or equal to 0"),
    ("spec.training.microBatchSize", 0, "spec.training.microBatchSize", "greater than or equal to 1"),
    ("spec.training.learningRate", 0, "spec.training.learningRate", "greater than 0"),
    ("spec.training.precision", "fp8", "spec.training.precision", "'auto', 'bf16', 'fp16' or 'fp32'"),
    ("spec.training.scheduler.type", "step", "spec.training.scheduler.type", "cosine-restarts"),
    ("spec.training.scheduler.cycleMultiplier", 0.5, "spec.training.scheduler.cycleMultiplier", "1"),
    ("spec.training.scheduler.minLearningRate", 1.0, "spec.training.scheduler.minLearningRate", "below"),
    ("spec.training.globalBatchSize", 10, "spec.training.globalBatchSize", "multiple of"),
    ("spec.augmentation.probability", 1.2, "spec.augmentation.probability", "less than or equal to 1"),
    ("spec.deepspeed.zeroStage", 4, "spec.deepspeed.zeroStage", "less than or equal to 3"),
    ("spec.deepspeed.zeroStage", -1, "spec.deepspeed.zeroStage", "greater than or equal to 0"),
    ("spec.curriculum.stages", STAGES_DECREASING, "spec.curriculum.stages[1].until", "greater than"),
    ("spec.curriculum.stages", [{"until": 0.5}], "spec.curriculum.stages[0].until", "end at 1.0"),
    (
        "spec.curriculum.stages",
        [{"until": 1.5}],
        "spec.curriculum.stages[0].until",
        "less than or equal to 1",
    ),
    ("spec.curriculum.stages", [], "spec.curriculum.stages", "at least 1"),
    (
        "spec.curriculum.qualityThreshold",
        {"start": 0.9, "end": 0.5},
        "spec.curriculum.qualityThreshold.start",
        "<= end",
    ),
    ("spec.checkpoint.keepLast", 0, "spec.checkpoint.keepLast", "greater than or equal to 1"),
    ("spec.checkpoint.volume.size", "lots", "spec.checkpoint.volume.size", "Kubernetes quantity"),
    ("spec.resources.memory", "sixty", "spec.resources.memory", "Kubernetes quantity"),
    ("spec.resources.nodes", 0, "spec.resources.nodes", "greater than or equal to 1"),
    ("spec.resources.gpusPerNode", -1, "spec.resources.gpusPerNode", "greater than or equal to 0"),
    ("spec.runPolicy.backoffLimit", -1, "spec.runPolicy.backoffLimit", "greater than or equal to 0"),
    ("spec.dataset.validationFraction", 1.0, "spec.dataset.validationFraction", "less than 1"),
    ("spec.dataset.format", "xml", "spec.dataset.format", "recipenlg-csv"),
    ("spec.dataset.maxRecipes", 0, "spec.dataset.maxRecipes", "greater than or equal to 1"),
    ("spec.model.task", "vision", "spec.model.task", "seq2seq"),
    ("spec.model.init", "scratch", "spec.model.config", "model_type"),
    ("spec.validation.everySteps", 0, "spec.validation.everySteps", "greater than or equal to 1"),
    ("spec.metrics.port", 80, "spec.metrics.port", "greater than or equal to 1024"),
    ("metadata.name", "Bad_Name", "metadata.name", "pattern"),
    (
        "spec.notifications.webhookSecretRef",
        {"name": "s"},
        "spec.notifications.webhookSecretRef.key",
        "missing",
    ),
]


@pytest.mark.parametrize(
    ("path", "value", "field", "words"), INVALID, ids=[f"{c[0]}={c[1]!r}" for c in INVALID]
)
def test_invalid_value_is_rejected_naming_the_field(minimal, path, value, field, words):
    with pytest.raises(InvalidSpecError) as caught:
        parse_job(with_value(minimal, path, value))
    messages = {e.path: e.message for e in caught.value.errors}
    assert field in messages, f"expected an error at {field}, got {messages}"
    assert words in messages[field]


def test_missing_required_fields_are_named(minimal):
    del minimal["spec"]["dataset"]
    del minimal["spec"]["model"]["name"]
    with pytest.raises(InvalidSpecError) as caught:
        parse_job(minimal)
    paths = {e.path for e in caught.value.errors}
    assert paths == {"spec.dataset", "spec.model.name"}


def test_every_error_is_reported_not_only_the_first(minimal):
    with_value(minimal, "spec.lora.r", 0)
    with_value(minimal, "spec.training.epochs", 0)
    with pytest.raises(InvalidSpecError) as caught:
        parse_job(minimal)
    assert {"spec.lora.r", "spec.training.epochs"} <= {e.path for e in caught.value.errors}


def test_minimal_manifest_gets_the_documented_defaults():
    job = parse_job(MINIMAL)
    spec = job.spec
    assert spec.training.micro_batch_size == 12 and spec.training.gradient_accumulation_steps == 4
    assert spec.lora.r == 16 and spec.lora.target_modules == "auto"
    assert [s.until for s in spec.curriculum.stages] == [0.3, 0.6, 1.0]
    assert spec.deepspeed.zero_stage == 2 and spec.checkpoint.volume.size == "50Gi"
    assert spec.run_policy.pending_timeout_seconds == 900
    # The manifest form uses the camelCase aliases of the API models.
    dumped = job.spec.to_manifest()
    assert dumped["training"]["scheduler"]["firstCycleSteps"] is None  # follows the run length
    assert dumped["runPolicy"]["backoffLimit"] == 3


def test_numbers_are_accepted_as_quantities(minimal):
    with_value(minimal, "spec.resources.cpu", 8)
    assert parse_job(minimal).spec.resources.cpu == "8"


def test_global_batch_size_derives_accumulation_per_world_size(minimal):
    with_value(minimal, "spec.resources", {"nodes": 2, "gpusPerNode": 8})
    with_value(minimal, "spec.training.microBatchSize", 4)
    with_value(minimal, "spec.training.globalBatchSize", 256)
    assert gradient_accumulation_steps(parse_job(minimal).spec) == 4


def test_status_and_server_metadata_do_not_break_validation(minimal):
    minimal["metadata"].update(uid="1234", resourceVersion="7", managedFields=[{"manager": "kubectl"}])
    minimal["status"] = {"phase": "Running", "kopf": {"progress": {}}}
    assert parse_job(minimal).status.phase == "Running"


MISSPELT = [
    # (path set, value, path of the error, message)
    ("spec.training.epoch", 3, "spec.training.epoch", "unknown field; did you mean epochs?"),
    ("spec.training.scheduler.warmupStep", 9, "spec.training.scheduler.warmupStep", "did you mean warmupSteps?"),
    ("spec.curriculum.stages", [{"until": 1.0, "maxIngredient": 6}], "spec.curriculum.stages[0].maxIngredient",
     "did you mean maxIngredients?"),
    ("spec.notifications.webhookSecretRef", {"name": "s", "key": "k", "kee": 1},
     "spec.notifications.webhookSecretRef.kee", "did you mean key?"),
    ("spec.runpolicy", {}, "spec.runpolicy", "did you mean runPolicy?"),
    ("spce", {}, "spce", "did you mean spec?"),
    # nothing close: the names allowed at that place instead
    ("spec.lora.rank", 8, "spec.lora.rank", "unknown field; the fields here are enabled, r, alpha, dropout, targetModules"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "value", "field", "message"), MISSPELT, ids=[c[0] for c in MISSPELT])
def test_a_misspelt_field_gets_the_closest_known_name(minimal, path, value, field, message):
    with pytest.raises(InvalidSpecError) as caught:
        parse_job(with_value(minimal, path, value))
    messages = {e.path: e.message for e in caught.value.errors}
    assert message in messages.get(field, ""), messages
