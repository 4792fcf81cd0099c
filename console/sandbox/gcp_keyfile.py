"""Key material for the GCP stand-in: service-account key files and payload checksums.

* :func:`keypair`: a real RSA 2048 key and a self-signed X.509 certificate of its public half
  (what ``keys.get?publicKeyType=TYPE_X509_PEM_FILE`` publishes), so google-auth loads the key
  files the stand-in hands out and their signatures verify.
* :func:`key_file`: the Google credentials file around it, with the fields a key created in
  the console or by ``keys.create`` carries (``type``, ``project_id``, ``private_key_id``,
  ``private_key``, ``client_email``, ``client_id``, ``auth_uri``, ``token_uri``,
  ``auth_provider_x509_cert_url``, ``client_x509_cert_url``, ``universe_domain``; the loader is
  google-auth's ``service_account.Credentials.from_service_account_info``).
* :func:`crc32c`: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78; RFC 3720 appendix
  B.4), the checksum of Secret Manager's ``SecretPayload.dataCrc32c``.

Sandbox-only material: the private key exists in the answer of the create call and nowhere in
the stand-in's state, as at Google.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta

__all__ = ["crc32c", "key_file", "keypair"]


def crc32c(data: bytes) -> int:
    """CRC-32C of ``data`` (``crc32c(b"123456789") == 0xE3069283``)."""
    c = 0xFFFFFFFF
    for byte in data:
        c ^= byte
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 & -(c & 1))
    return c ^ 0xFFFFFFFF


def keypair(kid: str, valid_before: str) -> tuple[str, str]:
    """(PKCS#8 PEM private key, self-signed X.509 PEM certificate) of a new RSA 2048 key,
    the certificate valid until ``valid_before`` (RFC 3339)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, kid)])
    now = datetime.now(UTC)
    until = datetime.fromisoformat(valid_before.replace("Z", "+00:00"))
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(until)
            .sign(key, hashes.SHA256()))
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return private, cert.public_bytes(serialization.Encoding.PEM).decode()


def key_file(project: str, sa: str, kid: str, private: str) -> str:
    """The JSON key file of key ``kid`` of account ``sa`` (its text, as Google hands it out)."""
    info = {"type": "service_account", "project_id": project, "private_key_id": kid,
            "private_key": private, "client_email": sa,
            "client_id": str(int(secrets.token_hex(8), 16)).zfill(21),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": "https://oauth2.googleapis.com/token",
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
            + sa.replace("@", "%40"), "universe_domain": "googleapis.com"}
    return json.dumps(info, indent=2) + "\n"
