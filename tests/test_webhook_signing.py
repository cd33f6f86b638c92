"""Webhook signatures and retry backoff: pure, no broker."""

from __future__ import annotations

from broker._webhooks import backoff_ms, sign, verify_signature


def test_signature_round_trip_and_tamper() -> None:
    body = b'{"a": 1}'
    header = sign("s" * 32, body, now=1_700_000_000)
    assert verify_signature("s" * 32, header, body, now=1_700_000_010)
    assert not verify_signature("s" * 32, header, body + b" ", now=1_700_000_010)
    assert not verify_signature("t" * 32, header, body, now=1_700_000_010)
    assert not verify_signature("s" * 32, header, body, now=1_700_000_000 + 3600)  # replayed later


def test_backoff_grows_and_is_capped() -> None:
    assert all(250 <= backoff_ms(1) <= 500 for _ in range(50))
    assert all(backoff_ms(30) <= 10 * 60 * 1000 for _ in range(50))
    assert max(backoff_ms(5) for _ in range(50)) > max(backoff_ms(2) for _ in range(50))
