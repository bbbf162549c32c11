"""Where things live in a run directory: the contract between the training loop and local mode
(which write them) and the progress bar, the curves, the tests and the benchmarks (which read
them). The checkpoints' own layout is `checkpoint_layout`.

    <run_dir>/               runs/<name>/ in local mode; <volume>/run in pods (the operator's choice)
      train_log.jsonl        the run log: one JSON event a line, rank 0 appends (`run_log`)
      samples.json           the recipes generated at the latest validation, with their quality
      cache/                 the token cache, unless runtime.cacheDir puts it elsewhere
      .universal/            a resharded copy of the resumed checkpoint, while it is being loaded
    local mode only:
      trainer-config.yaml    the resolved TrainerConfig the ranks read
      train.log              the ranks' own output (stdout and stderr of the launcher)
      termination-log        the trainer's last word (the pod's /dev/termination-log)
      checkpoints/           the run's checkpoints
      curves.png             loss, learning rate and quality over steps (`curves`), drawn at the end

Names only: importing this module costs nothing (local mode imports it without torch).
"""

from __future__ import annotations

from recipe_api.trainer_config import CONFIG_FILE_NAME

RUN_LOG_FILE = "train_log.jsonl"
SAMPLES_FILE = "samples.json"
CACHE_DIR = "cache"
UNIVERSAL_DIR = ".universal"
CONFIG_FILE = CONFIG_FILE_NAME
OUTPUT_FILE = "train.log"
TERMINATION_FILE = "termination-log"
CHECKPOINTS_DIR = "checkpoints"
CURVES_FILE = "curves.png"
