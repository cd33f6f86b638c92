"""Webhook secrets at rest: AES-256-GCM with the hub's webhook key, never plaintext on ``nsw.webhooks``.

The key is ``NSW_WEBHOOK_KEY`` (32 bytes, base64) or, when unset, ``<state dir>/webhook.key``, created on
first start like the development trader key. Every instance of a deployment must use the same key: the one
that delivers may not be the one that registered. A sealed secret reads ``v1:<key id>:<base64 nonce+ct>``;
the trader is the associated data, so a sealed secret copied onto another trader's record does not open.
Records written before encryption (a plaintext ``secret`` field) are still read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker._state_keys import state_key
from broker.errors import NSWError

__all__ = ["KEY_FILE", "SecretBox", "WebhookKeyError", "load_webhook_key"]

KEY_FILE: Final = "webhook.key"
_VERSION: Final = "v1"


class WebhookKeyError(NSWError, ValueError):
    """The webhook key is malformed, or a sealed secret was made with another key (not retriable)."""


def _decode_key(text: str, origin: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookKeyError(f"{origin}: not base64") from None
    if len(key) != 32:
        raise WebhookKeyError(f"{origin}: {len(key)} bytes, an AES-256 key has 32")
    return key


def load_webhook_key(state_dir: Path, env: str | None = None) -> bytes:
    """``env`` (the value of NSW_WEBHOOK_KEY) when given, else the state dir's key file, created if absent."""
    return state_key(state_dir, KEY_FILE, env=env, env_name="NSW_WEBHOOK_KEY", size=32, decode=_decode_key)


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(key).hexdigest()[:8]

    def seal(self, secret: str, *, trader: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, secret.encode(), trader.encode())
        return f"{_VERSION}:{self.key_id}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, sealed: str, *, trader: str) -> str:
        try:
            version, key_id, data = sealed.split(":", 2)
            raw = base64.b64decode(data, validate=True)
        except (ValueError, binascii.Error):
            raise WebhookKeyError("the sealed secret is malformed") from None
        if version != _VERSION:
            raise WebhookKeyError(f"unknown sealed secret version {version!r}")
        if key_id != self.key_id:
            raise WebhookKeyError(f"the secret was sealed with key {key_id}, this hub has {self.key_id} "
                                  "(every instance needs the same NSW_WEBHOOK_KEY)")
        try:
            return self._aead.decrypt(raw[:12], raw[12:], trader.encode()).decode()
        except (InvalidTag, UnicodeDecodeError):
            raise WebhookKeyError("the sealed secret does not open with this key for this trader") from None
