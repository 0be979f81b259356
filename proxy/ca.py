"""The proxy's certificate authority: made once under `.busymate/proxy/` (0600), served as PEM, DER and an iOS
configuration profile.

mitmproxy reads its CA from `<confdir>/mitmproxy-ca.pem` and makes a leaf certificate per host on the fly; we
create that store ourselves, named for Busymate, so the files are private from the first byte.
"""

from __future__ import annotations

import os
import plistlib
import uuid
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from mitmproxy.certs import CertStore

from busymate.proxy.state import confdir as confdir  # re-exported: ca.confdir is where the CA lives

BASENAME = "mitmproxy"  # the name mitmproxy looks for in its confdir
KEY_SIZE = 2048
# A request through the proxy to this host is answered by the proxy itself (like mitmproxy's mitm.it).
CA_HOST = "ca.busymate"


def ensure_ca(state_dir: Path) -> Path:
    """Create the CA if there is none; every file 0600, the folder 0700. Returns the CA certificate's path."""
    folder = confdir(state_dir)
    if not (folder / f"{BASENAME}-ca.pem").exists():
        folder.mkdir(parents=True, exist_ok=True)
        old = os.umask(0o077)
        try:
            CertStore.create_store(
                folder, BASENAME, KEY_SIZE, organization="Busymate", cn="Busymate local CA"
            )
        finally:
            os.umask(old)
    folder.chmod(0o700)
    for path in folder.iterdir():
        if path.is_file():
            path.chmod(0o600)
    return cert_path(state_dir)


def cert_path(state_dir: Path) -> Path:
    """The CA certificate alone (PEM): what a client trusts."""
    return confdir(state_dir) / f"{BASENAME}-ca-cert.pem"


def ca_pem(state_dir: Path) -> bytes:
    """The CA certificate as PEM."""
    return cert_path(state_dir).read_bytes()


def ca_der(state_dir: Path) -> bytes:
    """The CA certificate as DER (Android, Windows)."""
    return x509.load_pem_x509_certificate(ca_pem(state_dir)).public_bytes(serialization.Encoding.DER)


def ios_profile(state_dir: Path) -> bytes:
    """An iOS/macOS configuration profile installing the CA (then trust it in Certificate Trust Settings)."""
    der = ca_der(state_dir)
    cert = x509.load_der_x509_certificate(der)
    stable = uuid.uuid5(uuid.NAMESPACE_URL, f"busymate-ca:{cert.fingerprint(hashes.SHA256()).hex()}")
    payload = {
        "PayloadContent": [
            {
                "PayloadCertificateFileName": "busymate-ca.cer",
                "PayloadContent": der,
                "PayloadDescription": "Adds the Busymate proxy's certificate authority",
                "PayloadDisplayName": "Busymate local CA",
                "PayloadIdentifier": f"local.busymate.ca.{stable}",
                "PayloadType": "com.apple.security.root",
                "PayloadUUID": str(uuid.uuid5(stable, "cert")).upper(),
                "PayloadVersion": 1,
            }
        ],
        "PayloadDisplayName": "Busymate proxy CA",
        "PayloadDescription": "Lets Busymate's proxy show this device's HTTPS traffic.",
        "PayloadIdentifier": f"local.busymate.profile.{stable}",
        "PayloadOrganization": "Busymate",
        "PayloadRemovalDisallowed": False,
        "PayloadType": "Configuration",
        "PayloadUUID": str(stable).upper(),
        "PayloadVersion": 1,
    }
    return plistlib.dumps(payload, fmt=plistlib.FMT_XML)


DOWNLOADS = {
    "/busymate-ca.pem": ("application/x-pem-file", ca_pem),
    "/busymate-ca.der": ("application/x-x509-ca-cert", ca_der),
    "/busymate-ca.crt": ("application/x-x509-ca-cert", ca_der),
    "/busymate-ca.mobileconfig": ("application/x-apple-aspen-config", ios_profile),
}

INDEX = b"""<!doctype html><meta charset="utf-8"><title>Busymate proxy CA</title>
<h1>Busymate proxy certificate authority</h1>
<p>Install it on this device to let Busymate show its HTTPS traffic.</p>
<ul>
<li><a href="/busymate-ca.mobileconfig">iOS / macOS profile</a>
(then Settings, General, About, Certificate Trust Settings: turn on full trust)</li>
<li><a href="/busymate-ca.crt">DER (.crt)</a> for Android and Windows</li>
<li><a href="/busymate-ca.pem">PEM</a> for Linux, curl, Node (NODE_EXTRA_CA_CERTS)
and Python (SSL_CERT_FILE)</li>
</ul>
"""


def download(state_dir: Path, path: str) -> tuple[int, str, bytes]:
    """(status, content type, body) for a path on the CA host."""
    path = path.split("?", 1)[0]
    if path in ("", "/"):
        return 200, "text/html; charset=utf-8", INDEX
    if path in DOWNLOADS:
        kind, make = DOWNLOADS[path]
        return 200, kind, make(state_dir)
    return (
        404,
        "text/plain",
        b"not found: try /busymate-ca.pem, /busymate-ca.crt or /busymate-ca.mobileconfig\n",
    )
