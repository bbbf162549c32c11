"""The per-user cache: what is built or converted once per machine and shared by every run.

`$XDG_CACHE_HOME/chef-genius/`, else `~/.cache/chef-genius/`:

    models/<sha256>/       GGUF models converted to Hugging Face directories (`model_source`;
                           `$RECIPE_TRAINER_MODEL_CACHE` moves it)
    torch_extensions/      DeepSpeed's JIT-compiled C++ ops (`$TORCH_EXTENSIONS_DIR`, torch's own
                           variable, moves it)

Why here and not under the current directory: local mode used to compile DeepSpeed's CPU
communication op into `./.cache` of wherever the command was started, so every new folder cost a
minute and 3 GB of memory of compiling, and kept a `.cache/` the user never asked for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

EXTENSIONS_ENV = "TORCH_EXTENSIONS_DIR"
CPU_COMM_OP = "deepspeed_shm_comm"  # what DeepSpeed compiles at its first start on CPU (TOOLCHAIN.md)
FIRST_BUILD_NOTICE = "about a minute and up to 3 GB of memory, once"  # measured: 35 s idle, 131 s loaded


def cache_root(env: Mapping[str, str] = os.environ) -> Path:
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "chef-genius"


def extensions_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Where torch builds and finds C++ extensions for our runs."""
    return Path(env[EXTENSIONS_ENV]) if env.get(EXTENSIONS_ENV) else cache_root(env) / "torch_extensions"


def extension_built(name: str, directory: Path) -> bool:
    """Whether torch has built op `name` under `directory` (in torch's `<python>_<cuda>/` folder or,
    in older layouts, directly), so that the next start loads it instead of compiling."""
    return any(directory.glob(f"*/{name}/*.so")) or any(directory.glob(f"{name}/*.so"))
