"""The one launch of the trainer's ranks (`recipe_api.launch`), as the Job builder, local mode and
the benchmarks get it: what differs between them is only what each passes in."""

from __future__ import annotations

import pytest
from manifest_fixtures import minimal_manifest, with_value
from recipe_api import parse_job
from recipe_api.contract import POD_SUPERVISOR_MODULE, TRAINER_MODULE
from recipe_api.launch import DEEPSPEED_LAUNCHER_MODULE, Rendezvous, trainer_launch
from recipe_api.trainer_config import TrainerConfig, TrainerRuntime


def config_of(resources: dict) -> TrainerConfig:
    job = parse_job(with_value(minimal_manifest(), "spec.resources", resources))
    return TrainerConfig(name="j", spec=job.spec, runtime=TrainerRuntime(checkpoint_dir="/c", run_dir="/r"))


def test_cpu_ranks_share_the_cores_and_skip_the_tokenizer_pool():
    launch = trainer_launch(config_of({"gpusPerNode": 0}), "c.yaml", master_port=1, processes=2, cpus=7)
    assert launch.env["DS_ACCELERATOR"] == "cpu" and launch.env["OMP_NUM_THREADS"] == "3"
    assert launch.env["TOKENIZERS_PARALLELISM"] == "false"
    assert launch.args[:3] == ["--master_port=1", "--num_gpus", "2"]


def test_a_gpu_launch_leaves_the_accelerator_alone_and_shares_the_cores_among_its_ranks():
    launch = trainer_launch(config_of({"gpusPerNode": 4}), "c.yaml", master_port=1, cpus=16)
    assert "DS_ACCELERATOR" not in launch.env and launch.env["OMP_NUM_THREADS"] == "4"
    assert launch.args[1:3] == ["--num_gpus", "4"]  # one rank per GPU the spec asks for


def test_local_and_pod_launches_differ_only_in_program_and_rendezvous():
    config = config_of({"nodes": 2, "gpusPerNode": 8})
    rendezvous = Rendezvous(hostfile="/h", node_rank="$(I)", master_addr="j-0.s")
    pod = trainer_launch(config, "c.yaml", master_port=5, rendezvous=rendezvous, supervised=True)
    local = trainer_launch(config.model_copy(update={"spec": config_of({}).spec}), "c.yaml", master_port=5)
    assert pod.command == ["python", "-m", POD_SUPERVISOR_MODULE]
    assert local.command == ["python", "-m", DEEPSPEED_LAUNCHER_MODULE]
    assert pod.args[:5] == ["--hostfile", "/h", "--no_ssh", "--node_rank=$(I)", "--master_addr=j-0.s"]
    assert pod.args[5:] == local.args[:1] + ["--num_gpus", "8"] + local.args[3:]
    assert local.args[-5:] == ["--module", TRAINER_MODULE, "train", "--config", "c.yaml"]


def test_resume_from_reaches_the_trainer_and_several_nodes_need_a_rendezvous():
    launch = trainer_launch(config_of({}), "c.yaml", master_port=1, resume_from="/c/step-5")
    assert launch.args[-2:] == ["--resume-from", "/c/step-5"]
    with pytest.raises(ValueError, match="2 nodes need a rendezvous"):
        trainer_launch(config_of({"nodes": 2}), "c.yaml", master_port=1)
