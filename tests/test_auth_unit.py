"""API keys and rate limits: pure, no broker."""

from __future__ import annotations

import pytest

from broker._auth import KeyStore, RateLimiter, new_key


def test_key_is_stored_only_as_a_hash_and_authenticates() -> None:
    token, record = new_key("acme")
    assert token.split("_", 2)[2] not in str(record)  # the secret itself is not kept
    store = KeyStore()
    store.learn(record)
    assert store.authenticate(token) == "acme"
    assert store.authenticate(token + "x") is None
    assert store.authenticate("nsw_" + record["key_id"] + "_") is None
    store.learn({**record, "revoked_at": 1})
    assert store.authenticate(token) is None


def test_rate_limiter_refuses_over_the_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2, burst=3, clock=lambda: now[0])
    assert [limiter.take("t") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("t") > 0
    assert limiter.take("other") == 0.0  # per trader
    now[0] += 1.0
    assert limiter.take("t") == 0.0


def test_agency_keys_and_trader_keys_are_not_interchangeable() -> None:
    store = KeyStore()
    agency_token, agency_record = new_key("", agency="ipr")
    trader_token, trader_record = new_key("acme")
    for record in (agency_record, trader_record):
        store.learn(record)
    assert agency_token.split("_", 2)[2] not in str(agency_record)
    assert store.authenticate_agency(agency_token) == "ipr"
    assert store.authenticate(agency_token) is None  # an agency key lodges nothing
    assert store.authenticate_agency(trader_token) is None  # a trader key decides nothing
    assert store.authenticate(trader_token) == "acme"
    store.learn({**agency_record, "revoked_at": 1})
    assert store.authenticate_agency(agency_token) is None


def test_an_agency_key_survives_the_topic_and_a_forged_one_does_not() -> None:
    from broker._auth import key_message, key_record  # noqa: PLC0415
    from broker._envelope import InMessage  # noqa: PLC0415
    from broker.errors import MessageError  # noqa: PLC0415

    def read(value: bytes, key: bytes) -> InMessage:
        return InMessage(topic="nsw.api-keys", partition=0, offset=0, timestamp=0, key=key, value=value, headers=())

    token, record = new_key("", agency="sps")
    out = key_message(record)
    store = KeyStore()
    store.learn(key_record(read(out.value, out.key)))
    assert store.authenticate_agency(token) == "sps"
    forged = out.value.replace(b'"agency:sps"', b'"acme"')  # an agency key passed off as a trader's
    with pytest.raises(MessageError, match="agency"):
        key_record(read(forged, out.key))
