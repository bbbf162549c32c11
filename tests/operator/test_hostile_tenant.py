"""Issue 23: what one tenant's job (or its trainer image) can do to the operator that serves every
tenant. Each test attacks the way the issue describes."""

from __future__ import annotations

import asyncio
import threading

from recipe_operator import reconcile

BODY = {
    "apiVersion": "training.chefgenius.io/v1alpha1",
    "kind": "RecipeTrainingJob",
    "metadata": {"name": "flan", "namespace": "ml"},
    "spec": {"model": {"name": "m"}, "dataset": {"path": "/d"}},
}


def test_reconcile_validates_the_spec_off_the_event_loop(monkeypatch):
    """A validation that blocks must leave the event loop free (it also serves /healthz and every
    other job): the parse waits for a callback only the running loop can make."""
    loop_ran = threading.Event()

    def blocking_parse(manifest):
        assert loop_ran.wait(timeout=60), "the spec was validated on the event loop, which stood still"
        return manifest["metadata"]["name"]

    monkeypatch.setattr(reconcile, "parse_job", blocking_parse)

    async def scenario():
        asyncio.get_running_loop().call_soon(loop_ran.set)
        return await reconcile.validate_off_loop(BODY)

    assert asyncio.run(scenario()) == ("flan", ())
