"""The console's accounts, sessions and sign-in limits as pure parts, with fake clocks (no broker).

On the real hub: tests/test_console_accounts.py and tests/test_console_signin.py.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib

import orjson
import pytest

from broker._audit import Auditor, AuditTopics, account_change, make_entry, verify_chain
from broker._cli import main
from broker._config import HubConfig
from broker._envelope import InMessage
from broker._topics import OFFICERS
from broker.errors import MessageError
from bus.memory import MemoryBus
from console._account import sees
from console._accounts import (
    SCRYPT_N,
    OfficerStore,
    account_summary,
    changed,
    hash_password,
    new_officer,
    officer_message,
    officer_record,
    verify_password,
)
from console._app import generation_of
from console._principal import Principal
from console._sessions import PRE_LIFETIME, SessionCodec
from console._signin import MAX_CLIENT_FAILURES, MAX_FAILURES, BusyError, PasswordChecks, SignInLimiter

KEY = bytes(range(32))
PASSWORD = "correct horse battery staple"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def received(record_bytes: bytes, key: bytes | None, *, offset: int = 0) -> InMessage:
    return InMessage(topic=OFFICERS, partition=0, offset=offset, key=key, value=record_bytes, headers=(),
                     timestamp=0)


# --- sessions -------------------------------------------------------------------------------------------


def test_a_session_ends_after_its_idle_time_unless_used() -> None:
    clock = Clock()
    codec = SessionCodec(KEY, idle=30 * 60, lifetime=8 * 3600, clock=clock)
    session = codec.new("officer", "alice", "gen")
    cookie = codec.encode(session)
    clock.now += 29 * 60
    assert codec.decode(cookie) == session
    touched = codec.encode(codec.touch(session))
    clock.now += 2 * 60  # 31 min after sign-in, 2 min after the last request
    assert codec.decode(cookie) is None
    assert codec.decode(touched) is not None


def test_a_session_ends_after_its_lifetime_however_often_used() -> None:
    clock = Clock()
    codec = SessionCodec(KEY, idle=30 * 60, lifetime=8 * 3600, clock=clock)
    session = codec.new("officer", "alice", "gen")
    for _ in range(8 * 3 - 1):  # a request every 20 minutes for 7 h 40 min
        clock.now += 20 * 60
        session = codec.touch(session)
        assert codec.decode(codec.encode(session)) is not None
    clock.now += 21 * 60  # 8 h 01 min after sign-in
    assert codec.decode(codec.encode(codec.touch(session))) is None


def test_a_tampered_or_foreign_cookie_is_refused() -> None:
    codec = SessionCodec(KEY, clock=Clock())
    cookie = codec.encode(codec.new("officer", "alice", "gen"))
    data, _, signature = cookie.partition(".")
    payload = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    forged = base64.urlsafe_b64encode(payload.replace(b"alice", b"admin")).decode().rstrip("=")
    assert codec.decode(cookie) is not None
    assert codec.decode(f"{forged}.{signature}") is None
    assert codec.decode(f"{data}.{signature[:-2]}AA") is None
    assert codec.decode(data) is None
    assert codec.decode(cookie + "x" * 5000) is None
    assert SessionCodec(bytes(32), clock=Clock()).decode(cookie) is None  # signed under another key


def test_a_session_cookie_carries_no_part_of_the_password_hash() -> None:
    record = new_officer("alice", role="officer", agency="sps", password=PASSWORD)
    codec = SessionCodec(KEY, clock=Clock())
    data = codec.encode(codec.new("officer", "alice", generation_of(record["hash"]))).partition(".")[0]
    payload = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)).decode()
    salt, digest = record["hash"].split("$")[-2:]
    assert not any(part[i:i + 6] in payload for part in (salt, digest) for i in range(len(part) - 5))
    renewed = changed(record, "password", by="lead", password="another long password")
    assert generation_of(renewed["hash"]) != generation_of(record["hash"])


def test_a_signed_out_session_is_refused_and_others_are_not() -> None:
    codec = SessionCodec(KEY, clock=Clock())
    out, kept = codec.new("officer", "alice", "gen"), codec.new("officer", "alice", "gen")
    cookie = codec.encode(codec.touch(out))
    codec.end(out)
    assert codec.decode(cookie) is None
    assert codec.decode(codec.encode(out)) is None
    assert codec.decode(codec.encode(kept)) == kept


def test_every_session_has_its_own_csrf_token() -> None:
    codec = SessionCodec(KEY, clock=Clock())
    one, two = codec.new("officer", "alice", "gen"), codec.new("officer", "alice", "gen")
    assert codec.csrf_ok(one, codec.csrf(one))
    assert not codec.csrf_ok(one, codec.csrf(two))
    assert not codec.csrf_ok(one, "")


def test_a_pre_session_token_fits_only_its_own_cookie_and_expires() -> None:
    clock = Clock()
    codec = SessionCodec(KEY, clock=clock)
    cookie, other = codec.new_presession(), codec.new_presession()
    token = codec.presession_token(cookie)
    assert token is not None
    assert codec.presession_ok(cookie, token)
    assert not codec.presession_ok(other, token)
    assert not codec.presession_ok(None, token)
    assert not codec.presession_ok(cookie, "")
    nonce, issued, signature = cookie.split(".")
    assert codec.presession_token(f"{nonce}.{int(issued) + 3600}.{signature}") is None  # its time changed
    assert SessionCodec(bytes(32), clock=clock).presession_token(cookie) is None
    # neither a session's CSRF token nor a pre-session token passes for the other
    session = codec.new("officer", "alice", "gen")
    assert not codec.presession_ok(cookie, codec.csrf(session))
    assert not codec.csrf_ok(session, token)
    clock.now += PRE_LIFETIME + 1
    assert codec.presession_token(cookie) is None


# --- the sign-in limiter ------------------------------------------------------------------------------


def test_five_failures_block_a_name_until_the_window_has_passed() -> None:
    clock = Clock(0.0)
    limiter = SignInLimiter(window=900, limits={"client:": MAX_CLIENT_FAILURES}, clock=clock)
    for _ in range(MAX_FAILURES - 1):
        limiter.failed("user:alice", "client:10.0.0.1")
        clock.now += 10
    assert limiter.blocked_for("user:alice", "client:10.0.0.1") == 0
    limiter.failed("user:alice", "client:10.0.0.1")
    wait = limiter.blocked_for("user:alice", "client:10.0.0.1")
    assert wait == pytest.approx(900 - 40)  # the first failure leaves the window 900 s after it was made
    assert limiter.blocked_for("user:bob", "client:10.0.0.2") == 0  # another name from another address
    clock.now += wait + 0.1
    assert limiter.blocked_for("user:alice") == 0


def test_a_success_clears_the_name_but_not_the_address() -> None:
    clock = Clock(0.0)
    limiter = SignInLimiter(limits={"client:": 6}, clock=clock)
    for _ in range(MAX_FAILURES):
        limiter.failed("user:alice", "client:10.0.0.1")
    assert limiter.blocked_for("user:alice") > 0
    limiter.succeeded("user:alice")
    assert limiter.blocked_for("user:alice") == 0
    limiter.failed("user:carol", "client:10.0.0.1")
    assert limiter.blocked_for("client:10.0.0.1") > 0  # 6 failures from the address, whatever the names


def test_an_address_is_blocked_only_after_more_failures_than_a_name() -> None:
    limiter = SignInLimiter(limits={"client:": MAX_CLIENT_FAILURES}, clock=Clock(0.0))
    for n in range(MAX_CLIENT_FAILURES - 1):
        limiter.failed(f"user:officer{n}", "client:10.0.0.1")  # one colleague's typo each, behind one NAT
    assert limiter.blocked_for("user:dave", "client:10.0.0.1") == 0
    limiter.failed("user:officer99", "client:10.0.0.1")
    assert limiter.blocked_for("user:dave", "client:10.0.0.1") > 0


@pytest.mark.asyncio
async def test_password_checks_wait_their_turn_and_a_full_queue_is_refused() -> None:
    checks = PasswordChecks(parallel=1, waiting=0)
    with pytest.raises(BusyError):
        await checks.run(lambda: None)
    store = OfficerStore()
    store.learn(new_officer("alice", role="officer", agency="sps", password=PASSWORD))
    checks = PasswordChecks(parallel=1, waiting=4)
    results = await asyncio.gather(*(checks.run(functools.partial(store.authenticate, "alice", pw))
                                     for pw in (PASSWORD, "wrong password!")))
    assert [r is not None for r in results] == [True, False]


# --- accounts -------------------------------------------------------------------------------------------


def test_passwords_are_hashed_with_owasp_scrypt_and_old_parameters_still_verify() -> None:
    stored = hash_password(PASSWORD)
    scheme, n, r, p, _, _ = stored.split("$")
    assert (scheme, int(n), int(r), int(p)) == ("scrypt", 2**17, 8, 1) == ("scrypt", SCRYPT_N, 8, 1)
    assert PASSWORD not in stored
    assert verify_password(PASSWORD, stored)
    assert not verify_password(PASSWORD + " ", stored)
    older = hash_password(PASSWORD, n=2**14)
    assert verify_password(PASSWORD, older)
    assert not verify_password(PASSWORD, "scrypt$garbage")
    assert not verify_password("x" * 300, stored)


def test_an_account_needs_a_role_that_fits_its_agency() -> None:
    assert new_officer("ops1", role="operator", agency=None, password=PASSWORD)["agency"] is None
    with pytest.raises(ValueError, match="operators to none"):
        new_officer("ops1", role="operator", agency="sps", password=PASSWORD)
    with pytest.raises(ValueError, match="belong to an agency"):
        new_officer("alice", role="officer", agency=None, password=PASSWORD)
    with pytest.raises(ValueError, match="not 'trader'"):
        new_officer("acme", role="trader", agency=None, password=PASSWORD)
    with pytest.raises(ValueError, match="at least 12"):
        new_officer("alice", role="officer", agency="sps", password="short")
    with pytest.raises(ValueError, match="user name"):
        new_officer("Alice Ng", role="officer", agency="sps", password=PASSWORD)


def test_a_password_change_is_a_new_generation_and_a_revocation_ends_the_account() -> None:
    record = new_officer("alice", role="officer", agency="sps", password=PASSWORD, by="lead", now=1)
    renewed = changed(record, "password", by="lead", password="another long password", now=2)
    assert generation_of(renewed["hash"]) != generation_of(record["hash"])
    assert (renewed["event"], renewed["by"], renewed["changed_at"], renewed["created_at"]) == ("password", "lead", 2, 1)
    revoked = changed(renewed, "revoked", by="ops", now=3)
    assert revoked["revoked_at"] == 3
    store = OfficerStore()
    store.apply(received(officer_message(revoked).value, b"alice"))
    assert store.active("alice") is None
    assert store.authenticate("alice", "another long password") is None
    assert "hash" not in account_summary(revoked)


def test_an_officer_record_round_trips_and_a_malformed_one_is_refused() -> None:
    record = new_officer("alice", role="supervisor", agency="sps", password=PASSWORD, display="Alice Ng", by="lead")
    assert officer_record(received(officer_message(record).value, b"alice")) == record
    legacy = {k: v for k, v in record.items() if k not in ("event", "by", "changed_at")}
    assert officer_record(received(orjson.dumps(legacy), b"alice"))["role"] == "supervisor"
    for broken in ({**record, "event": "promoted"}, {**record, "by": 7}, {**record, "role": "admin"}):
        with pytest.raises(MessageError):
            officer_record(received(orjson.dumps(broken), b"alice"))
    with pytest.raises(MessageError, match="not the record's key"):
        officer_record(received(officer_message(record).value, b"mallory"))


def test_an_unknown_name_costs_the_same_password_check(monkeypatch: pytest.MonkeyPatch) -> None:
    store = OfficerStore()
    store.learn(new_officer("alice", role="officer", agency="sps", password=PASSWORD))
    costs: list[tuple[int, int, int]] = []
    real = hashlib.scrypt

    def counted(password: bytes, *, salt: bytes, n: int, r: int, p: int, maxmem: int = 0, dklen: int = 64) -> bytes:
        costs.append((n, r, p))
        return real(password, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=dklen)

    monkeypatch.setattr("console._accounts.hashlib.scrypt", counted)
    assert store.authenticate("nobody", PASSWORD) is None
    assert store.authenticate("alice", "not her password") is None
    assert costs == [(SCRYPT_N, 8, 1), (SCRYPT_N, 8, 1)]  # no user enumeration by timing


# --- who is signed in ------------------------------------------------------------------------------------


def test_an_officer_works_for_their_own_agency_only_and_an_operator_for_none() -> None:
    alice = Principal("officer", "alice", "officer", "sps", "Alice Ng", "t")
    boss = Principal("officer", "boss", "supervisor", "sps", "Boss", "t")
    ops = Principal("officer", "ops1", "operator", None, "Ops", "t")
    acme = Principal("trader", "acme", "trader", None, "acme", "t")
    assert alice.works_for("sps")
    assert not alice.works_for("customs")
    assert not alice.works_for(None)
    assert (alice.actor, alice.is_supervisor, boss.is_supervisor) == ("sps/alice", False, True)
    assert not ops.is_agency_staff
    assert ops.is_operator
    assert not any(ops.works_for(a) for a in HubConfig().agencies)
    assert not any(acme.works_for(a) for a in HubConfig().agencies)
    assert ops.actor == "operator/ops1"
    assert "operations" in sees(ops)
    assert "your agency only" in sees(alice)


# --- the audit chain ------------------------------------------------------------------------------------


def test_an_account_change_is_audited_without_its_hash() -> None:
    record = new_officer("alice", role="officer", agency="sps", password=PASSWORD, by="lead", now=5)
    message = received(officer_message(changed(record, "revoked", by="ops", now=9)).value, b"alice", offset=3)
    topics = AuditTopics.hub(HubConfig().agencies)
    assert OFFICERS in topics.inputs()
    assert topics.kind_of(OFFICERS) == ("account", None)
    assert OFFICERS not in AuditTopics().inputs()  # an auditor of test topics reads no accounts
    entry_message, _ = Auditor(bus=MemoryBus(), topics=topics, clock=lambda: 10).handle(message)
    entry = orjson.loads(entry_message.value)
    assert entry["kind"] == "account"
    assert entry["submission_id"] == ""
    assert entry["agency"] == "sps"
    assert entry["account"] == {"username": "alice", "agency": "sps", "role": "officer", "event": "revoked",
                                "by": "ops", "changed_at": 9}
    assert b"scrypt" not in entry_message.value
    assert entry["value_sha256"] == hashlib.sha256(message.value).hexdigest()
    assert verify_chain([(0, entry_message.value)]).intact


def test_a_tombstone_or_a_malformed_account_record_is_still_audited() -> None:
    assert account_change(received(b"", b"alice"))["event"] == "deleted"
    assert account_change(received(b"not json", b"alice")) == {
        "username": "alice", "agency": None, "role": None, "event": "malformed", "by": None, "changed_at": None}


def test_a_changed_account_entry_breaks_the_chain() -> None:
    entry = make_entry(seq=0, kind="account", submission_id="", version=None, agency="sps", source_topic=OFFICERS,
                       source_partition=0, source_offset=0, value=b"{}", recorded_at=1, prev_hash="0" * 64,
                       account={"username": "alice", "agency": "sps", "role": "officer", "event": "created",
                                "by": "lead", "changed_at": 1})
    assert verify_chain([(0, orjson.dumps(entry))]).intact
    forged = {**entry, "account": {**entry["account"], "by": "somebody else"}}
    report = verify_chain([(0, orjson.dumps(forged))])
    assert report.first_problem is not None
    assert report.first_problem.kind == "changed"


# --- configuration and the command line (no broker reached) ------------------------------------------------


def test_session_times_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (HubConfig().console_idle_minutes, HubConfig().console_session_hours) == (30.0, 8.0)
    monkeypatch.setenv("NSW_CONSOLE_IDLE_MINUTES", "15")
    monkeypatch.setenv("NSW_CONSOLE_SESSION_HOURS", "4")
    config = HubConfig.from_env()
    assert (config.console_idle_minutes, config.console_session_hours) == (15.0, 4.0)


@pytest.mark.parametrize(("argv", "message"), [
    (["--role", "officer", "--agency", "atlantis"], "no agency atlantis; known: customs"),
    (["--role", "officer"], "belongs to an agency: give --agency"),
    (["--role", "operator", "--agency", "sps"], "an operator belongs to no agency"),
])
def test_an_account_that_cannot_be_is_refused_in_one_line(argv: list[str], message: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["officers", "create", "alice", *argv, "--bootstrap", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
