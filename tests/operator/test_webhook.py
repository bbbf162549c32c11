"""The admission webhook as the API server would call it: kopf's webhook server with the
operator's self-signed certificate, and the ValidatingWebhookConfiguration kopf manages."""

from __future__ import annotations

import base64
import json
import os
import signal
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

from kmock_cluster import wait_for
from recipe_operator.settings import WEBHOOK_CONFIGURATION_NAME
from test_console_script import free_port
from test_operator_behaviour import NS, rtj


def review(obj: dict) -> dict:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0b4c6c2e-0000-0000-0000-000000000001",
            "kind": {"group": "training.chefgenius.io", "version": "v1alpha1", "kind": "RecipeTrainingJob"},
            "resource": {
                "group": "training.chefgenius.io",
                "version": "v1alpha1",
                "resource": "recipetrainingjobs",
            },
            "requestKind": {
                "group": "training.chefgenius.io",
                "version": "v1alpha1",
                "kind": "RecipeTrainingJob",
            },
            "requestResource": {
                "group": "training.chefgenius.io",
                "version": "v1alpha1",
                "resource": "recipetrainingjobs",
            },
            "name": obj["metadata"]["name"],
            "namespace": NS,
            "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": obj,
            "oldObject": None,
            "dryRun": False,
            "options": {},
        },
    }


def call(url: str, ca: bytes, body: dict) -> dict:
    context = ssl.create_default_context(cadata=ca.decode())
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        return json.loads(response.read())


def test_the_webhook_rejects_an_invalid_job_naming_the_field_and_admits_a_valid_one(cluster, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "RECIPE_OPERATOR_WEBHOOK_ENABLED": "true",
        "RECIPE_OPERATOR_WEBHOOK_HOST": "127.0.0.1",
        "RECIPE_OPERATOR_WEBHOOK_PORT": str(port),
        "RECIPE_OPERATOR_HEALTH_PORT": str(free_port()),
    }
    log = (tmp_path / "operator.log").open("w")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "recipe-operator")], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        path = f"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{WEBHOOK_CONFIGURATION_NAME}"
        config = wait_for(lambda: cluster._call("GET", path), what="the ValidatingWebhookConfiguration")
        (webhook,) = [w for w in config["webhooks"] if "validate-spec" in w["name"]]
        client = webhook["clientConfig"]
        ca = base64.b64decode(client["caBundle"])
        assert client["url"].startswith(f"https://127.0.0.1:{port}/")

        bad = rtj("bad", lora={"rank": 8})
        answer = wait_for(lambda: _try(call, client["url"], ca, review(bad)), what="the webhook answering")
        assert answer["response"]["allowed"] is False
        assert "spec.lora.rank" in answer["response"]["status"]["message"]
        typo = call(client["url"], ca, review(rtj("typo", training={"epoch": 3})))
        assert typo["response"]["allowed"] is False
        assert (
            "spec.training.epoch: unknown field; did you mean epochs?"
            in typo["response"]["status"]["message"]
        )
        good = call(client["url"], ca, review(rtj("good")))
        assert good["response"]["allowed"] is True
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        log.close()
    assert process.returncode == 0, (tmp_path / "operator.log").read_text()[-3000:]


def _try(fn, *args):
    try:
        return fn(*args)
    except OSError:
        return None


def test_the_certificate_names_every_form_of_the_service_host():
    from cryptography import x509
    from recipe_operator.certificates import build_self_signed, subject_names

    assert subject_names("op-webhook.ops.svc") == ["op-webhook.ops.svc", "op-webhook.ops", "op-webhook"]
    assert subject_names("127.0.0.1") == ["127.0.0.1"]
    cert_pem, key_pem = build_self_signed("op-webhook.ops.svc")
    cert = x509.load_pem_x509_certificate(cert_pem)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["op-webhook.ops.svc", "op-webhook.ops", "op-webhook"]
    assert b"PRIVATE KEY" in key_pem
