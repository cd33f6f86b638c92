"""Signed release responses: a compact JWS (RFC 7515) over the canonical JSON of the response.

- Header: ``{"alg": "EdDSA", "kid": "<key id>", "typ": "nsw-release-response+jws"}``.
- Payload: the release response as orjson with sorted keys (the same bytes for the same response).
- Algorithm: Ed25519 (``EdDSA``, RFC 8037). The public keys are published (``GET /.well-known/jwks.json``:
  ``kty`` OKP, ``crv`` Ed25519, ``x``), so a trader verifies a response with nothing from the hub but that
  key set; the private ``d`` never leaves the key directory. Keys made by earlier versions (HMAC-SHA256,
  ``HS256``, ``kty`` oct) still verify where their secret is held, and are never used to sign again.
- Keys: one JSON Web Key per file in the key directory (the hub's: ``HubConfig.signing_dir``, env
  ``NSW_SIGNING_KEY_DIR``, default ``<state dir>/keys``), created on first use with mode 0600; the newest signs,
  all verify (rotation: ``KeyStore.rotate()``; retire a key by deleting its file once nothing signed with it matters).

``verify`` refuses, with a ``SignatureError`` saying why: a malformed token, a header that is not ours
(``typ``), an ``alg`` other than the key's (no ``none``, no algorithm confusion), ``crit`` extensions,
an unknown ``kid``, an HS256 key whose secret is not available, and a signature that does not match.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from broker.errors import NSWError

__all__ = ["ALG", "TYP", "KeyStore", "ResponseSigner", "SignatureError", "canonical_json", "verify"]

ALG: Final = "EdDSA"
#: Keys of earlier versions: verified (with their secret), never used to sign.
LEGACY_ALG: Final = "HS256"
TYP: Final = "nsw-release-response+jws"
KEY_DIR_ENV: Final = "NSW_SIGNING_KEY_DIR"
DEFAULT_KEY_DIR: Final = Path(".nsw/keys")
_MAX_TOKEN: Final = 1_000_000


class SignatureError(NSWError, ValueError):
    """A signed response cannot be trusted (the message says why); not retriable."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    if not text or any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" for c in text):
        raise SignatureError(f"malformed JWS: the {what} is not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"malformed JWS: the {what} is not base64url") from exc


def canonical_json(value: Mapping[str, Any]) -> bytes:
    """JSON with sorted keys and no whitespace: what is signed."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _mac(secret: bytes, signing_input: bytes) -> bytes:
    return hmac.new(secret, signing_input, hashlib.sha256).digest()


class KeyStore:
    """Signing keys as JWK files in a directory (``<kid>.jwk``, mode 0600), created on first use."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else DEFAULT_KEY_DIR

    def keys(self) -> list[dict[str, Any]]:
        """Every key (with its secret), oldest first."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in sorted(self.directory.glob("*.jwk")):
            key = orjson.loads(path.read_bytes())
            if isinstance(key, dict) and key.get("kty") in ("OKP", "oct") and isinstance(key.get("kid"), str):
                found.append(key)
        return sorted(found, key=lambda k: (int(k.get("nsw_created", 0)), str(k["kid"])))

    def current(self) -> dict[str, Any]:
        """The newest signing key; the first call in an empty directory (or one holding only keys of
        earlier versions) creates one."""
        keys = [k for k in self.keys() if k.get("alg") == ALG and isinstance(k.get("d"), str)]
        return keys[-1] if keys else self.rotate()

    def rotate(self) -> dict[str, Any]:
        """Create a new key, which signs from now on; the older ones still verify."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        ignore = self.directory / ".gitignore"
        if not ignore.exists():
            ignore.write_text("*\n")  # never commit signing keys, wherever the directory is
        created = max([time.time_ns(), *(int(k.get("nsw_created", 0)) + 1 for k in self.keys())])
        kid = f"nsw-{time.strftime('%Y%m%d', time.gmtime(created / 1e9))}-{secrets.token_hex(4)}"
        private = Ed25519PrivateKey.generate()
        key = {"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": ALG, "use": "sig",
               "x": _b64(private.public_key().public_bytes_raw()), "d": _b64(private.private_bytes_raw()),
               "nsw_created": created}
        path = self.directory / f"{kid}.jwk"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(orjson.dumps(key))
        return key

    def jwks(self, *, private: bool = False) -> dict[str, Any]:
        """The key set; without ``private`` the private parts (``d``, an HS256 ``k``) are left out: publish
        this one. Traders verify EdDSA signatures with it alone."""
        if private:
            return {"keys": [{k: v for k, v in key.items() if k != "nsw_created"} for key in self.keys()]}
        return {"keys": [{k: v for k, v in key.items() if k in _PUBLIC_MEMBERS} for key in self.keys()]}


_PUBLIC_MEMBERS: Final = frozenset({"kty", "crv", "x", "kid", "alg", "use"})


class ResponseSigner:
    """Signs release responses with the store's current key (created on first use)."""

    def __init__(self, store: KeyStore | None = None) -> None:
        self.store = store if store is not None else KeyStore()
        key = self.store.current()
        self.kid: str = key["kid"]
        self._private = Ed25519PrivateKey.from_private_bytes(_unb64(key["d"], "key"))

    def sign(self, response: Mapping[str, Any]) -> str:
        """The compact JWS ``header.payload.signature`` of ``response``."""
        header = canonical_json({"alg": ALG, "kid": self.kid, "typ": TYP})
        signing_input = f"{_b64(header)}.{_b64(canonical_json(response))}".encode("ascii")
        return f"{signing_input.decode('ascii')}.{_b64(self._private.sign(signing_input))}"

    def jwks(self) -> dict[str, Any]:
        """What ``GET /.well-known/jwks.json`` serves: key ids, never secrets."""
        return self.store.jwks()


def _object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SignatureError(f"malformed JWS: the {what} is not JSON") from exc
    if not isinstance(value, dict):
        raise SignatureError(f"malformed JWS: the {what} is not a JSON object")
    return value


def verify(jws: str, keys: Mapping[str, Any]) -> dict[str, Any]:
    """The verified payload of a compact JWS signed by one of ``keys`` (a JWKS ``{"keys": [...]}``)."""
    token = jws.strip()
    if len(token) > _MAX_TOKEN:
        raise SignatureError("malformed JWS: too long")
    parts = token.split(".")
    if len(parts) != 3:
        raise SignatureError(f"malformed JWS: {len(parts)} part(s), a compact JWS has 3 (header.payload.signature)")
    header = _object(_unb64(parts[0], "header"), "header")
    if header.get("typ") != TYP:
        raise SignatureError(f"wrong typ {header.get('typ')!r}: not an NSW release response (expected {TYP!r})")
    if "crit" in header:
        raise SignatureError(f"unsupported critical header extension(s) {header['crit']!r}")
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in (ALG, LEGACY_ALG):
        raise SignatureError(f"wrong alg {alg!r}: release responses are signed with {ALG}")
    if not isinstance(kid, str):
        raise SignatureError("malformed JWS: the header names no kid")
    listed = keys.get("keys")
    candidates = [k for k in listed if isinstance(k, dict) and k.get("kid") == kid] if isinstance(listed, list) else []
    if not candidates:
        raise SignatureError(f"unknown kid {kid!r}: not in the key set")
    key = candidates[0]
    kty = {ALG: "OKP", LEGACY_ALG: "oct"}[alg]
    if key.get("kty") != kty or key.get("alg") != alg:  # the key decides the algorithm, not the token
        raise SignatureError(f"key {kid!r} is not an {alg} key (kty {key.get('kty')!r}, alg {key.get('alg')!r})")
    signature = _unb64(parts[2], "signature")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    if alg == ALG:
        _verify_ed25519(key, kid, signature, signing_input)
    else:
        if not isinstance(key.get("k"), str):
            raise SignatureError(f"key {kid!r} is published without its secret ({LEGACY_ALG} is a shared-key "
                                 "signature): verify with the hub's key directory or a key set that holds it")
        if not hmac.compare_digest(signature, _mac(_unb64(key["k"], "key"), signing_input)):
            raise SignatureError(f"bad signature: the response was changed or not signed with key {kid!r}")
    return _object(_unb64(parts[1], "payload"), "payload")


def _verify_ed25519(key: Mapping[str, Any], kid: str, signature: bytes, signing_input: bytes) -> None:
    if key.get("crv") != "Ed25519" or not isinstance(key.get("x"), str):
        raise SignatureError(f"key {kid!r} is not an Ed25519 public key (crv {key.get('crv')!r})")
    try:
        public = Ed25519PublicKey.from_public_bytes(_unb64(key["x"], "key"))
    except ValueError as exc:
        raise SignatureError(f"key {kid!r} is not an Ed25519 public key: {exc}") from exc
    try:
        public.verify(signature, signing_input)
    except InvalidSignature:
        raise SignatureError(f"bad signature: the response was changed or not signed with key {kid!r}") from None
