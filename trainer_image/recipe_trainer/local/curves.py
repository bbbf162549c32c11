"""`runs/<name>/curves.png`: training and validation loss, learning rate and generated-recipe
quality over optimizer steps. The training loss drawn beside validation loss is the same measure
(plain cross-entropy per target token); the label-smoothed objective the optimizer minimises is a
second, dashed series, since smoothing alone lifts it well above both. Drawn from the events of
the run log (`run_log`; resumed runs included: a step run twice, before a crash and after the
resume, is drawn once, the later value)."""

from __future__ import annotations

from pathlib import Path


def plot_curves(events: list[dict], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = {e["step"]: e for e in events if e.get("event") == "step" and e.get("loss") is not None}
    validations = {e["step"]: e for e in events if e.get("event") == "validation"}
    figure, (loss_axis, lr_axis, quality_axis) = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    train = sorted(steps)
    loss_axis.plot(train, [steps[s]["loss"] for s in train], label="training loss", linewidth=1)
    smoothed = [s for s in train if steps[s].get("objective") not in (None, steps[s]["loss"])]
    if smoothed:
        loss_axis.plot(
            smoothed, [steps[s]["objective"] for s in smoothed], "--", linewidth=1, alpha=0.6,
            label="training objective (label-smoothed)",
        )  # fmt: skip
    checked = sorted(validations)
    loss_axis.plot(
        checked, [validations[s]["validation_loss"] for s in checked], "o-", label="validation loss"
    )
    loss_axis.set_ylabel("loss per token")
    loss_axis.legend()
    lr_axis.plot(train, [steps[s]["learning_rate"] for s in train])
    lr_axis.set_ylabel("learning rate")
    scored = [s for s in checked if validations[s].get("quality") is not None]
    quality_axis.plot(scored, [validations[s]["quality"] for s in scored], "o-", color="tab:green")
    quality_axis.set_ylabel("quality of generated recipes")
    quality_axis.set_ylim(0, 1)
    quality_axis.set_xlabel("optimizer step")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
