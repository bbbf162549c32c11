"""A recipe as model text: an instruction (source) and a structured recipe (target).

Target, the one format the model learns and `recipe_trainer.recipe_text` parses back:

    Title: No-Bake Nut Cookies
    Ingredients:
    - 1 c. firmly packed brown sugar
    - 1/2 c. evaporated milk
    Steps:
    1. In a heavy 2-quart saucepan, mix brown sugar, nuts, evaporated milk and butter.
    2. Stir over medium heat until mixture bubbles all over top.

Why explicit markers, bullets and numbers: T5's tokenizer drops newlines, and the generated text
must still split into its sections; the markers are what make that possible. For the same reason a
" - " inside an ingredient line is written "-" ("1 - 12 oz. can beer" -> "1-12 oz. can beer").

Source: an instruction naming the dish, then - where known - the ingredients (their names from
RecipeNLG's NER column when present, else the ingredient lines), e.g.
"Write a recipe for No-Bake Nut Cookies. Ingredients: brown sugar, milk, vanilla, nuts.".
Augmentation swaps the instruction sentence for another template (`augmentation.py`).

Causal LMs see one sequence, prompt + target; the pair is returned as (prompt, target) with the
prompt ending in a newline, so the tokenizer knows the prompt's length and the loss covers the
target only. Already-built JSONL pairs (`Recipe.pair`) pass through unchanged (the causal prompt
gets the same newline if it lacks one).
"""

from __future__ import annotations

import re
from typing import Literal

from ..recipe_text import INGREDIENTS_MARKER, STEPS_MARKER, TITLE_MARKER
from .records import Recipe

Task = Literal["seq2seq", "causal"]

DEFAULT_INSTRUCTION = "Write a recipe for {title}."
_INNER_DASH = re.compile(r"\s+-\s+")  # "1 - 12 oz. can" would read as two bullets without newlines
MAX_PROMPT_INGREDIENTS = 30  # longer lists are cut (counted in the prompt as "..."), sources stay short


def format_target(
    title: str, ingredients: tuple[str, ...] | list[str], steps: tuple[str, ...] | list[str]
) -> str:
    """The structured recipe text (see the module docstring)."""
    lines = [f"{TITLE_MARKER} {title}", INGREDIENTS_MARKER]
    lines += [f"- {_INNER_DASH.sub('-', item)}" for item in ingredients]
    lines.append(STEPS_MARKER)
    lines += [f"{number}. {step}" for number, step in enumerate(steps, start=1)]
    return "\n".join(lines)


def format_source(recipe: Recipe, instruction: str = DEFAULT_INSTRUCTION) -> str:
    """The instruction for a recipe: `instruction` with {title} filled, then its ingredients."""
    text = instruction.format(title=recipe.title)
    names = prompt_ingredients(recipe)
    if names:
        shown = names[:MAX_PROMPT_INGREDIENTS] + (["..."] if len(names) > MAX_PROMPT_INGREDIENTS else [])
        text += f" Ingredients: {', '.join(shown)}."
    return text


def prompt_ingredients(recipe: Recipe) -> list[str]:
    """What the prompt lists: NER names when known (the RecipeNLG task), else ingredient lines;
    each name once, in first-seen order and spelling. Why: RecipeNLG's NER repeats a name for
    every line that uses it ("italian seasoning, italian seasoning"), which only lengthens the
    prompt and teaches the model to repeat itself."""
    seen: set[str] = set()
    names = []
    for name in recipe.ner or recipe.ingredients:
        key = " ".join(name.casefold().split())
        if key and key not in seen:
            seen.add(key)
            names.append(name)
    return names


def format_pair(recipe: Recipe, task: Task, instruction: str = DEFAULT_INSTRUCTION) -> tuple[str, str]:
    """(source, target) of a recipe for the task. For "causal" the source is the prompt the
    target follows in one sequence, newline-terminated."""
    if recipe.pair is not None:
        source, target = recipe.pair
    else:
        source = format_source(recipe, instruction)
        target = format_target(recipe.title, recipe.ingredients, recipe.directions)
    if task == "causal" and not source.endswith("\n"):
        source += "\n"
    return source, target
