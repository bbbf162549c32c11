"""Evaluating a checkpoint: loss and perplexity over real tokens, and metrics of generated recipes.

Used by `recipe-train eval` and `compare` (and open to the training loop's final evaluation):

* loss / perplexity: plain cross-entropy (no label smoothing) summed over target tokens only, so
  padding and, for causal models, the prompt never count; perplexity = exp(mean loss). Examples
  are tokenized exactly as the trainer tokenizes them (`token_ids.tokenize_pairs`).
* generation metrics on N recipes drawn with a seed from the same examples: the project's recipe
  quality score (`recipe_trainer.quality`), ROUGE-L F1 (`rouge-score`, stemmed) and sentence BLEU
  (`sacrebleu`, 0-100) of the generated recipe against the real one. Scores are kept per sample,
  so `compare` can run a paired bootstrap on them.

Generation is greedy (batched, `inference.generate_recipes`), so with the same seed (which picks
the samples) the numbers repeat, up to float rounding between batch shapes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from recipe_api.v1alpha1 import RecipeTrainingJobSpec

from ..inference import GENERATION_BATCH_SIZE, LoadedCheckpoint, generate_recipes, lengths_of, tokenize_pair

if TYPE_CHECKING:
    pass

GENERATION_METRICS = ("quality", "rouge_l", "bleu")
DEFAULT_SAMPLES = 20
Example = tuple[str, str]  # (prompt, reference recipe), as the trainer formats them
Advance = Callable[[int], None]


@dataclass
class SampleResult:
    """One generated recipe with its reference and scores."""

    index: int
    prompt: str
    reference: str
    generated: str
    scores: dict[str, float]


@dataclass
class EvalResult:
    checkpoint: str
    step: int | None
    data: str
    split: str
    seed: int
    examples: int
    target_tokens: int
    loss: float
    perplexity: float
    samples: list[SampleResult] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        """Headline numbers: loss, perplexity and the mean of each generation metric (those only
        when recipes were generated)."""
        out = {"loss": self.loss, "perplexity": self.perplexity}
        if self.samples:
            for name in GENERATION_METRICS:
                values = self.per_sample(name)
                out[name] = sum(values) / len(values)
        return out

    def per_sample(self, name: str) -> list[float]:
        return [sample.scores[name] for sample in self.samples]

    def diversity(self) -> dict[str, dict]:
        """The generated set's diversity against the references' (`diversity.diversity_report`)."""
        from .diversity import diversity_report

        if len(self.samples) < 2:
            return {}
        return diversity_report([s.generated for s in self.samples], [s.reference for s in self.samples])

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "metrics": self.metrics(), "diversity": self.diversity()}


# ---------------------------------------------------------------- data


SPLITS = ("validation", "train", "all")


def spec_for_data(spec: RecipeTrainingJobSpec, data_path: str) -> RecipeTrainingJobSpec:
    """The checkpoint's spec pointed at `data_path` (a local file): same validation fraction,
    cleaning and max recipes, so the split is the one the training run used on that data."""
    dataset = spec.dataset.model_copy(update={"path": data_path, "volume": None})
    return spec.model_copy(update={"dataset": dataset})


def load_examples(spec: RecipeTrainingJobSpec, task: str, split: str = "validation") -> list[Example]:
    """(prompt, recipe) pairs of `split` of the spec's dataset, formatted as the trainer formats
    them: "validation" / "train" by the data pipeline's stable hash split, or "all" recipes that
    survive cleaning (`--whole-file`)."""
    from ..data.pipeline import format_pair, recipe_splits

    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    splits, _ = recipe_splits(spec)
    names = ("train", "validation") if split == "all" else (split,)
    return [format_pair(recipe, task) for name in names for recipe in splits[name]]


# ---------------------------------------------------------------- metrics


def loss_and_perplexity(
    loaded: LoadedCheckpoint,
    examples: Sequence[Example],
    max_source_length: int,
    max_target_length: int,
    batch_size: int = 8,
    advance: Advance | None = None,
) -> tuple[float, float, int]:
    """(mean loss per target token, perplexity, target token count) over `examples`."""
    import torch

    from ..data.packing import collate_rows
    from ..inference import model_device
    from ..model import decoder_start_token_id
    from ..training.forward import batch_loss
    from ..training.metrics import perplexity

    tokenizer, task = loaded.tokenizer, loaded.task
    device = model_device(loaded.model)
    decoder_start = decoder_start_token_id(loaded.model.config, tokenizer)  # BART's own, T5's pad
    total, count = 0.0, 0
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        rows = [
            [tokenize_pair(tokenizer, p, r, task, max_source_length, max_target_length)] for p, r in chunk
        ]
        batch = collate_rows(rows, task, tokenizer.pad_token_id, decoder_start, packed=False)
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        with torch.inference_mode():
            loss = batch_loss(loaded.model, batch, task).loss
        total += float(loss.sum)
        count += int(loss.tokens)
        if advance:
            advance(len(chunk))
    if count == 0:
        raise ValueError("no target tokens to evaluate: the data has no recipes in this split")
    mean = total / count
    return mean, perplexity(mean), count


def score_generated(generated: str, reference: str, prompt: str | None = None) -> dict[str, float]:
    """Quality of the generated recipe (with its prompt: whether it used what was asked), and its
    overlap with the real recipe (not `data.scoring.score_recipe`, which scores a corpus recipe
    for the curriculum)."""
    import sacrebleu
    from rouge_score import rouge_scorer

    from ..quality import recipe_quality

    rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score(reference, generated)["rougeL"]
    return {
        "quality": float(recipe_quality(generated, prompt)["overall"]),
        "rouge_l": float(rouge.fmeasure),
        "bleu": float(sacrebleu.sentence_bleu(generated, [reference]).score),
    }


def pick_samples(n_examples: int, n: int, seed: int) -> list[int]:
    """Which examples to generate for: a seeded draw, in order, the same for every checkpoint."""
    return sorted(random.Random(seed).sample(range(n_examples), min(n, n_examples)))


def generate_and_score(
    loaded: LoadedCheckpoint,
    examples: Sequence[Example],
    indices: Sequence[int],
    max_source_length: int,
    max_new_tokens: int,
    advance: Advance | None = None,
) -> list[SampleResult]:
    """Generate for the examples at `indices`, a batch at a time, and score each recipe."""
    results = []
    for first in range(0, len(indices), GENERATION_BATCH_SIZE):
        batch = indices[first : first + GENERATION_BATCH_SIZE]
        generated = generate_recipes(
            loaded.model,
            loaded.tokenizer,
            [examples[index][0] for index in batch],
            max_new_tokens=max_new_tokens,
            max_source_length=max_source_length,
        )
        for index, text in zip(batch, generated, strict=True):
            prompt, reference = examples[index]
            results.append(
                SampleResult(index, prompt, reference, text, score_generated(text, reference, prompt))
            )
        if advance:
            advance(len(batch))
    return results


def evaluate(
    loaded: LoadedCheckpoint,
    examples: Sequence[Example],
    *,
    data: str,
    split: str,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    advance: Advance | None = None,
) -> EvalResult:
    """All metrics of one checkpoint on `examples`; `advance` is told of each example and sample
    done (len(examples) + samples in all), for a progress bar."""
    max_source, max_target = lengths_of(loaded)
    loss, perplexity, tokens = loss_and_perplexity(
        loaded, examples, max_source, max_target, batch_size=batch_size, advance=advance
    )
    indices = pick_samples(len(examples), samples, seed)
    max_new_tokens = max_new_tokens or max_target  # as long as the recipes the model was trained on
    results = generate_and_score(loaded, examples, indices, max_source, max_new_tokens, advance)
    return EvalResult(
        checkpoint=str(loaded.path),
        step=loaded.step,
        data=data,
        split=split,
        seed=seed,
        examples=len(examples),
        target_tokens=tokens,
        loss=loss,
        perplexity=perplexity,
        samples=results,
    )
