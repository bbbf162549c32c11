"""`recipe-train validate` as a user runs it: exit codes and one line per error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from manifest_fixtures import MINIMAL

ROOT = Path(__file__).resolve().parents[2]


def _validate(*files) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recipe_trainer.cli", "validate", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_examples_are_valid():
    result = _validate(*sorted((ROOT / "examples").glob("*.yaml")))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_minimal_manifest_is_valid(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(MINIMAL))
    assert _validate(path).returncode == 0


def test_bad_manifest_prints_one_line_per_error_with_file_and_field(tmp_path):
    bad = dict(MINIMAL, spec=dict(MINIMAL["spec"], lora={"r": 0, "alpah": 3}))
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = _validate(path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert any(line.startswith(f"{path}: spec.lora.r: ") for line in lines)
    assert any(line.startswith(f"{path}: spec.lora.alpah: unknown field") for line in lines)


def test_broken_yaml_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("spec:\n  model: [unclosed\n")
    result = _validate(path)
    assert result.returncode == 1 and "line" in result.stderr and "not valid YAML" in result.stderr


def test_missing_file_is_an_error_not_a_crash(tmp_path):
    result = _validate(tmp_path / "nope.yaml")
    assert result.returncode == 1 and "cannot read" in result.stderr


def test_a_misspelt_field_is_corrected_in_one_line(tmp_path):
    bad = dict(MINIMAL, spec=dict(MINIMAL["spec"], training={"epoch": 3}))
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = _validate(path)
    assert result.returncode == 1
    assert result.stderr.strip() == f"{path}: spec.training.epoch: unknown field; did you mean epochs?"


def test_a_file_without_a_job_says_what_it_holds_instead(tmp_path):
    deployment = tmp_path / "deploy.yaml"
    deployment.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    result = _validate(deployment, empty)
    assert result.returncode == 1
    assert (
        f"{deployment}: kind: no RecipeTrainingJob document in this file (found Deployment web)"
        in result.stderr
    )
    assert f"{empty}: kind: the file is empty" in result.stderr
