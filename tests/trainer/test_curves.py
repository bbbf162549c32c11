"""curves.png: the training loss drawn beside validation loss is the same measure (plain
cross-entropy); the label-smoothed objective is a second series, not the main one."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from recipe_trainer.local.curves import plot_curves  # noqa: E402


def _events(smoothed: bool) -> list[dict]:
    events = [{"event": "validation", "step": 0, "validation_loss": 1.80, "perplexity": 6.0, "quality": 0.0}]
    for step in range(1, 11):
        loss = 1.8 - 0.03 * step
        events.append(
            {"event": "step", "step": step, "loss": loss, "objective": loss + 2.0 if smoothed else loss,
             "learning_rate": 1e-4}
        )  # fmt: skip
    events.append(
        {"event": "validation", "step": 10, "validation_loss": 1.52, "perplexity": 4.6, "quality": 0.4}
    )
    return events


def _loss_lines(monkeypatch, events, tmp_path):
    import matplotlib.figure

    drawn = {}
    real_savefig = matplotlib.figure.Figure.savefig

    def capture(figure, path, **kwargs):
        drawn.update({line.get_label(): list(line.get_ydata()) for line in figure.axes[0].get_lines()})
        return real_savefig(figure, path, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", capture)
    assert plot_curves(events, tmp_path / "curves.png").stat().st_size > 0
    return drawn


def test_training_loss_is_plain_cross_entropy_and_the_objective_a_second_series(monkeypatch, tmp_path):
    lines = _loss_lines(monkeypatch, _events(smoothed=True), tmp_path)
    assert lines["training loss"][0] == 1.8 - 0.03
    assert lines["training objective (label-smoothed)"][0] == 1.8 - 0.03 + 2.0
    assert lines["validation loss"] == [1.80, 1.52]


def test_without_label_smoothing_there_is_no_second_series(monkeypatch, tmp_path):
    lines = _loss_lines(monkeypatch, _events(smoothed=False), tmp_path)
    assert set(lines) == {"training loss", "validation loss"}
