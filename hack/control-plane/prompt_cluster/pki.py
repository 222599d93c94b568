"""Certificates and keys for the local control plane, generated locally.

One CA signs the API server's serving certificate and the admin's client
certificate (group ``system:masters``); a separate RSA key signs service
account tokens, so ``kubectl create token`` works.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALID_FOR = dt.timedelta(days=365)


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _cert(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    server_ips: tuple[str, ...] = (),
    server_names: tuple[str, ...] = (),
    client: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        if server_ips or server_names:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
            sans: list[x509.GeneralName] = [x509.DNSName(n) for n in server_names]
            sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips]
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def generate(pki_dir: Path, extra_server_ips: tuple[str, ...] = ()) -> None:
    """Write ca, apiserver, admin and service-account key material to ``pki_dir``.

    ``extra_server_ips`` go into the API server's certificate (the real node's
    IP, which pods reach it on)."""
    pki_dir.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("prompt-operator-local-ca")
    ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
    _write(pki_dir / "ca.crt", _pem(ca))
    _write(pki_dir / "ca.key", _key_pem(ca_key))

    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _cert(
        _name("kube-apiserver"),
        server_key,
        ca_name,
        ca_key,
        server_ips=("127.0.0.1", "10.0.0.1", *extra_server_ips),
        server_names=(
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ),
    )
    _write(pki_dir / "apiserver.crt", _pem(server))
    _write(pki_dir / "apiserver.key", _key_pem(server_key))

    admin_key = ec.generate_private_key(ec.SECP256R1())
    admin = _cert(_name("admin", "system:masters"), admin_key, ca_name, ca_key, client=True)
    _write(pki_dir / "admin.crt", _pem(admin))
    _write(pki_dir / "admin.key", _key_pem(admin_key))

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write(pki_dir / "sa.key", _key_pem(sa_key))
    _write(
        pki_dir / "sa.pub",
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


def _load_ca(pki_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_key = serialization.load_pem_private_key((pki_dir / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    return x509.load_pem_x509_certificate((pki_dir / "ca.crt").read_bytes()), ca_key


def client_cert(pki_dir: Path, name: str, user: str, group: str | None = None) -> None:
    """Issue ``<name>.crt``/``.key`` in ``pki_dir``: a client certificate for
    ``user`` in ``group`` (the node, the scheduler, kube-proxy, the API server
    towards the kubelet)."""
    ca, ca_key = _load_ca(pki_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert(_name(user, group), key, ca.subject, ca_key, client=True)
    _write(pki_dir / f"{name}.crt", _pem(cert))
    _write(pki_dir / f"{name}.key", _key_pem(key))


def serving_cert(pki_dir: Path, out_dir: Path, name: str, ips: tuple[str, ...]) -> None:
    """Issue a serving certificate from the local CA (for webhooks in tests and
    the kubelet's own endpoint)."""
    ca, ca_key = _load_ca(pki_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert(_name(name), key, ca.subject, ca_key, server_ips=ips, server_names=("localhost",))
    out_dir.mkdir(parents=True, exist_ok=True)
    _write(out_dir / f"{name}.crt", _pem(cert))
    _write(out_dir / f"{name}.key", _key_pem(key))
