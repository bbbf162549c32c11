"""The operator's own webhook certificate at runtime: keep it in a Secret every replica shares,
write it into the files kopf serves, set its CA as the webhook configuration's caBundle, and renew
it before it expires, without a restart (kopf restarts its server when the files change).

Every replica runs `sync` at startup (until it succeeds), before kopf starts the admission server,
and then every CHECK_SECONDS. Replicas race safely: the Secret is created once (a 409 means another replica was
first: use its certificate) and replaced only with the resourceVersion read (a 409 means another
replica renewed it: use that one). What a certificate is and when it is due: certs.py.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .certs import WebhookCertificate, renew, renewal_due
from .kube import WEBHOOK_API_VERSION, ApiError, Kube
from .settings import Settings, own_namespace

CHECK_SECONDS = 3600.0  # renewal is due months ahead; an hourly look is plenty
RETRY_SECONDS = 30.0  # after an API error
logger = logging.getLogger(__name__)


class CertificateKeeper:
    def __init__(self, kube: Kube, settings: Settings, namespace: str | None = None):
        self.kube, self.settings = kube, settings
        self.namespace = namespace or settings.webhook_cert_namespace or own_namespace()
        self.name = settings.webhook_cert_secret

    def _secret(self, cert: WebhookCertificate, resource_version: str | None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if resource_version:
            meta["resourceVersion"] = resource_version
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta,
            "type": "kubernetes.io/tls",
            "data": cert.secret_data(),
        }

    async def stored(self) -> WebhookCertificate:
        """The certificate in the Secret, created or renewed first when due (at most one write)."""
        now = datetime.now(UTC)
        names = self.settings.webhook_dns_names
        secret = await self.kube.get("v1", "Secret", self.namespace, self.name)
        current = WebhookCertificate.from_secret_data((secret or {}).get("data"))
        why = renewal_due(current, names, now)
        if why is None and current is not None:
            return current
        issuer = f"{self.settings.webhook_configuration}-ca"
        fresh = renew(current, names, now, self.settings.webhook_cert_validity_days, issuer)
        try:
            if secret is None:
                await self.kube.create(self._secret(fresh, None))
            else:
                body = self._secret(fresh, (secret.get("metadata") or {}).get("resourceVersion"))
                await self.kube.patch("v1", "Secret", self.namespace, self.name, body)
        except ApiError as exc:
            if exc.status != 409:
                raise
            # another replica wrote first: its certificate is the one
            secret = await self.kube.get("v1", "Secret", self.namespace, self.name)
            theirs = WebhookCertificate.from_secret_data((secret or {}).get("data"))
            if theirs is None:
                raise RuntimeError(
                    f"Secret {self.namespace}/{self.name} changed but holds no certificate"
                ) from None
            return theirs
        logger.info(
            "webhook certificate renewed (%s); valid until %s", why, fresh.serving.not_valid_after_utc
        )
        return fresh

    def write_files(self, cert: WebhookCertificate) -> bool:
        """Write tls.crt and tls.key where kopf reads them, only when they changed (each by an
        atomic rename, the key first: kopf reloads when it sees the certificate change)."""
        changed = False
        for path, content in (
            (self.settings.webhook_key_file, cert.tls_key),
            (self.settings.webhook_cert_file, cert.tls_crt),
        ):
            target = Path(path)
            if target.exists() and target.read_bytes() == content:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_bytes(content)
            os.chmod(tmp, 0o600)
            tmp.replace(target)
            changed = True
        return changed

    async def inject_ca(self, cert: WebhookCertificate) -> bool:
        """Set every webhook's caBundle in the configuration to the certificate's CA bundle."""
        name = self.settings.webhook_configuration
        config = await self.kube.get(WEBHOOK_API_VERSION, "ValidatingWebhookConfiguration", "", name)
        if config is None:
            raise RuntimeError(f"ValidatingWebhookConfiguration {name} not found (the chart renders it)")
        bundle = base64.b64encode(cert.ca_bundle).decode()
        hooks = config.get("webhooks") or []
        stale = [
            i for i, hook in enumerate(hooks) if (hook.get("clientConfig") or {}).get("caBundle") != bundle
        ]
        if not stale:
            return False
        version = (config.get("metadata") or {}).get("resourceVersion")
        operations: list[dict[str, Any]] = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": version}
        ]
        operations += [
            {"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": bundle} for i in stale
        ]
        await self.kube.json_patch(
            WEBHOOK_API_VERSION, "ValidatingWebhookConfiguration", "", name, operations
        )
        logger.info("webhook configuration %s: caBundle set", name)
        return True

    async def sync(self) -> WebhookCertificate:
        cert = await self.stored()
        self.write_files(cert)
        await self.inject_ca(cert)
        return cert

    async def first_sync(self) -> WebhookCertificate:
        """sync until it succeeds (the API may not answer yet): kopf must not start serving the
        webhook without its files, and the startup handler must not fail half-way (kopf would
        run it again from the top)."""
        while True:
            try:
                return await self.sync()
            except Exception as exc:
                logger.warning("webhook certificate: %s; trying again in %.0f s", exc, RETRY_SECONDS)
                await asyncio.sleep(RETRY_SECONDS)

    async def run(self) -> None:
        """sync every CHECK_SECONDS (RETRY_SECONDS after a failure) until cancelled."""
        while True:
            try:
                await self.sync()
                delay = CHECK_SECONDS
            except Exception as exc:  # the API may be briefly away; the certificate is months from due
                logger.warning("webhook certificate: %s", exc)
                delay = RETRY_SECONDS
            await asyncio.sleep(delay)
