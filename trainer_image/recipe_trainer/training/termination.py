"""The container's last word: Kubernetes copies the termination-log file into the pod status,
where the operator reads it (no log scraping, no credentials in the trainer).

* failure: one line, the reason (`OutOfMemoryError: CUDA out of memory ...`), which the operator
  puts into `status.failure.message`;
* success: the JSON of `recipe_api.trainer_config.TerminationSummary`, which the operator reads
  back with the same model into `status.evaluation` / `status.lastCheckpoint`.

Kubernetes keeps at most 4096 bytes of it. Writing it must never turn into a second error
(read-only file system, local runs without /dev/termination-log): on failure it is printed.
The path is `TrainerRuntime.termination_log`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from recipe_api.contract import PEER_LOST_MARKERS, UNSUPPORTED_GPU_MARKERS, UNSUPPORTED_GPU_PREFIX
from recipe_api.trainer_config import TERMINATION_LOG_PATH, TerminationSummary

MESSAGE_LIMIT_BYTES = 4096
_ELLIPSIS = "..."


def failure_message(reason: str | BaseException) -> str:
    """One line under the size limit; an exception reads `TypeName: message`."""
    if isinstance(reason, BaseException):
        text = f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__
    else:
        text = reason
    return _truncate(" ".join(text.split()) or "unknown error")


def is_peer_lost(exc: BaseException) -> bool:
    """True when `exc` says another rank vanished or hung in a collective: this rank is a victim,
    and restarting the gang (contract.EXIT_CODE_PEER_LOST) is the cure, not fixing the trainer."""
    if not isinstance(exc, RuntimeError | ConnectionError | TimeoutError):
        return False
    text = str(exc).lower()
    return any(marker in text for marker in PEER_LOST_MARKERS)


def is_unsupported_gpu(exc: BaseException) -> bool:
    """True when the image has no kernel for this GPU (e.g. an image built without sm_100 on a
    B200): no retry on any node of this kind can help."""
    text = str(exc).lower()
    return any(marker in text for marker in UNSUPPORTED_GPU_MARKERS)


def unsupported_gpu_message(exc: BaseException, gpu: str, image_archs: list[str]) -> str:
    """The one line the operator shows as UnsupportedGPU: which GPU, which architectures the image
    was built for (torch.cuda.get_arch_list()), and the error itself."""
    built = " ".join(image_archs) or "no CUDA architectures"
    return failure_message(
        f"{UNSUPPORTED_GPU_PREFIX}{gpu} has no kernels in this trainer image (built for {built}); "
        f"rebuild it with this GPU's architecture in TORCH_CUDA_ARCH_LIST ({type(exc).__name__}: {exc})"
    )


def peer_lost_message(exc: BaseException) -> str:
    """The one-line reason a victim rank leaves: what happened, then the transport's own words."""
    return failure_message(
        f"PeerLost: another rank of the gang vanished or hung during a collective operation; "
        f"restart the gang from the last checkpoint ({type(exc).__name__}: {exc})"
    )


def success_message(summary: TerminationSummary) -> str:
    """The summary as JSON (non-finite numbers become null). Should paths make it too long,
    they are left out, least important first, so the JSON stays whole and valid."""
    droppable = [("last_checkpoint",), ("evaluation", "best_checkpoint"), ("best_checkpoint",)]
    message = summary.model_dump_json(by_alias=True)
    while len(message.encode()) > MESSAGE_LIMIT_BYTES and droppable:
        *parents, field = droppable.pop(0)
        summary = summary.model_copy(deep=True)
        owner = summary
        for parent in parents:
            owner = getattr(owner, parent)
        setattr(owner, field, None)
        message = summary.model_dump_json(by_alias=True)
    return message


def first_failure(termination_log: str | Path) -> bool:
    """True when no rank has written a reason yet: when one rank dies the others fail with
    "connection closed by peer", which must not replace the real reason in a shared file."""
    path = Path(termination_log)
    try:
        return not path.is_file() or path.stat().st_size == 0
    except OSError:
        return True


def write_failure(reason: str | BaseException, path: str | Path = TERMINATION_LOG_PATH) -> str:
    """Write the one-line reason; returns it. Also printed to stderr, where `kubectl logs` shows it."""
    message = failure_message(reason)
    print(f"training failed: {message}", file=sys.stderr, flush=True)
    _write(message, path)
    return message


def write_success(summary: TerminationSummary, path: str | Path = TERMINATION_LOG_PATH) -> str:
    """Write the JSON summary; returns it."""
    message = success_message(summary)
    _write(message, path)
    return message


def _write(message: str, path: str | Path) -> None:
    try:
        Path(path).write_text(message, encoding="utf-8")
    except Exception as exc:  # the trainer's exit must not fail on its epitaph
        print(
            f"could not write the termination log {path} ({type(exc).__name__}: {exc}); it says: {message}",
            file=sys.stderr,
            flush=True,
        )


def _truncate(text: str) -> str:
    encoded = text.encode()
    if len(encoded) <= MESSAGE_LIMIT_BYTES:
        return text
    room = MESSAGE_LIMIT_BYTES - len(_ELLIPSIS)
    return encoded[:room].decode("utf-8", errors="ignore") + _ELLIPSIS
