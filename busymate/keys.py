"""The project's JWT signing keys: the HS256 secret and an ES256 key pair made once under the state folder.

Everything that mints a token (/auth/v1, /functions/v1/pair and device-token) signs through `SigningKeys`,
and the gateway verifies with the same keys, so REST, Realtime and Auth accept exactly the same tokens. The
ES256 public key is published at /auth/v1/.well-known/jwks.json; `jwt_alg` picks which key signs new tokens
(HS256 by default, like the Supabase CLI).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from busymate.errors import BusymateError
from busymate.tokens import b64url, sign_hs256

KEY_FILE = "jwt-es256.pem"


def _int_b64(value: int) -> str:
    return b64url(value.to_bytes(32, "big"))


@dataclass(frozen=True)
class EcKey:
    """One P-256 key: the private half when we sign with it, always the public half and its kid."""

    kid: str
    public: ec.EllipticCurvePublicKey
    private: ec.EllipticCurvePrivateKey | None = None

    @classmethod
    def from_private(cls, private: ec.EllipticCurvePrivateKey) -> EcKey:
        """The key with its RFC 7638 thumbprint as kid."""
        numbers = private.public_key().public_numbers()
        canonical = json.dumps(
            {"crv": "P-256", "kty": "EC", "x": _int_b64(numbers.x), "y": _int_b64(numbers.y)},
            separators=(",", ":"),
            sort_keys=True,
        )
        kid = b64url(hashlib.sha256(canonical.encode()).digest())
        return cls(kid, private.public_key(), private)

    def jwk(self) -> dict[str, object]:
        """The public key as GoTrue publishes it in its JWKS."""
        numbers = self.public.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": _int_b64(numbers.x),
            "y": _int_b64(numbers.y),
            "kid": self.kid,
            "alg": "ES256",
            "use": "sig",
            "key_ops": ["verify"],
        }

    def sign(self, signing_input: bytes) -> bytes:
        """The JWS signature (r || s, 64 bytes) of `signing_input`."""
        if self.private is None:
            raise BusymateError(f"key {self.kid} has no private half")
        r, s = decode_dss_signature(self.private.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def verifies(self, signing_input: bytes, signature: bytes) -> bool:
        """Whether `signature` (r || s) is this key's over `signing_input`."""
        if len(signature) != 64:
            return False
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        try:
            self.public.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


def load_or_create_ec_key(state_dir: Path) -> EcKey:
    """The project's ES256 key, made on first use and kept 0600 under the state folder."""
    path = state_dir / KEY_FILE
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: use theirs
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise BusymateError(f"cannot read the JWT signing key {path}: {exc}") from exc
    if not isinstance(private, ec.EllipticCurvePrivateKey) or not isinstance(private.curve, ec.SECP256R1):
        raise BusymateError(f"{path} is not a P-256 private key")
    return EcKey.from_private(private)


class SigningKeys:
    """The HS256 secret and the ES256 key; `sign` uses the one `alg` names."""

    def __init__(self, secret: str, ec_key: EcKey, alg: str = "HS256") -> None:
        if alg not in ("HS256", "ES256"):
            raise BusymateError(f"JWT signing algorithm {alg!r} is not supported (HS256 or ES256)")
        self.secret = secret
        self.ec_key = ec_key
        self.alg = alg

    @classmethod
    def for_project(cls, secret: str, state_dir: Path, alg: str) -> SigningKeys:
        """The keys of the project whose state folder is `state_dir`."""
        return cls(secret, load_or_create_ec_key(state_dir), alg)

    def sign(self, claims: Mapping[str, object]) -> str:
        """A compact JWT of `claims`, signed with the configured algorithm."""
        if self.alg == "HS256":
            return sign_hs256(claims, self.secret)
        header = b64url(
            json.dumps({"alg": "ES256", "kid": self.ec_key.kid, "typ": "JWT"}, separators=(",", ":")).encode()
        )
        payload = b64url(json.dumps(dict(claims), separators=(",", ":")).encode())
        signing_input = f"{header}.{payload}".encode()
        return f"{header}.{payload}.{b64url(self.ec_key.sign(signing_input))}"

    def jwks(self) -> dict[str, object]:
        """The public keys, as /auth/v1/.well-known/jwks.json serves them (the HS256 secret never appears)."""
        return {"keys": [self.ec_key.jwk()]}
