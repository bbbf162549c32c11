"""GPU-world failures as a table over what torch, NCCL, CUDA and DeepSpeed's launcher really
write (message formats of torch 2.x ProcessGroupNCCL, NCCL 2.2x, the CUDA runtime, the NVIDIA
driver), with the exit code the pod ends with. No GPU runs here: these are table tests only."""

from __future__ import annotations

import copy

import pytest
from recipe_api.validation import parse_job
from recipe_operator import builders, phases
from recipe_operator.failures import FailureInfo, PodView, Reason, classify_pod, first_failure

# The NCCL watchdog aborts a rank (SIGABRT); DeepSpeed's launch.py then exits with sys.exit(-6),
# which the shell and the pod report as 250. The rank wrote no termination message, so Kubernetes
# keeps the log tail (terminationMessagePolicy FallbackToLogsOnError).
WATCHDOG_TAIL = (
    "[rank1]:[E1207 10:00:00.000000000 ProcessGroupNCCL.cpp:632] [Rank 1] Watchdog caught collective "
    "operation timeout: WorkNCCL(SeqNum=808, OpType=ALLREDUCE, NumelIn=9801523, NumelOut=9801523, "
    "Timeout(ms)=1800000) ran for 1800020 milliseconds before timing out.\n"
    "[rank1]:[E1207 10:00:00.000000000 ProcessGroupNCCL.cpp:1785] [PG ID 0 PG GUID 0(default_pg) Rank 1] "
    "Exception (either an error or timeout) detected by watchdog at work: 808, last enqueued NCCL work: "
    "811, last completed NCCL work: 807.\n"
    "[2026-12-07 10:00:01,000] [INFO] [launch.py:335:sigkill_handler] Killing subprocess 4242\n"
    "[2026-12-07 10:00:01,000] [ERROR] [launch.py:341:sigkill_handler] ['python', '-u', '-m', "
    "'recipe_trainer.cli', 'train'] exits with return code = -6"
)
REMOTE_ERROR_TAIL = (
    "torch.distributed.DistBackendError: NCCL error in: /pytorch/torch/csrc/distributed/c10d/"
    "NCCLUtils.hpp:268, remote process exited or there was a network error, NCCL version 2.21.5\n"
    "ncclRemoteError: A call failed possibly due to a network error or a remote process exiting "
    "prematurely.\nLast error:\nsocketProgress: Connection closed by remote peer node-2<42830>"
)
SOCKET_WARN_TAIL = (
    "node-1:13571:13571 [0] misc/socket.cc:538 NCCL WARN Net : Connection closed by remote peer node-2<47861>"
)
ILLEGAL_ACCESS = (
    "RuntimeError: CUDA error: an illegal memory access was encountered CUDA kernel errors might be "
    "asynchronously reported at some other API call, so the stacktrace below might be incorrect."
)
ECC = "RuntimeError: CUDA error: uncorrectable ECC error encountered"
LAUNCH_FAILURE = "RuntimeError: CUDA error: unspecified launch failure"
XID_TAIL = "NVRM: Xid (PCI:0000:3b:00): 79, pid=4242, name=python, GPU has fallen off the bus."
NO_KERNEL_RAW = "RuntimeError: CUDA error: no kernel image is available for execution on the device"
NO_KERNEL_TRAINER = (  # what recipe_trainer's train command writes for it
    "UnsupportedGPU: NVIDIA B200 (sm_100) has no kernels in this trainer image (built for sm_80 sm_86 "
    "sm_89 sm_90); rebuild it with this GPU's architecture in TORCH_CUDA_ARCH_LIST (RuntimeError: CUDA "
    "error: no kernel image is available for execution on the device)"
)
PEER_LOST_TRAINER = (  # a rank that caught the NCCL error itself (recipe_trainer termination.py)
    "PeerLost: another rank of the gang vanished or hung during a collective operation; restart the "
    f"gang from the last checkpoint (DistBackendError: {REMOTE_ERROR_TAIL})"
)

# sample -> (exit code, termination message, expected reason, retryable)
SAMPLES = {
    "nccl watchdog timeout through deepspeed's launcher (SIGABRT, exit 250)": (250, WATCHDOG_TAIL, Reason.PEER_LOST, True),
    "nccl watchdog timeout, rank is PID 1's child (SIGABRT, exit 134)": (134, WATCHDOG_TAIL, Reason.PEER_LOST, True),
    "ncclRemoteError in the log tail (exit 250)": (250, REMOTE_ERROR_TAIL, Reason.PEER_LOST, True),
    "nccl socket 'connection closed by remote peer' (exit 250)": (250, SOCKET_WARN_TAIL, Reason.PEER_LOST, True),
    "trainer caught ncclRemoteError (exit 141)": (141, PEER_LOST_TRAINER, Reason.PEER_LOST, True),
    "SIGABRT without transport words stays a signal": (250, "Aborted (core dumped)", Reason.SIGNALED, True),
    "exit 1 mentioning a broken pipe stays the trainer's verdict": (1, "ValueError: broken pipe in the data", Reason.TRAINER_ERROR, False),
    "illegal memory access (exit 1)": (1, ILLEGAL_ACCESS, Reason.GPU_FAULT, True),
    "uncorrectable ECC error (exit 1)": (1, ECC, Reason.GPU_FAULT, True),
    "unspecified launch failure (exit 1)": (1, LAUNCH_FAILURE, Reason.GPU_FAULT, True),
    "Xid 79, fallen off the bus, in the log tail (exit 250)": (250, XID_TAIL, Reason.GPU_FAULT, True),
    "no kernel image, as the trainer names it (exit 1)": (1, NO_KERNEL_TRAINER, Reason.UNSUPPORTED_GPU, False),
    "no kernel image, raw CUDA text (exit 1)": (1, NO_KERNEL_RAW, Reason.UNSUPPORTED_GPU, False),
    "no kernel image through the launcher (exit 250)": (250, NO_KERNEL_RAW, Reason.UNSUPPORTED_GPU, False),
}  # fmt: skip


def failed_pod(code: int, message: str, index: int = 0, node: str = "gpu-node-7") -> PodView:
    return PodView(
        name=f"flan-{index}",
        index=index,
        attempt=1,
        phase="Failed",
        node_name=node,
        terminated_reason="Error",
        terminated_exit_code=code,
        terminated_message=message,
    )


@pytest.mark.parametrize("sample", SAMPLES, ids=list(SAMPLES))
def test_gpu_world_samples(sample):
    code, message, reason, retryable = SAMPLES[sample]
    found = classify_pod(failed_pod(code, message), 10.0, 900.0)
    assert (found.reason, found.retryable, found.exit_code) == (reason, retryable, code)
    assert found.retryable == (found.reason.retry.name == "RESTART")


def test_a_gpu_fault_names_its_node_and_an_unsupported_gpu_names_gpu_and_architectures():
    fault = classify_pod(failed_pod(1, ILLEGAL_ACCESS), 10.0, 900.0)
    assert fault.node == "gpu-node-7" and fault.message.startswith("node gpu-node-7: exit code 1")
    unsupported = classify_pod(failed_pod(1, NO_KERNEL_TRAINER), 10.0, 900.0)
    assert "NVIDIA B200 (sm_100)" in unsupported.message and "sm_80 sm_86 sm_89 sm_90" in unsupported.message


def test_the_faulty_rank_explains_the_attempt_not_its_victims():
    victim = failed_pod(250, WATCHDOG_TAIL, index=0, node="gpu-node-1")
    culprit = failed_pod(1, ECC, index=1, node="gpu-node-7")
    found = first_failure(None, [victim, culprit], 10.0, 900.0)
    assert found.reason is Reason.GPU_FAULT and found.pod == "flan-1" and found.node == "gpu-node-7"


MANIFEST = {
    "apiVersion": "training.chefgenius.io/v1alpha1",
    "kind": "RecipeTrainingJob",
    "metadata": {"name": "flan", "namespace": "ml", "creationTimestamp": "2026-01-01T11:00:00Z"},
    "spec": {"model": {"name": "m"}, "dataset": {"path": "/d"}, "resources": {"nodes": 2}},
}


def test_a_gpu_fault_restarts_the_gang_off_the_failed_node_and_says_which_in_an_event():
    from datetime import UTC, datetime

    from recipe_api.status import RecipeTrainingJobStatus
    from recipe_operator.failures import JobView

    job = parse_job(copy.deepcopy(MANIFEST))
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    st = RecipeTrainingJobStatus(
        phase="Running", start_time="2026-01-01T11:00:00Z", admission_time="2026-01-01T11:00:00Z"
    )
    pods = (failed_pod(250, WATCHDOG_TAIL, 0, "gpu-node-1"), failed_pod(1, ILLEGAL_ACCESS, 1, "gpu-node-7"))
    observed = phases.Observed(job=job, status=st, now=now, child=JobView(name="flan", attempt=1), pods=pods)
    d = phases.decide(observed)
    assert d.status.phase == "Restarting" and d.status.failure.reason == "GPUFault"
    assert d.status.avoided_nodes == ["gpu-node-7"]
    (gpu_event,) = [e for e in d.events if e.reason == "GPUFault"]
    assert (
        gpu_event.type == "Warning"
        and "node gpu-node-7" in gpu_event.message
        and "flan-1" in gpu_event.message
    )
    # the next attempt is created with the node to avoid, and its pods cannot land there
    relaunch = phases.decide(phases.Observed(job=job, status=d.status, now=now))
    (create,) = [a for a in relaunch.actions if isinstance(a, phases.CreateJob)]
    assert create.attempt == 2 and create.avoid_nodes == ("gpu-node-7",)
    manifest = builders.build_job(job, "uid", create.attempt, "img", None, create.avoid_nodes)
    terms = manifest["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    assert terms == [
        {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["gpu-node-7"]}]}
    ]


def test_an_unsupported_gpu_fails_the_job_at_once():
    from datetime import UTC, datetime

    from recipe_api.status import RecipeTrainingJobStatus
    from recipe_operator.failures import JobView

    job = parse_job(copy.deepcopy(MANIFEST))
    st = RecipeTrainingJobStatus(
        phase="Running", start_time="2026-01-01T11:00:00Z", admission_time="2026-01-01T11:00:00Z"
    )
    observed = phases.Observed(
        job=job,
        status=st,
        now=datetime(2026, 1, 1, 12, tzinfo=UTC),
        child=JobView(name="flan", attempt=1),
        pods=(failed_pod(1, NO_KERNEL_TRAINER),),
    )
    d = phases.decide(observed)
    assert d.status.phase == "Failed" and d.status.failure.reason == "UnsupportedGPU"
    assert d.status.restarts == 0 and not d.status.avoided_nodes


def test_a_pod_view_reads_its_node():
    view = PodView.from_dict({"metadata": {"name": "p"}, "spec": {"nodeName": "gpu-node-3"}, "status": {}})
    assert view.node_name == "gpu-node-3"
    assert FailureInfo(Reason.GPU_FAULT, "m", True).node is None
