"""Fetch rank 0's /metrics text: short timeouts, at most MAX_METRICS_BYTES, never decompressed,
never raises.

Why so careful: rank 0 runs the tenant's own image (spec.resources.image), so its /metrics is
input from a tenant. A gzip bomb decompressed automatically, or an endless body, would kill the
operator that serves every tenant (issue 23, finding 2). The trainer's exposition is a few KiB;
a larger or compressed answer is refused and reported (loops.py turns a failure into a
condition, an event and an operator metric), never read. A missing endpoint is normal while a
pod starts or restarts: that is a failure of reason UNREACHABLE, which is only counted.
"""

from __future__ import annotations

import aiohttp

from .progress import COMPRESSED, HTTP_ERROR, TOO_LARGE, UNREACHABLE, Scrape

SCRAPE_TIMEOUT_SECONDS = 3.0
MAX_METRICS_BYTES = 1 << 20  # 1 MiB; the trainer's own exposition is a few KiB
CHUNK_BYTES = 64 * 1024


async def fetch_metrics(
    host: str, port: int, timeout: float = SCRAPE_TIMEOUT_SECONDS, limit: int = MAX_METRICS_BYTES
) -> Scrape:
    address = f"[{host}]" if ":" in host else host  # an IPv6 pod IP goes in brackets
    url = f"http://{address}:{port}/metrics"
    try:
        async with (
            # auto_decompress=False: a Content-Encoding is refused below, never inflated.
            aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=timeout), auto_decompress=False
            ) as session,
            session.get(url, headers={"Accept-Encoding": "identity"}) as response,
        ):
            if response.status != 200:
                return Scrape(failure=HTTP_ERROR, message=f"{url} answered HTTP {response.status}")
            encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                return Scrape(
                    failure=COMPRESSED,
                    message=f"{url} answered with Content-Encoding {encoding[:40]!r}; the operator "
                    "reads only uncompressed metrics",
                )
            too_large = Scrape(
                failure=TOO_LARGE, message=f"{url} answered more than {limit} bytes; nothing was read"
            )
            if (response.content_length or 0) > limit:
                return too_large
            body = bytearray()
            async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                body += chunk
                if len(body) > limit:
                    return too_large
            return Scrape(text=body.decode("utf-8", errors="replace"))
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return Scrape(failure=UNREACHABLE, message=f"{url}: {type(exc).__name__}")
