"""Two evaluations of the same recipes side by side, and the reports that show them.

`build_comparison` puts the metrics of A and B (`checkpoint_eval.evaluate`, on the same recipes and
seeded samples) beside their difference B - A, with a paired bootstrap 95% interval (`bootstrap`)
for the generation metrics: an interval that excludes zero is a difference beyond the luck of
which recipes were sampled. The reports (a table, Markdown, HTML) show the same rows and the
generated recipes of both; `recipe-train compare` prints and writes them.
"""

from __future__ import annotations

import html
from typing import Any

from .bootstrap import paired_bootstrap
from .checkpoint_eval import GENERATION_METRICS
from .diversity import diversity_lines


def format_metric(name: str, value: float) -> str:
    return f"{value:.2f}" if name in ("perplexity", "bleu") else f"{value:.4f}"


def build_comparison(result_a: Any, result_b: Any, resamples: int, seed: int) -> dict[str, Any]:
    """Metrics of both, differences B - A, and paired bootstrap intervals of generation metrics."""
    metrics_a, metrics_b = result_a.metrics(), result_b.metrics()
    rows = {}
    for name in metrics_a:
        row: dict[str, Any] = {
            "a": metrics_a[name],
            "b": metrics_b[name],
            "difference": metrics_b[name] - metrics_a[name],
        }
        if name in GENERATION_METRICS and result_a.samples:
            row["interval"] = paired_bootstrap(
                result_a.per_sample(name), result_b.per_sample(name), resamples=resamples, seed=seed
            ).to_json()
        rows[name] = row
    return {
        "a": result_a.checkpoint,
        "b": result_b.checkpoint,
        "data": result_a.data,
        "split": result_a.split,
        "seed": seed,
        "metrics": rows,
        "diversity": {"a": result_a.diversity(), "b": result_b.diversity()},
        "samples": [
            {
                "prompt": sa.prompt,
                "reference": sa.reference,
                "a": sa.generated,
                "b": sb.generated,
                "scores_a": sa.scores,
                "scores_b": sb.scores,
            }
            for sa, sb in zip(result_a.samples, result_b.samples, strict=True)
        ],  # fmt: skip
    }


def interval_text(row: dict[str, Any], name: str) -> str:
    interval = row.get("interval")
    if interval is None:
        return ""
    verdict = " *" if interval["excludes_zero"] else ""
    return f"[{format_metric(name, interval['low'])}, {format_metric(name, interval['high'])}]{verdict}"


def metric_rows(comparison: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    return [
        (name, format_metric(name, row["a"]), format_metric(name, row["b"]),
         f"{row['difference']:+.4f}", interval_text(row, name))
        for name, row in comparison["metrics"].items()
    ]  # fmt: skip


HEADER = ("metric", "A", "B", "B - A", "95% CI of B - A")
LEGEND = (
    "`*`: the interval excludes zero (a difference beyond sampling noise); lower loss/perplexity is better."
)


def diversity_section(comparison: dict[str, Any]) -> list[str]:
    """Each side's generated-set diversity against the references' (`evaluation.diversity`)."""
    lines = []
    for side in ("a", "b"):
        lines += [
            f"- {side.upper()} {line}"
            for line in diversity_lines(comparison.get("diversity", {}).get(side, {}))
        ]
    return (
        ["## Diversity of the generated recipes vs the references (95% CI)", "", *lines, ""] if lines else []
    )


def markdown_report(comparison: dict[str, Any]) -> str:
    def cell(text: str) -> str:
        return html.escape(text, quote=False).replace("|", "\\|").replace("\n", "<br>")

    lines = [
        "# Checkpoint comparison",
        "",
        f"- A: `{comparison['a']}`",
        f"- B: `{comparison['b']}`",
        f"- data: `{comparison['data']}` ({comparison['split']}), sample seed {comparison['seed']}",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
        *("| " + " | ".join(row) + " |" for row in metric_rows(comparison)),
        "",
        LEGEND,
        "",
        *diversity_section(comparison),
        "## Generated recipes",
    ]
    for number, sample in enumerate(comparison["samples"], 1):
        lines += [
            "",
            f"### {number}. {cell(sample['prompt'].splitlines()[0] if sample['prompt'] else '')}",
            "",
            "| reference | A | B |",
            "|---|---|---|",
            f"| {cell(sample['reference'])} | {cell(sample['a'])} | {cell(sample['b'])} |",
        ]
    return "\n".join(lines) + "\n"


def html_report(comparison: dict[str, Any]) -> str:
    def esc(text: str) -> str:
        return html.escape(text).replace("\n", "<br>")

    metric_html = "".join(
        "<tr>" + "".join(f"<td>{esc(value)}</td>" for value in row) + "</tr>"
        for row in metric_rows(comparison)
    )
    sample_html = "".join(
        f"<h3>{number}. {esc(sample['prompt'])}</h3><table><tr><th>reference</th><th>A</th><th>B</th></tr>"
        f"<tr><td>{esc(sample['reference'])}</td><td>{esc(sample['a'])}</td><td>{esc(sample['b'])}</td></tr></table>"
        for number, sample in enumerate(comparison["samples"], 1)
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Checkpoint comparison</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}</style></head><body>"
        "<h1>Checkpoint comparison</h1>"
        f"<p>A: <code>{esc(comparison['a'])}</code><br>B: <code>{esc(comparison['b'])}</code><br>"
        f"data: <code>{esc(comparison['data'])}</code> ({esc(comparison['split'])}), sample seed {comparison['seed']}</p>"
        "<table><tr>" + "".join(f"<th>{h}</th>" for h in HEADER) + "</tr>" + metric_html + "</table>"
        f"<p>{esc(LEGEND.replace('`', ''))}</p><h2>Generated recipes</h2>{sample_html}</body></html>\n"
    )
