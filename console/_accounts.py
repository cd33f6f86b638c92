"""Officer accounts: per agency, with a role, credentials stored only as scrypt hashes.

Records live in the compacted topic ``nsw.officers`` (key = user name), so every hub instance knows every
account and a revocation (the record again with ``revoked_at``) reaches all of them at once; a session of
a revoked account, or of one whose password changed, ends with its next request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from typing import Final, TypedDict

import orjson

from broker._envelope import CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE, InMessage, OutMessage
from broker._topics import OFFICERS
from broker.errors import MessageError
from console._principal import AGENCY_ROLES, ROLES, Role

__all__ = ["OfficerRecord", "OfficerStore", "hash_password", "new_officer", "officer_message", "officer_record",
           "verify_password"]

#: scrypt's cost (RFC 7914; OWASP's minimum for scrypt is N=2^17, r=8, p=1: about 0.1 s and 128 MiB here).
SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
USERNAME: Final = re.compile(r"[a-z][a-z0-9._-]{1,63}")
MIN_PASSWORD: Final = 12


class OfficerRecord(TypedDict):
    username: str
    display: str
    role: Role
    agency: str | None  # None for an operator
    hash: str  # scrypt$N$r$p$salt$digest (base64)
    created_at: int
    revoked_at: int | None


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        found = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                               maxmem=256 * 1024 * 1024, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(found, expected)


def new_officer(username: str, *, role: Role, agency: str | None, password: str, display: str = "",
                now: int | None = None) -> OfficerRecord:
    if not USERNAME.fullmatch(username):
        raise ValueError("a user name is 2-64 characters: lower-case letters, digits, '.', '_', '-'")
    if role not in ROLES or role == "trader":
        raise ValueError(f"an officer's role is officer, supervisor or operator, not {role!r}")
    if (role in AGENCY_ROLES) != (agency is not None):
        raise ValueError("officers and supervisors belong to an agency; operators to none")
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a password has at least {MIN_PASSWORD} characters")
    return {"username": username, "display": display or username, "role": role, "agency": agency,
            "hash": hash_password(password), "created_at": int(time.time() * 1000) if now is None else now,
            "revoked_at": None}


def officer_message(record: OfficerRecord) -> OutMessage:
    return OutMessage(topic=OFFICERS, key=record["username"].encode(), value=orjson.dumps(record),
                      headers=((CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE),))


def officer_record(message: InMessage) -> OfficerRecord:
    """The account in ``message``, checked field by field (a malformed record neither replaces a good one nor
    stops the reader)."""
    try:
        value = orjson.loads(message.value)
    except orjson.JSONDecodeError as exc:
        raise MessageError(f"an officer record is not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise MessageError(f"an officer record is a JSON object, not {type(value).__name__}")
    wrong = [name for name in ("username", "display", "hash") if not isinstance(value.get(name), str)]
    if value.get("role") not in ("officer", "supervisor", "operator"):
        wrong.append("role")
    agency = value.get("agency")
    if agency is not None and not isinstance(agency, str):
        wrong.append("agency")
    if not isinstance(value.get("created_at"), int):
        wrong.append("created_at")
    if value.get("revoked_at") is not None and not isinstance(value.get("revoked_at"), int):
        wrong.append("revoked_at")
    if not wrong and message.key is not None and message.key != value["username"].encode():
        wrong.append("username (not the record's key)")
    if wrong:
        raise MessageError(f"an officer record with missing or malformed fields: {', '.join(wrong)}")
    return {"username": value["username"], "display": value["display"], "role": value["role"], "agency": agency,
            "hash": value["hash"], "created_at": value["created_at"], "revoked_at": value.get("revoked_at")}


class OfficerStore:
    def __init__(self) -> None:
        self._records: dict[str, OfficerRecord] = {}

    def learn(self, record: OfficerRecord) -> None:
        self._records[record["username"]] = record

    def apply(self, message: InMessage) -> None:
        if message.value:
            self.learn(officer_record(message))
        elif message.key is not None:
            self._records.pop(message.key.decode(errors="replace"), None)

    def get(self, username: str) -> OfficerRecord | None:
        return self._records.get(username)

    def active(self, username: str) -> OfficerRecord | None:
        record = self._records.get(username)
        return record if record is not None and record["revoked_at"] is None else None

    def records(self) -> list[OfficerRecord]:
        return sorted(self._records.values(), key=lambda r: (r["agency"] or "", r["username"]))

    def authenticate(self, username: str, password: str) -> OfficerRecord | None:
        record = self.active(username)
        if record is None:
            verify_password(password, _DUMMY_HASH)  # the same work for an unknown name: no user enumeration
            return None
        return record if verify_password(password, record["hash"]) else None


_DUMMY_HASH: Final = hash_password(secrets.token_urlsafe(16))
