"""The admission webhook as the API server calls it: the operator serves the certificate it is
given (the chart's Secret in a cluster) and registers nothing itself; the chart owns the
ValidatingWebhookConfiguration (tests/chart)."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import kopf
import pytest
from certs import build_self_signed
from kmock_cluster import wait_for
from recipe_operator.settings import WEBHOOK_PATH
from recipe_operator.webhook import rtj_validate
from test_console_script import free_port
from test_operator_behaviour import NS, rtj


def review(obj: dict, operation: str = "CREATE", old: dict | None = None) -> dict:
    resource = {"group": "training.chefgenius.io", "version": "v1alpha1", "resource": "recipetrainingjobs"}
    kind = {"group": "training.chefgenius.io", "version": "v1alpha1", "kind": "RecipeTrainingJob"}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0b4c6c2e-0000-0000-0000-000000000001",
            "kind": kind,
            "resource": resource,
            "requestKind": kind,
            "requestResource": resource,
            "name": obj["metadata"]["name"],
            "namespace": NS,
            "operation": operation,
            "userInfo": {"username": "alice"},
            "object": obj if operation != "DELETE" else None,
            "oldObject": old,
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


def test_the_webhook_serves_the_given_certificate_and_validates_create_and_spec_updates(cluster, tmp_path):
    cert, key = build_self_signed("127.0.0.1")
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)
    port = free_port()
    env = {
        **os.environ,
        "RECIPE_OPERATOR_WEBHOOK_ENABLED": "true",
        "RECIPE_OPERATOR_WEBHOOK_ADDRESS": "127.0.0.1",
        "RECIPE_OPERATOR_WEBHOOK_PORT": str(port),
        "RECIPE_OPERATOR_WEBHOOK_CERT_FILE": str(tmp_path / "tls.crt"),
        "RECIPE_OPERATOR_WEBHOOK_KEY_FILE": str(tmp_path / "tls.key"),
        "RECIPE_OPERATOR_HEALTH_PORT": str(free_port()),
    }
    log = (tmp_path / "operator.log").open("w")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "recipe-operator")], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"https://127.0.0.1:{port}{WEBHOOK_PATH}"
    try:
        bad = rtj("bad", lora={"rank": 8})
        answer = wait_for(lambda: _try(call, url, cert, review(bad)), what="the webhook answering")
        assert answer["response"]["allowed"] is False
        assert "spec.lora.rank" in answer["response"]["status"]["message"]
        typo = call(url, cert, review(rtj("typo", training={"epoch": 3})))["response"]
        assert typo["allowed"] is False
        assert "spec.training.epoch: unknown field; did you mean epochs?" in typo["status"]["message"]
        assert call(url, cert, review(rtj("good")))["response"]["allowed"] is True
        # A label edit on a job whose stored spec no longer validates is admitted (spec unchanged)...
        relabelled = {**bad, "metadata": {**bad["metadata"], "labels": {"team": "a"}}}
        assert call(url, cert, review(relabelled, "UPDATE", old=bad))["response"]["allowed"] is True
        # ...a spec edit is validated, and a DELETE is never refused.
        assert call(url, cert, review(bad, "UPDATE", old=rtj("bad")))["response"]["allowed"] is False
        assert call(url, cert, review(bad, "DELETE", old=bad))["response"]["allowed"] is True
        configs = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
        assert not (cluster._call("GET", configs) or {}).get("items"), "the operator registered a webhook"
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
    from certs import subject_names
    from cryptography import x509

    assert subject_names("op-webhook.ops.svc") == ["op-webhook.ops.svc", "op-webhook.ops", "op-webhook"]
    assert subject_names("127.0.0.1") == ["127.0.0.1"]
    cert_pem, key_pem = build_self_signed("op-webhook.ops.svc")
    cert = x509.load_pem_x509_certificate(cert_pem)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["op-webhook.ops.svc", "op-webhook.ops", "op-webhook"]
    assert b"PRIVATE KEY" in key_pem


def test_admission_rejects_with_every_field_path():
    body = {
        "apiVersion": "training.chefgenius.io/v1alpha1",
        "kind": "RecipeTrainingJob",
        "metadata": {"name": "bad", "namespace": "ml"},
        "spec": {
            "model": {"name": "m"},
            "dataset": {"path": "/d"},
            "lora": {"rank": 8},
            "training": {"microBatchSize": 3, "globalBatchSize": 10},
        },
    }
    with pytest.raises(kopf.AdmissionError) as caught:
        rtj_validate(body=body)
    assert "spec.lora.rank" in str(caught.value) and caught.value.code == 422
    body["spec"] = {"model": {"name": "m"}, "dataset": {"path": "/d"}}
    assert rtj_validate(body=body) is None
