"""`recipe-train validate FILE...`: the same validation the operator and local mode run.

Exit 0 when every file is valid; otherwise exit 1 and one line per problem:
`FILE: spec.lora.r: Input should be greater than or equal to 1 (got 0)`.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="RecipeTrainingJob YAML manifests")
    parser.add_argument("--quiet", "-q", action="store_true", help="print errors only")


def run(args: argparse.Namespace) -> int:
    from recipe_api import InvalidSpecError, load_jobs

    failed = False
    for path in args.files:
        try:
            jobs = load_jobs(path)
        except InvalidSpecError as exc:
            failed = True
            for error in exc.errors:
                print(f"{path}: {error}", file=sys.stderr)
            continue
        if not args.quiet:
            names = ", ".join(job.metadata.name for job in jobs)
            print(f"{path}: valid ({names})")
    return 1 if failed else 0
