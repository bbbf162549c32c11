"""The local-mode wing: what `recipe-train local` needs around the ranks it starts on this machine.

Launching DeepSpeed's runner (`launcher`), keeping its process tree from outliving the CLI
(`process_tree`) and the run directory to one run at a time (`run_lock`), following the run log
into a progress bar (`progress_bar`) and drawing the loss curves (`curves`).

May import: the shared top-level modules that import no torch (`run_layout`, `run_log`,
`model_source` for a GGUF conversion) and `data.loading`. Never `training` or `evaluation`, and no
torch beyond counting GPUs, so `recipe-train local` starts in well under a second.
"""
