"""What the tests that build network namespaces need: root (namespaces, nftables, routes) and the
tools. CI must run them, so there a missing piece fails the module instead of skipping it."""

from __future__ import annotations

import os
import shutil

import pytest


def requirements(what: str, *more: tuple[object, str]) -> pytest.MarkDecorator:
    """A skip marker for `what` (a module's tests) where a requirement is missing; in CI a failure.
    `more`: further (present, description) pairs."""
    needs = [why for ok, why in [
        (os.geteuid() == 0, "root (network namespaces, nftables)"),
        (shutil.which("unshare"), "util-linux's unshare"),
        (shutil.which("nft"), "nft (apt-get install nftables)"),
        (shutil.which("ip"), "ip (apt-get install iproute2)"),
        *more,
    ] if not ok]  # fmt: skip
    if needs and os.environ.get("CI") == "true":
        pytest.fail(f"CI must run {what}; missing: {', '.join(needs)}", pytrace=False)
    return pytest.mark.skipif(bool(needs), reason=f"needs {', '.join(needs)}")
