"""Fetch rank 0's /metrics text: short timeouts, never raises (a missing endpoint is normal
while a pod starts or restarts)."""

from __future__ import annotations

import aiohttp

SCRAPE_TIMEOUT_SECONDS = 3.0


async def fetch_metrics(host: str, port: int, timeout: float = SCRAPE_TIMEOUT_SECONDS) -> str | None:
    url = f"http://{host}:{port}/metrics"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(url) as response,
        ):
            if response.status != 200:
                return None
            return await response.text()
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None
