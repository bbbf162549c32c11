"""Issue 23: the webhook answered anyone on the pod network. Where the cluster's API server
presents a client certificate to admission webhooks, the chart's webhook.clientCaConfigMap makes
the webhook require it: another caller does not get past the TLS handshake."""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.error
import urllib.request

import pytest
from certs import build_self_signed
from recipe_operator.settings import WEBHOOK_PATH, Settings
from recipe_operator.webhook import webhook_server
from test_console_script import free_port

ALLOWED = {
    "apiVersion": "admission.k8s.io/v1",
    "kind": "AdmissionReview",
    "response": {"uid": "u", "allowed": True},
}


def post(url: str, server_ca: bytes, client_cert: tuple[str, str] | None) -> dict:
    context = ssl.create_default_context(cadata=server_ca.decode())
    if client_cert is not None:
        context.load_cert_chain(*client_cert)
    request = urllib.request.Request(
        url, data=b"{}", method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        return json.loads(response.read())


def serve_and_call(settings: Settings, calls):
    """Run the operator's webhook server (kopf's, as webhook_server builds it) and make `calls`
    from a thread; the handler admits everything, so only TLS decides."""

    async def admit(request, **_):
        return ALLOWED

    async def scenario():
        serving = webhook_server(settings)(admit)
        await serving.__anext__()  # listening
        try:
            return await asyncio.to_thread(calls)
        finally:
            await serving.aclose()

    return asyncio.run(scenario())


@pytest.fixture()
def certificates(tmp_path):
    files = {}
    for name, host in (("server", "127.0.0.1"), ("client", "kube-apiserver")):
        cert, key = build_self_signed(host)
        files[name] = (tmp_path / f"{name}.crt", tmp_path / f"{name}.key")
        files[name][0].write_bytes(cert)
        files[name][1].write_bytes(key)
    return files


def settings_for(certificates, client_ca: bool) -> Settings:
    server_cert, server_key = certificates["server"]
    return Settings(
        webhook_enabled=True,
        webhook_address="127.0.0.1",
        webhook_port=free_port(),
        webhook_cert_file=str(server_cert),
        webhook_key_file=str(server_key),
        webhook_client_ca_file=str(certificates["client"][0]) if client_ca else "",
    )


def test_with_a_client_ca_a_caller_without_the_api_servers_certificate_is_refused(certificates):
    settings = settings_for(certificates, client_ca=True)
    url = f"https://127.0.0.1:{settings.webhook_port}{WEBHOOK_PATH}"
    server_ca = certificates["server"][0].read_bytes()
    client = tuple(map(str, certificates["client"]))

    def calls():
        try:
            anonymous = post(url, server_ca, None)
        except (ssl.SSLError, ConnectionError, urllib.error.URLError) as exc:
            anonymous = exc
        return anonymous, post(url, server_ca, client)

    anonymous, api_server = serve_and_call(settings, calls)
    assert isinstance(anonymous, Exception), (
        f"a caller without a client certificate was answered: {anonymous}"
    )
    assert api_server["response"]["allowed"] is True


def test_without_a_client_ca_any_caller_is_answered_as_before(certificates):
    settings = settings_for(certificates, client_ca=False)
    url = f"https://127.0.0.1:{settings.webhook_port}{WEBHOOK_PATH}"
    answer = serve_and_call(settings, lambda: post(url, certificates["server"][0].read_bytes(), None))
    assert answer["response"]["allowed"] is True
