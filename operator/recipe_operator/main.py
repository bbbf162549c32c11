"""`recipe-operator`: run the kopf operator with the settings from RECIPE_OPERATOR_* variables.

Equivalent to `kopf run -m recipe_operator.handlers` with `-A` (or `--namespace` per watched
namespace), `--liveness=http://0.0.0.0:<health port>/healthz` and `--standalone`: kopf peering is never used
(active/standby replicas elect a leader on a Lease, see leader.py). The settings are read
once, here, and handed to the handlers in kopf's memo, so a bad variable fails before kopf starts.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .settings import Settings


def kopf_run_arguments(settings: Settings) -> dict:
    """Keyword arguments of kopf.run() for these settings (pure, tested)."""
    arguments: dict = {
        "liveness_endpoint": f"http://0.0.0.0:{settings.health_port}/healthz",
        "standalone": True,
    }
    if settings.all_namespaces:
        arguments["clusterwide"] = True
    else:
        arguments["namespaces"] = list(settings.namespaces)
    return arguments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="recipe-operator",
        description="Reconcile RecipeTrainingJobs into DeepSpeed training gangs. "
        "Configured by RECIPE_OPERATOR_* environment variables (see recipe_operator.settings).",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"recipe-operator: invalid RECIPE_OPERATOR_* setting: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    import kopf

    from . import handlers  # noqa: F401  (registers the handlers)

    kopf.run(**kopf_run_arguments(settings), memo=kopf.Memo(settings=settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
