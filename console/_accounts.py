"""Officer accounts: per agency, with a role, credentials stored only as scrypt hashes.

Records live in the compacted topic ``nsw.officers`` (key = user name), so every hub instance knows every
account and a revocation (the record again with ``revoked_at``) reaches all of them at once; a session of
a revoked account, or of one whose password changed, ends with its next request. Each record also says
what changed (``event``: created, password, revoked) and who changed it (``by``), which the auditor chains
(without the hash), so who gave whom access stays provable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from typing import Final, Literal, NotRequired, TypedDict

import orjson

from broker._envelope import CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE, InMessage, OutMessage
from broker._topics import OFFICERS
from broker.errors import MessageError
from console._principal import AGENCY_ROLES, ROLES, Role

__all__ = ["EVENTS", "Event", "OfficerRecord", "OfficerStore", "account_summary", "changed", "hash_password",
           "new_officer", "officer_message", "officer_record", "verify_password"]

#: scrypt's cost (RFC 7914), OWASP's recommendation N=2^17, r=8, p=1: 128 MiB and about 0.4 s per sign-in on a
#: busy two-core machine; the console verifies in a worker thread, at most two at once (console._signin).
#: A stored hash carries its own parameters, so accounts hashed with other ones still sign in.
SCRYPT_N: Final = 2**17
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
USERNAME: Final = re.compile(r"[a-z][a-z0-9._-]{1,63}")
MIN_PASSWORD: Final = 12
MAX_PASSWORD: Final = 256
#: 128 * r * N bytes for N=2^17, r=8, and room for a stored hash with larger parameters.
SCRYPT_MAXMEM: Final = 512 * 1024 * 1024

Event = Literal["created", "password", "revoked"]
EVENTS: Final[tuple[Event, ...]] = ("created", "password", "revoked")


class OfficerRecord(TypedDict):
    username: str
    display: str
    role: Role
    agency: str | None  # None for an operator
    hash: str  # scrypt$N$r$p$salt$digest (base64)
    created_at: int
    revoked_at: int | None
    #: What this record changed and who changed it (the OS user running ``nsw officers``, or ``--by``).
    event: NotRequired[Event]
    by: NotRequired[str]
    changed_at: NotRequired[int]


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=SCRYPT_MAXMEM, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt" or len(password) > MAX_PASSWORD:
            return False
        expected = base64.b64decode(digest)
        found = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                               maxmem=SCRYPT_MAXMEM, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(found, expected)


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a password has at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise ValueError(f"a password has at most {MAX_PASSWORD} characters")


def new_officer(username: str, *, role: Role, agency: str | None, password: str, display: str = "",
                now: int | None = None, by: str = "") -> OfficerRecord:
    if not USERNAME.fullmatch(username):
        raise ValueError("a user name is 2-64 characters: lower-case letters, digits, '.', '_', '-'")
    if role not in ROLES or role == "trader":
        raise ValueError(f"an officer's role is officer, supervisor or operator, not {role!r}")
    if (role in AGENCY_ROLES) != (agency is not None):
        raise ValueError("officers and supervisors belong to an agency; operators to none")
    check_password(password)
    at = int(time.time() * 1000) if now is None else now
    return {"username": username, "display": display or username, "role": role, "agency": agency,
            "hash": hash_password(password), "created_at": at, "revoked_at": None, "event": "created",
            "by": by, "changed_at": at}


def changed(record: OfficerRecord, event: Event, *, by: str, password: str | None = None,
            now: int | None = None) -> OfficerRecord:
    """The account after ``event``: a new password (a new hash, so every open session ends) or revoked."""
    at = int(time.time() * 1000) if now is None else now
    out: OfficerRecord = {**record, "event": event, "by": by, "changed_at": at}
    if event == "password":
        if password is None:
            raise ValueError("a password change needs the new password")
        check_password(password)
        out["hash"] = hash_password(password)
    elif event == "revoked":
        out["revoked_at"] = at
    return out


def account_summary(record: OfficerRecord) -> dict[str, object]:
    """The account as tools and the audit chain show it: everything but the hash."""
    return {"username": record["username"], "display": record["display"], "role": record["role"],
            "agency": record["agency"], "created_at": record["created_at"], "revoked_at": record["revoked_at"],
            "event": record.get("event", "created"), "by": record.get("by", ""),
            "changed_at": record.get("changed_at", record["created_at"])}


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
    wrong += _wrong_change(value)
    if not wrong and message.key is not None and message.key != value["username"].encode():
        wrong.append("username (not the record's key)")
    if wrong:
        raise MessageError(f"an officer record with missing or malformed fields: {', '.join(wrong)}")
    record: OfficerRecord = {"username": value["username"], "display": value["display"], "role": value["role"],
                             "agency": agency, "hash": value["hash"], "created_at": value["created_at"],
                             "revoked_at": value.get("revoked_at")}
    for name in ("event", "by", "changed_at"):
        if name in value:
            record[name] = value[name]
    return record


def _wrong_change(value: dict[str, object]) -> list[str]:
    """The malformed ones of the fields saying what changed (optional: records before them have none)."""
    wrong = [] if value.get("event", "created") in EVENTS else ["event"]
    if not isinstance(value.get("by", ""), str):
        wrong.append("by")
    if not isinstance(value.get("changed_at", 0), int):
        wrong.append("changed_at")
    return wrong


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


#: What an unknown name's password is checked against: the parameters of a real hash (the same work) and a
#: digest no password has; a constant, so neither importing the module nor the first such sign-in costs more.
_DUMMY_HASH: Final = (f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${base64.b64encode(bytes(16)).decode()}$"
                      f"{base64.b64encode(bytes(32)).decode()}")
