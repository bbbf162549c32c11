"""The webhook's certificate when the operator owns it (the chart's default, no cert-manager):
a CA and a serving certificate, when each is due for renewal, and how they sit in a Secret.

Why the operator and not the chart: a chart that generates them needs `lookup` to keep them across
upgrades, and `lookup` returns nothing under `helm template` (Argo CD, Flux), so every render made
a new CA and the webhook configuration drifted; nothing renewed them either. Pure: no API calls
(webhook_certs.py stores them and injects the CA bundle).

Renewal: the serving certificate lives `validity` and is renewed once less than a third of its
life is left (or its names changed); the CA lives ten times as long and is renewed the same way.
A new CA goes into the bundle in front of the old one, which stays there while it is still valid,
so an API server that has the new bundle trusts a replica still serving the old certificate.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CA_LIFETIMES = 10  # the CA lives this many serving-certificate lifetimes
RENEW_WHEN_LEFT = 1 / 3  # renew once less than this share of a certificate's life is left
SECRET_KEYS = ("ca.crt", "ca.key", "tls.crt", "tls.key")


@dataclass(frozen=True)
class WebhookCertificate:
    """PEM bytes: `ca_bundle` is the current CA first, then older CAs still valid."""

    ca_bundle: bytes
    ca_key: bytes
    tls_crt: bytes
    tls_key: bytes

    def secret_data(self) -> dict[str, str]:
        values = (self.ca_bundle, self.ca_key, self.tls_crt, self.tls_key)
        return {k: base64.b64encode(v).decode() for k, v in zip(SECRET_KEYS, values, strict=True)}

    @classmethod
    def from_secret_data(cls, data: dict[str, str] | None) -> WebhookCertificate | None:
        """None when the Secret lacks a key (or has never been filled)."""
        data = data or {}
        if not all(data.get(k) for k in SECRET_KEYS):
            return None
        return cls(*(base64.b64decode(data[k]) for k in SECRET_KEYS))

    @property
    def ca(self) -> x509.Certificate:
        return x509.load_pem_x509_certificates(self.ca_bundle)[0]

    @property
    def serving(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.tls_crt)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _general_names(names: list[str]) -> list[x509.GeneralName]:
    found: list[x509.GeneralName] = []
    for name in names:
        try:
            found.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            found.append(x509.DNSName(name))
    return found


def _names_of(cert: x509.Certificate) -> set[str]:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return set(sans.get_values_for_type(x509.DNSName)) | {
        str(ip) for ip in sans.get_values_for_type(x509.IPAddress)
    }


def _due(cert: x509.Certificate, now: datetime.datetime) -> bool:
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    return cert.not_valid_after_utc - now < life * RENEW_WHEN_LEFT


def renewal_due(current: WebhookCertificate | None, names: list[str], now: datetime.datetime) -> str | None:
    """Why `current` must be renewed now, or None while it is good."""
    if current is None:
        return "no certificate yet"
    try:
        ca, serving = current.ca, current.serving
        serving.verify_directly_issued_by(ca)
    except (ValueError, TypeError, x509.InvalidSignature) as exc:
        return f"the stored certificate is unusable ({exc})"
    if _due(ca, now):
        return f"the CA expires at {ca.not_valid_after_utc:%Y-%m-%d}"
    if _due(serving, now):
        return f"the serving certificate expires at {serving.not_valid_after_utc:%Y-%m-%d}"
    if _names_of(serving) != set(names):
        return f"the serving certificate names {sorted(_names_of(serving))}, not {sorted(names)}"
    return None


def _sign(
    subject: str,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Name | None,
    signer: ec.EllipticCurvePrivateKey,
    now: datetime.datetime,
    days: int,
    ca: bool,
    names: list[str],
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject[:64])])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # a little clock skew
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        # Key identifiers: with an old and a new CA in one bundle (after a CA renewal), a verifier
        # picks the issuer by key, not by name alone (a same-named wrong CA fails the signature).
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
        )
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName(_general_names(names)), critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


def _current_ca(
    current: WebhookCertificate | None, now: datetime.datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    """The stored CA and its key while they are usable and not due for renewal."""
    if current is None:
        return None
    try:
        ca, key = current.ca, serialization.load_pem_private_key(current.ca_key, None)
    except (ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or _due(ca, now):
        return None
    return ca, key


def _still_valid_cas(current: WebhookCertificate | None, now: datetime.datetime) -> list[x509.Certificate]:
    try:
        return [c for c in x509.load_pem_x509_certificates(current.ca_bundle) if c.not_valid_after_utc > now]
    except (AttributeError, ValueError):
        return []


def renew(
    current: WebhookCertificate | None,
    names: list[str],
    now: datetime.datetime,
    validity_days: int,
    issuer: str,
) -> WebhookCertificate:
    """A serving certificate for `names`, signed by the current CA while that is good, else by a
    new CA (named `issuer`) that joins the bundle in front of the still-valid old ones."""
    pem = serialization.Encoding.PEM
    found = _current_ca(current, now)
    if found is not None and current is not None:
        (ca_cert, ca_key), bundle = found, current.ca_bundle
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _sign(
            issuer, ca_key.public_key(), None, ca_key, now, validity_days * CA_LIFETIMES, True, []
        )
        bundle = b"".join(c.public_bytes(pem) for c in [ca_cert, *_still_valid_cas(current, now)])
    key = ec.generate_private_key(ec.SECP256R1())
    serving = _sign(names[0], key.public_key(), ca_cert.subject, ca_key, now, validity_days, False, names)
    return WebhookCertificate(bundle, _key_pem(ca_key), serving.public_bytes(pem), _key_pem(key))
