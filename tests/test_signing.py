"""Signed release responses: the round trip, and every forgery refused with its reason; ``nsw verify``."""

from __future__ import annotations

import argparse
import base64
import io
import json
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest

from broker._signing import TYP, KeyStore, ResponseSigner, SignatureError, verify
from broker._verify_cmd import add_verify_parser, run_verify

RESPONSE: dict[str, Any] = {
    "submission_id": "N2FD0TX0Z64SE6VBKYB1MX033G", "version": 1, "response_version": 1, "function_code": "08",
    "outcome": "RELEASE", "agencies": [{"agency": "sps", "outcome": "RELEASE"}], "issued_at": "2026-11-26T10:00:00Z",
}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys")


def test_round_trip_returns_the_payload(store: KeyStore) -> None:
    signer = ResponseSigner(store)
    token = signer.sign(RESPONSE)
    assert verify(token, store.jwks(private=True)) == RESPONSE
    assert verify(token, signer.jwks()) == RESPONSE  # a trader needs only the published public keys
    header = json.loads(unb64(token.split(".")[0]))
    assert header == {"alg": "EdDSA", "kid": signer.kid, "typ": TYP}
    # The payload is the canonical JSON: sorted keys, no whitespace.
    assert unb64(token.split(".")[1]) == orjson.dumps(RESPONSE, option=orjson.OPT_SORT_KEYS)


def test_key_is_created_once_private_and_git_ignored(store: KeyStore) -> None:
    first = ResponseSigner(store)
    again = ResponseSigner(store)
    assert first.kid == again.kid
    files = list(store.directory.glob("*.jwk"))
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert (store.directory / ".gitignore").read_text() == "*\n"


def test_published_jwks_holds_public_keys_only(store: KeyStore) -> None:
    signer = ResponseSigner(store)
    (published,) = signer.jwks()["keys"]
    assert {k: v for k, v in published.items() if k != "x"} == {
        "kty": "OKP", "crv": "Ed25519", "kid": signer.kid, "alg": "EdDSA", "use": "sig"}
    assert len(unb64(published["x"])) == 32  # the Ed25519 public key; the private "d" stays in the directory
    assert "d" in store.jwks(private=True)["keys"][0]


def test_keys_of_earlier_versions_verify_but_never_sign_again(store: KeyStore) -> None:
    import hashlib  # noqa: PLC0415
    import hmac  # noqa: PLC0415

    secret = b"s" * 32
    store.directory.mkdir(parents=True)
    legacy = {"kty": "oct", "kid": "nsw-20260101-legacy00", "alg": "HS256", "use": "sig", "k": b64(secret),
              "nsw_created": 1}
    (store.directory / "nsw-20260101-legacy00.jwk").write_bytes(orjson.dumps(legacy))
    header = {"alg": "HS256", "kid": legacy["kid"], "typ": TYP}
    signing_input = f"{b64(orjson.dumps(header))}.{b64(orjson.dumps(RESPONSE))}"
    old_token = f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"
    assert verify(old_token, store.jwks(private=True)) == RESPONSE
    with pytest.raises(SignatureError, match="without its secret"):
        verify(old_token, store.jwks())
    signer = ResponseSigner(store)
    assert signer.kid != legacy["kid"]
    assert orjson.loads(unb64(signer.sign(RESPONSE).split(".")[0]))["alg"] == "EdDSA"


def test_rotation_signs_with_the_new_key_and_still_verifies_the_old(store: KeyStore) -> None:
    old = ResponseSigner(store)
    old_token = old.sign(RESPONSE)
    store.rotate()
    new = ResponseSigner(store)
    assert new.kid != old.kid
    keys = store.jwks(private=True)
    assert verify(old_token, keys) == RESPONSE
    assert verify(new.sign(RESPONSE), keys) == RESPONSE


def test_forged_signature_is_refused(store: KeyStore) -> None:
    token = ResponseSigner(store).sign(RESPONSE)
    header, payload, signature = token.split(".")
    flipped = bytes([unb64(signature)[0] ^ 1]) + unb64(signature)[1:]
    with pytest.raises(SignatureError, match="bad signature"):
        verify(f"{header}.{payload}.{b64(flipped)}", store.jwks(private=True))


def test_signature_by_another_key_with_the_same_kid_is_refused(tmp_path: Path, store: KeyStore) -> None:
    signer = ResponseSigner(store)
    attacker = KeyStore(tmp_path / "attacker")
    key = attacker.rotate()
    (attacker.directory / f"{key['kid']}.jwk").write_bytes(orjson.dumps({**key, "kid": signer.kid}))
    forged = ResponseSigner(attacker).sign(RESPONSE)
    with pytest.raises(SignatureError, match="bad signature"):
        verify(forged, store.jwks(private=True))


def test_changed_payload_is_refused(store: KeyStore) -> None:
    header, _, signature = ResponseSigner(store).sign(RESPONSE).split(".")
    changed = b64(orjson.dumps({**RESPONSE, "outcome": "REFUSE"}, option=orjson.OPT_SORT_KEYS))
    with pytest.raises(SignatureError, match="bad signature"):
        verify(f"{header}.{changed}.{signature}", store.jwks(private=True))


def test_unknown_kid_is_refused(tmp_path: Path, store: KeyStore) -> None:
    token = ResponseSigner(KeyStore(tmp_path / "other")).sign(RESPONSE)
    ResponseSigner(store)
    with pytest.raises(SignatureError, match="unknown kid"):
        verify(token, store.jwks(private=True))


def resigned(store: KeyStore, header: dict[str, Any]) -> str:
    """A token with ``header``, correctly signed with the real private key: only the header is wrong."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: PLC0415

    key = store.current()
    signing_input = f"{b64(orjson.dumps(header))}.{b64(orjson.dumps(RESPONSE))}"
    signature = Ed25519PrivateKey.from_private_bytes(unb64(key["d"])).sign(signing_input.encode())
    return f"{signing_input}.{b64(signature)}"


def test_algorithm_confusion_with_the_public_key_as_hmac_secret_is_refused(store: KeyStore) -> None:
    """The classic attack on public-key JWS: HS256 with the published key bytes as the shared secret."""
    import hashlib  # noqa: PLC0415
    import hmac  # noqa: PLC0415

    store.current()  # the hub's one key
    (published,) = store.jwks()["keys"]
    header = {"alg": "HS256", "kid": published["kid"], "typ": TYP}
    signing_input = f"{b64(orjson.dumps(header))}.{b64(orjson.dumps(RESPONSE))}"
    for secret in (unb64(published["x"]), published["x"].encode()):
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        with pytest.raises(SignatureError, match="is not an HS256 key"):
            verify(f"{signing_input}.{b64(mac)}", {"keys": [{**published, "k": b64(secret)}]})


@pytest.mark.parametrize(("header", "reason"), [
    ({"alg": "none", "typ": TYP}, "wrong alg 'none'"),
    ({"alg": "HS512", "typ": TYP}, "wrong alg 'HS512'"),
    ({"alg": "HS256", "typ": TYP}, "is not an HS256 key"),
    ({"alg": "EdDSA", "typ": "JWT"}, "wrong typ 'JWT'"),
    ({"alg": "EdDSA"}, "wrong typ None"),
    ({"alg": "EdDSA", "typ": TYP, "crit": ["exp"]}, "critical"),
    ({"alg": "EdDSA", "typ": TYP, "kid": 7}, "names no kid"),
])
def test_wrong_header_is_refused_even_when_the_signature_matches(store: KeyStore, header: dict[str, Any],
                                                                 reason: str) -> None:
    kid = store.current()["kid"]
    full = {"kid": kid, **header}
    with pytest.raises(SignatureError, match=reason):
        verify(resigned(store, full), store.jwks(private=True))


def test_unsigned_alg_none_token_is_refused(store: KeyStore) -> None:
    header = b64(orjson.dumps({"alg": "none", "typ": TYP, "kid": store.current()["kid"]}))
    with pytest.raises(SignatureError):
        verify(f"{header}.{b64(orjson.dumps(RESPONSE))}.", store.jwks(private=True))


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c.d", "!!.e30.e30", "e30.e30.e30", "W10.e30.e30"])
def test_malformed_token_is_refused(store: KeyStore, token: str) -> None:
    with pytest.raises(SignatureError, match=r"malformed|wrong typ"):
        verify(token, store.jwks(private=True))


def cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nsw")
    add_verify_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["verify", *argv])


def test_nsw_verify_prints_the_payload_of_a_valid_token(tmp_path: Path, store: KeyStore) -> None:
    token = ResponseSigner(store).sign(RESPONSE)
    jwks = tmp_path / "keys.json"
    jwks.write_bytes(orjson.dumps(store.jwks(private=True)))
    out, err = io.StringIO(), io.StringIO()
    assert run_verify(cli(["-", "--jwks", str(jwks)]), stdin=io.StringIO(token + "\n"), stdout=out, stderr=err) == 0
    assert json.loads(out.getvalue()) == RESPONSE
    # A webhook body carrying the token, and the key directory as the key source.
    body = tmp_path / "webhook.json"
    body.write_bytes(orjson.dumps({"event": "release-response", "response_jws": token}))
    out = io.StringIO()
    assert run_verify(cli([str(body), "--key-dir", str(store.directory)]), stdout=out, stderr=err) == 0
    assert json.loads(out.getvalue()) == RESPONSE


def test_nsw_verify_refuses_a_changed_token_with_the_reason(tmp_path: Path, store: KeyStore) -> None:
    header, _, signature = ResponseSigner(store).sign(RESPONSE).split(".")
    changed = b64(orjson.dumps({**RESPONSE, "function_code": "03"}, option=orjson.OPT_SORT_KEYS))
    path = tmp_path / "token.jws"
    path.write_text(f"{header}.{changed}.{signature}")
    out, err = io.StringIO(), io.StringIO()
    assert run_verify(cli([str(path), "--key-dir", str(store.directory)]), stdout=out, stderr=err) == 1
    assert out.getvalue() == ""
    assert err.getvalue().startswith("invalid: bad signature")


def test_nsw_verify_cannot_check_without_keys(tmp_path: Path) -> None:
    path = tmp_path / "token.jws"
    path.write_text("a.b.c")
    err = io.StringIO()
    assert run_verify(cli([str(path), "--key-dir", str(tmp_path / "none")]), stdout=io.StringIO(), stderr=err) == 2
    assert "no signing keys" in err.getvalue()
