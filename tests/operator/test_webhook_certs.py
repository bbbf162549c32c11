"""The operator's own webhook certificate: issued, stored, renewed before expiry, and trusted by a
TLS client holding the CA bundle (as the API server does), across CA renewal too. TLS handshakes
run in memory (ssl.MemoryBIO): no socket, no cluster."""

from __future__ import annotations

import datetime
import ssl
import tempfile
from pathlib import Path

import pytest
from recipe_operator.certs import WebhookCertificate, renew, renewal_due
from recipe_operator.settings import Settings
from recipe_operator.webhook_certs import CertificateKeeper

NAMES = ["rto-webhook.ops.svc", "rto-webhook.ops.svc.cluster.local"]
T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
DAYS = 365


def later(days: float) -> datetime.datetime:
    return T0 + datetime.timedelta(days=days)


def handshake(cert: WebhookCertificate, ca_bundle: bytes, host: str) -> None:
    """A TLS handshake between a server serving `cert` and a client trusting `ca_bundle` for `host`
    (raises ssl.SSLCertVerificationError when the client does not trust it). Real time applies, so
    certificates issued at T0 (2026) must still be valid on this machine's clock."""
    with tempfile.TemporaryDirectory() as tmp:
        crt, key = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
        crt.write_bytes(cert.tls_crt)
        key.write_bytes(cert.tls_key)
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(crt, key)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(cadata=ca_bundle.decode())
    pipes = [ssl.MemoryBIO() for _ in range(4)]  # client in/out, server in/out
    client = client_ctx.wrap_bio(pipes[0], pipes[1], server_hostname=host)
    server = server_ctx.wrap_bio(pipes[2], pipes[3], server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for side, obj in (("client", client), ("server", server)):
            if not done[side]:
                try:
                    obj.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
        pipes[2].write(pipes[1].read())
        pipes[0].write(pipes[3].read())
        if all(done.values()):
            return
    raise AssertionError("handshake did not finish")


def issued(now: datetime.datetime = T0, current: WebhookCertificate | None = None) -> WebhookCertificate:
    return renew(current, NAMES, now, DAYS, "rto-webhook-ca")


def test_a_fresh_certificate_is_trusted_for_its_service_names_and_not_for_others():
    cert = issued(datetime.datetime.now(datetime.UTC))
    assert renewal_due(cert, NAMES, datetime.datetime.now(datetime.UTC)) is None
    for name in NAMES:
        handshake(cert, cert.ca_bundle, name)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(cert, cert.ca_bundle, "somebody-else.ops.svc")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(cert, issued().ca_bundle, NAMES[0])  # another CA: not trusted


@pytest.mark.parametrize(
    ("days", "names", "due"),
    [
        (0, NAMES, None),
        (200, NAMES, None),  # 165 of 365 days left: more than a third
        (250, NAMES, "the serving certificate expires"),  # 115 left: renew now, months early
        (10, [*NAMES, "10.0.0.1"], "names"),  # the chart's names changed (e.g. webhook.url)
    ],
)
def test_renewal_is_due_with_a_third_of_the_life_left_or_when_the_names_change(days, names, due):
    found = renewal_due(issued(), names, later(days))
    assert (found is None) if due is None else (due in found)
    assert "no certificate" in renewal_due(None, NAMES, T0)


def test_renewing_the_serving_certificate_keeps_the_ca_and_its_bundle():
    first = issued()
    second = issued(later(250), first)
    assert second.ca_bundle == first.ca_bundle and second.ca_key == first.ca_key
    assert second.tls_crt != first.tls_crt and renewal_due(second, NAMES, later(250)) is None


def test_a_renewed_ca_joins_the_bundle_in_front_of_the_old_one_which_still_trusts_old_servers():
    now = datetime.datetime.now(datetime.UTC)
    old = renew(None, NAMES, now - datetime.timedelta(days=2500), DAYS, "ca")  # CA 3650 d, 2500 gone
    assert "the CA expires" in renewal_due(old, NAMES, now)
    new = renew(old, NAMES, now, DAYS, "ca")
    assert new.ca_key != old.ca_key and new.ca_bundle.endswith(old.ca_bundle)
    assert renewal_due(new, NAMES, now) is None
    # the API server with the new bundle trusts the new certificate, and one the old CA signed
    # while a replica still serves it (signed 100 days ago, when the old CA was not yet due)
    handshake(new, new.ca_bundle, NAMES[0])
    signed_by_old_ca = renew(old, NAMES, now - datetime.timedelta(days=100), DAYS, "ca")
    assert signed_by_old_ca.ca_bundle == old.ca_bundle
    handshake(signed_by_old_ca, new.ca_bundle, NAMES[0])
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(signed_by_old_ca, new.ca_bundle.removesuffix(old.ca_bundle), NAMES[0])


def test_the_secret_round_trip_and_an_incomplete_secret_is_no_certificate():
    cert = issued()
    assert WebhookCertificate.from_secret_data(cert.secret_data()) == cert
    partial = {k: v for k, v in cert.secret_data().items() if k != "ca.key"}
    assert WebhookCertificate.from_secret_data(partial) is None
    assert WebhookCertificate.from_secret_data(None) is None


def test_the_files_kopf_serves_are_rewritten_only_when_the_certificate_changed(tmp_path):
    settings = Settings(
        webhook_enabled=True,
        webhook_cert_file=str(tmp_path / "certs" / "tls.crt"),
        webhook_key_file=str(tmp_path / "certs" / "tls.key"),
        webhook_cert_secret="rto-webhook-cert",
        webhook_configuration="rto",
        webhook_dns_names=",".join(NAMES),
    )
    assert settings.webhook_dns_names == NAMES
    keeper = CertificateKeeper(kube=None, settings=settings, namespace="ops")  # files only: no API
    first = issued()
    assert keeper.write_files(first) is True
    assert (tmp_path / "certs" / "tls.crt").read_bytes() == first.tls_crt
    assert (tmp_path / "certs" / "tls.key").stat().st_mode & 0o777 == 0o600
    assert keeper.write_files(first) is False  # unchanged: kopf keeps serving, no restart
    second = issued(later(250), first)
    assert keeper.write_files(second) is True
    assert (tmp_path / "certs" / "tls.key").read_bytes() == second.tls_key


def test_an_operator_managed_certificate_needs_the_configuration_and_names():
    with pytest.raises(ValueError, match="WEBHOOK_CONFIGURATION"):
        Settings(webhook_enabled=True, webhook_cert_file="a", webhook_key_file="b", webhook_cert_secret="s")


def test_the_secret_is_created_once_reused_and_renewed_in_place_through_the_api(cluster):
    """The Secret half of CertificateKeeper against the kmock API emulator (real HTTP). The caBundle
    injection needs a real API server's JSON patch on a cluster-scoped object: tests/e2e does it."""
    import asyncio

    from recipe_operator.kube import Kube

    settings = Settings(
        webhook_enabled=True,
        webhook_cert_file="/unused/tls.crt",
        webhook_key_file="/unused/tls.key",
        webhook_cert_secret="rto-webhook-cert",
        webhook_cert_namespace="ops",
        webhook_configuration="rto",
        webhook_dns_names=",".join(NAMES),
    )

    async def scenario() -> tuple[WebhookCertificate, WebhookCertificate, WebhookCertificate]:
        kube = Kube.from_environment()
        keeper = CertificateKeeper(kube, settings)
        try:
            first = await keeper.stored()  # none yet: created
            again = await keeper.stored()  # good: read back, not rewritten
            due = renew(
                None, NAMES, datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=300), DAYS, "ca"
            )
            await kube.patch("v1", "Secret", "ops", "rto-webhook-cert", {"data": due.secret_data()})
            renewed = await keeper.stored()  # 65 days left of 365: renewed, same CA
            assert renewed.ca_bundle == due.ca_bundle and renewed.tls_crt != due.tls_crt
            return first, again, renewed
        finally:
            kube.close()

    first, again, renewed = asyncio.run(scenario())
    assert again == first
    stored = WebhookCertificate.from_secret_data(cluster.get("Secret", "ops", "rto-webhook-cert")["data"])
    assert stored == renewed and renewal_due(stored, NAMES, datetime.datetime.now(datetime.UTC)) is None
