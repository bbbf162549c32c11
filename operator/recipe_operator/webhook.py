"""The validating admission webhook: the check it runs and the server it runs in.

Why a module of its own: admission is a second way in, beside the watches, with rules of its
own (a DELETE is never refused; an UPDATE that leaves the spec alone is admitted even when the
stored spec no longer validates) and a server of its own. The check is `recipe_api`'s parser,
the same one every reconcile runs, so the webhook only refuses earlier what reconcile would
fail later. handlers.py registers `rtj_validate` with kopf when the webhook is enabled.
"""

from __future__ import annotations

import ssl
from typing import Any

import kopf
from recipe_api.validation import InvalidSpecError, parse_job

from .settings import Settings


def webhook_server(config: Settings) -> kopf.WebhookServer:
    """kopf's webhook server with the chart's certificate: the chart (a generated Secret or
    cert-manager) owns both the certificate and the ValidatingWebhookConfiguration's caBundle,
    so every replica serves the same certificate and nothing is registered at runtime.
    With a client CA (the cluster's API server configured to present a client certificate to
    admission webhooks), a caller without a certificate that CA signed cannot even complete the
    TLS handshake: anyone else on the pod network is refused before a byte of a review is read."""
    client_ca = config.webhook_client_ca_file or None
    return kopf.WebhookServer(
        addr=config.webhook_address,
        port=config.webhook_port,
        certfile=config.webhook_cert_file,
        pkeyfile=config.webhook_key_file,
        verify_mode=ssl.CERT_REQUIRED if client_ca else None,
        verify_cafile=client_ca,
    )


def rtj_validate(
    body: kopf.Body,
    old: kopf.Body | None = None,
    operation: str | None = None,
    memo: kopf.Memo | None = None,
    **_: Any,
) -> None:
    """Admission on CREATE and UPDATE (never DELETE: a job must stay deletable whatever its spec).
    An UPDATE that leaves the spec alone (labels, annotations) is admitted even when the stored
    spec no longer validates; the message names each field path. The administrator's policy
    (settings.policy) is checked here too. A plain function: kopf runs it in its executor, off the
    event loop."""
    if operation == "DELETE":  # kopf calls the handler for any review it receives
        return
    if (
        operation == "UPDATE"
        and old is not None
        and dict(old.get("spec") or {}) == dict(body.get("spec") or {})
    ):
        return
    try:
        operator = getattr(memo, "operator", None)
        policy = operator.settings.policy if operator is not None else None
        parse_job({k: v for k, v in body.items() if k != "status"}, policy)
    except InvalidSpecError as exc:
        raise kopf.AdmissionError(str(exc), code=422) from None
