"""Reading RecipeTrainingJob manifests from YAML files, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import yaml

from .v1alpha1 import KIND, RecipeTrainingJob
from .validation import FieldError, InvalidSpecError, parse_job


def load_jobs(path: str | Path) -> list[RecipeTrainingJob]:
    """Every RecipeTrainingJob document in a (multi-document) YAML file, validated.

    Documents of other kinds are skipped (a file may hold a Secret beside the job);
    raises InvalidSpecError with every problem, paths prefixed by the document index
    when the file holds several jobs.
    """
    try:
        docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(top level)"
        raise InvalidSpecError(
            [FieldError(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]
        ) from None
    except OSError as exc:
        raise InvalidSpecError([FieldError("(file)", f"cannot read: {exc.strerror}")]) from None
    jobs_docs = [d for d in docs if not isinstance(d, dict) or d.get("kind", KIND) == KIND]
    if not jobs_docs:
        raise InvalidSpecError([FieldError("kind", _no_job(docs))])
    jobs, errors = [], []
    for index, doc in enumerate(jobs_docs):
        try:
            jobs.append(parse_job(doc))
        except InvalidSpecError as exc:
            prefix = f"[document {index}] " if len(jobs_docs) > 1 else ""
            errors += [FieldError(prefix + e.path, e.message) for e in exc.errors]
    if errors:
        raise InvalidSpecError(errors)
    return jobs


def _no_job(docs: list) -> str:
    """Why a file holds no job, naming what it holds instead (an empty file, a Deployment, ...)."""
    if not docs:
        return f"the file is empty; expected a {KIND} manifest (see examples/quickstart-cpu.yaml)"
    found = ", ".join(
        f"{d.get('kind', '?')} {(d.get('metadata') or {}).get('name', '')}".strip() for d in docs
    )
    return f"no {KIND} document in this file (found {found}); set kind: {KIND}"
