"""The webhook URL policy and the guarded connection: pure checks, then real connections to a local server
with an injected resolver (the DNS part: a name that resolves to a forbidden address is never connected)."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker._webhook_guard import (
    UrlPolicy,
    WebhookUrlError,
    address_problem,
    check_url,
    guarded_transport,
    resolve_checked,
)
from broker._webhook_secrets import SecretBox, WebhookKeyError, load_webhook_key
from tests.agency_server import _Server, serve
from tests.conftest import free_port

PRODUCTION = UrlPolicy()
DEVELOPMENT = UrlPolicy(allow_private=True, allow_http=True)


@pytest.mark.parametrize(("address", "reason"), [
    ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"), ("::1", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("172.31.255.255", "private"), ("192.168.1.1", "private"),
    ("100.64.0.1", "CGNAT"), ("fd00::1", "unique local"), ("fc00::1", "unique local"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("0.0.0.0", "unspecified"), ("0.1.2.3", "unspecified"), ("::", "unspecified"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"),
    ("192.0.2.1", "documentation"), ("2001:db8::1", "documentation"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:169.254.169.254", "link-local"), ("::ffff:10.0.0.1", "private"),
    ("64:ff9b::a9fe:a9fe", "link-local"), ("2002:7f00:1::", "loopback"), ("::ffff:0:a00:1", "private"),
])
def test_forbidden_addresses_are_named(address: str, reason: str) -> None:
    problem = address_problem(ipaddress.ip_address(address))
    assert problem is not None
    assert reason in problem


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "1.1.1.1"])
def test_public_addresses_pass(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is None


def test_development_opens_loopback_and_private_but_never_metadata() -> None:
    for address in ("127.0.0.1", "::1", "10.0.0.1", "192.168.0.10", "fd12::1", "100.100.0.1", "::ffff:127.0.0.1"):
        assert address_problem(ipaddress.ip_address(address), allow_private=True) is None, address
    for address in ("169.254.169.254", "fe80::1", "0.0.0.0", "224.0.0.1", "::ffff:169.254.169.254"):
        assert address_problem(ipaddress.ip_address(address), allow_private=True) is not None, address


@pytest.mark.parametrize(("url", "reason"), [
    ("ftp://hooks.example/h", "only https"),
    ("file:///etc/passwd", "only https"),
    ("http://hooks.example/h", "https is required"),
    ("https://user:pw@hooks.example/h", "user name or password"),
    ("https://user@hooks.example/h", "user name or password"),
    ("https:///h", "no host"),
    ("https://hooks.example/a b", "spaces"),
    ("https://hooks.example/" + "a" * 3000, "longer than"),
])
def test_bad_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(WebhookUrlError, match=reason):
        check_url(url, PRODUCTION)


def test_plain_http_only_in_development() -> None:
    assert check_url("http://hooks.example/h", DEVELOPMENT).host == "hooks.example"


def fixed(answers: dict[str, Sequence[str]]) -> Callable[[str, int], Awaitable[Sequence[str]]]:
    async def resolve(host: str, port: int) -> Sequence[str]:
        return answers.get(host, [])
    return resolve


async def test_every_resolved_address_is_checked() -> None:
    resolver = fixed({"mixed.test": ["93.184.215.14", "10.0.0.7"], "public.test": ["93.184.215.14"]})
    assert await resolve_checked("public.test", 443, PRODUCTION, resolver) == ["93.184.215.14"]
    with pytest.raises(WebhookUrlError, match=r"mixed\.test resolves to 10\.0\.0\.7 is private"):
        await resolve_checked("mixed.test", 443, PRODUCTION, resolver)
    with pytest.raises(WebhookUrlError, match="does not resolve"):
        await resolve_checked("nowhere.test", 443, PRODUCTION, resolver)


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "localhost"])
async def test_numeric_and_local_names_resolve_to_what_they_are(host: str) -> None:
    with pytest.raises(WebhookUrlError, match="loopback"):
        await resolve_checked(host, 80, PRODUCTION)


async def test_kafka_listener_refused_even_in_development() -> None:
    policy = UrlPolicy.for_hub(allow_private=True, allow_http=True, bootstrap="127.0.0.1:9192,kafka-2:9092")
    with pytest.raises(WebhookUrlError, match="Kafka listener"):
        await resolve_checked("127.0.0.1", 9192, policy)
    with pytest.raises(WebhookUrlError, match="Kafka listener"):
        await resolve_checked("localhost", 9192, policy)
    assert await resolve_checked("127.0.0.1", 9999, policy) == ["127.0.0.1"]


async def test_connection_goes_to_the_checked_address_only() -> None:
    """A name that resolved to a public address at registration and to loopback now (DNS rebinding, or a
    record changed since) is not connected; a name the policy allows is connected at the checked address,
    with its own name as Host."""
    calls: list[str] = []

    async def receive(request: Request) -> Response:
        calls.append(request.headers["host"])
        return Response(status_code=204)

    async with serve([Route("/hook", receive, methods=["POST"])]) as base:
        port = httpx.URL(base).port
        resolver = fixed({"rebound.test": ["127.0.0.1"], "hooks.test": ["127.0.0.1"]})
        async with httpx.AsyncClient(transport=guarded_transport(UrlPolicy(allow_http=True), resolver=resolver)) as c:
            with pytest.raises(WebhookUrlError, match=r"rebound\.test resolves to 127\.0\.0\.1 is loopback"):
                await c.post(f"http://rebound.test:{port}/hook", content=b"{}")
            with pytest.raises(WebhookUrlError, match="loopback"):
                await c.post(f"http://127.0.0.1:{port}/hook", content=b"{}")
        assert calls == []
        async with httpx.AsyncClient(transport=guarded_transport(DEVELOPMENT, resolver=resolver)) as c:
            answer = await c.post(f"http://hooks.test:{port}/hook", content=b"{}")
        assert answer.status_code == 204
        assert calls == [f"hooks.test:{port}"]


def test_secret_box_seals_and_binds_to_the_trader(tmp_path: Path) -> None:
    state = tmp_path
    key = load_webhook_key(state)
    assert (state / "webhook.key").stat().st_mode & 0o777 == 0o600
    assert load_webhook_key(state) == key  # made once, then read
    box = SecretBox(key)
    sealed = box.seal("s3cret-s3cret-s3cret", trader="A")
    assert "s3cret" not in sealed
    assert box.open(sealed, trader="A") == "s3cret-s3cret-s3cret"
    with pytest.raises(WebhookKeyError):
        box.open(sealed, trader="B")
    with pytest.raises(WebhookKeyError, match="sealed with key"):
        SecretBox(load_webhook_key(state, "A" * 43 + "=")).open(sealed, trader="A")
    with pytest.raises(WebhookKeyError, match="32"):
        load_webhook_key(state, "c2hvcnQ=")


def tls_files(directory: Path, name: str) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for ``name`` signed by it: (ca, cert, key) PEM files."""
    from cryptography import x509  # noqa: PLC0415 - only these tests make certificates
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    now = datetime.now(UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = (directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


async def test_tls_is_verified_for_the_url_name_while_connecting_to_the_checked_address(tmp_path: Path) -> None:
    hosts: list[str] = []

    async def receive(request: Request) -> Response:
        hosts.append(request.headers["host"])
        return Response(status_code=204)

    ca, cert, key = tls_files(tmp_path, "hooks.test")
    port = free_port()
    server = _Server(uvicorn.Config(Starlette(routes=[Route("/hook", receive, methods=["POST"])]), host="127.0.0.1",
                                    port=port, log_level="warning", lifespan="off", access_log=False,
                                    ssl_certfile=str(cert), ssl_keyfile=str(key)))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done()
            await asyncio.sleep(0.01)
        trusted = ssl.create_default_context(cafile=str(ca))
        transport = guarded_transport(DEVELOPMENT, resolver=fixed({"hooks.test": ["127.0.0.1"]}), ssl_context=trusted)
        async with httpx.AsyncClient(transport=transport) as c:
            answer = await c.post(f"https://hooks.test:{port}/hook", content=b"{}")
            assert answer.status_code == 204
            assert hosts == [f"hooks.test:{port}"]
            with pytest.raises(httpx.ConnectError, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
                await c.post(f"https://127.0.0.1:{port}/hook", content=b"{}")  # the certificate names hooks.test
        assert hosts == [f"hooks.test:{port}"]
    finally:
        server.should_exit = True
        await task
