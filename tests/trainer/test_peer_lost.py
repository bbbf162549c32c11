"""A rank whose peer vanished exits as a victim (PeerLost, a retryable code) so the operator restarts
the gang; any other error stays a trainer error. The messages are the transports' own words."""

from __future__ import annotations

import pytest
from recipe_api.contract import EXIT_CODE_PEER_LOST
from recipe_trainer.training.termination import (
    is_peer_lost,
    is_unsupported_gpu,
    peer_lost_message,
    unsupported_gpu_message,
)
from torch.distributed import DistBackendError

GLOO_RESET = (
    "[../third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:6017: Connection reset by "
    "peer. This is typically caused by a remote worker hanging or bugs in the application."
)
GLOO_TIMEOUT = (
    "[../third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 5000ms for recv"
)

NCCL_REMOTE_ERROR = (
    "NCCL error in: /pytorch/torch/csrc/distributed/c10d/NCCLUtils.hpp:268, remote process exited or there "
    "was a network error, NCCL version 2.21.5\nncclRemoteError: A call failed possibly due to a network "
    "error or a remote process exiting prematurely.\nLast error:\nsocketProgress: Connection closed by "
    "remote peer node-2<42830>"
)
NCCL_WATCHDOG = (
    "[Rank 5] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=9141, OpType=_ALLGATHER_BASE, "
    "NumelIn=19008, NumelOut=152064, Timeout(ms)=1800000) ran for 1800020 milliseconds before timing out."
)


@pytest.mark.parametrize(
    ("exc", "lost"),
    [
        (RuntimeError(GLOO_RESET), True),  # peer SIGKILLed: its sockets reset (measured, torch 2.13)
        (RuntimeError(GLOO_TIMEOUT), True),  # peer hung: the process-group timeout ran out (measured)
        (RuntimeError("[pair.cc:589] Connection closed by peer [10.0.0.7]:41523"), True),
        (RuntimeError("NCCL communicator was aborted on rank 0."), True),
        (ConnectionResetError("Connection reset by peer"), True),
        (DistBackendError(NCCL_REMOTE_ERROR), True),  # NCCL: a peer on another node exited
        (DistBackendError(NCCL_WATCHDOG), True),
        (
            RuntimeError("CUDA error: an illegal memory access was encountered"),
            False,
        ),  # GPUFault: operator's call
        (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), False),
        (ValueError("spec.dataset.path: no such file; timed out waiting"), False),  # not a transport error
        (KeyboardInterrupt(), False),
    ],
)
def test_peer_lost_is_told_from_other_failures(exc, lost):
    assert is_peer_lost(exc) is lost


def test_peer_lost_message_is_one_line_and_says_what_to_expect():
    message = peer_lost_message(RuntimeError(GLOO_RESET + "\n  at frame 2"))
    assert "\n" not in message
    assert message.startswith("PeerLost: another rank of the gang vanished or hung")
    assert "Connection reset by peer" in message


def test_peer_lost_code_is_retried_under_its_own_name():
    """The operator retries PeerLost (a gang restart) and names it, so that the peer's own
    failure can explain the attempt instead (recipe_operator.failures.first_failure)."""
    from recipe_operator.failures import classify_exit

    assert classify_exit("Error", EXIT_CODE_PEER_LOST) == ("PeerLost", True)


def test_no_kernel_image_is_named_with_the_gpu_and_the_images_architectures():
    exc = RuntimeError("CUDA error: no kernel image is available for execution on the device")
    assert is_unsupported_gpu(exc) and not is_unsupported_gpu(RuntimeError("CUDA out of memory"))
    message = unsupported_gpu_message(exc, "NVIDIA B200 (sm_100)", ["sm_80", "sm_86", "sm_90"])
    assert message.startswith("UnsupportedGPU: NVIDIA B200 (sm_100) has no kernels")
    assert "built for sm_80 sm_86 sm_90" in message and "no kernel image" in message and "\n" not in message


def test_nccl_defaults_make_failures_fast_and_legible_and_never_override_the_user():
    from recipe_trainer.training.ranks import set_nccl_defaults

    environ = {"NCCL_DEBUG": "INFO"}  # the user's, e.g. from spec.resources.envFrom
    assert set_nccl_defaults(environ) == {"TORCH_NCCL_ASYNC_ERROR_HANDLING": "1"}
    assert environ == {"NCCL_DEBUG": "INFO", "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1"}
    assert set_nccl_defaults({}) == {"TORCH_NCCL_ASYNC_ERROR_HANDLING": "1", "NCCL_DEBUG": "WARN"}


def test_naming_the_gpu_never_fails_even_without_a_working_one():
    """Asked right after a CUDA error; here there is no GPU at all, and torch raises when asked for
    its capability: the message still names the architectures this torch was built for."""
    import torch
    from recipe_trainer.commands.train import gpu_and_image_archs

    gpu, archs = gpu_and_image_archs()
    assert archs == torch.cuda.get_arch_list()
    if not torch.cuda.is_available():
        assert gpu == "this GPU"
