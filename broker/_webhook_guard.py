"""Where a webhook may point: the URL policy, checked at registration and again at every connection.

A webhook makes the hub send requests to an address a trader chose, from inside the hub's network; left
open it reaches the cloud metadata service, the Kafka listener or any private host (SSRF). So:

- the URL: ``https`` only (plain ``http`` when the development setting allows it), no userinfo, a host;
- every address the host resolves to must be public: loopback, private (10/8, 172.16/12, 192.168/16,
  fc00::/7, 100.64/10), link-local (169.254/16, fe80::/10: the metadata address), unspecified, multicast,
  reserved and documentation ranges are refused, also inside IPv4-mapped, NAT64 and 6to4 IPv6 addresses;
  numeric forms (``2130706433``, ``0x7f.1``) resolve like any name, so they are checked as what they are;
- the connection goes to the address that was checked: the delivery client's network backend resolves,
  checks and connects itself (:class:`GuardedBackend`), so a name that resolves to a public address at the
  check and to 127.0.0.1 a moment later (DNS rebinding) never reaches the second one. TLS still verifies
  the certificate for the URL's host name (httpcore's SNI and Host come from the URL, not the address).

The development setting ``allow_private`` opens loopback and private ranges (a receiver on the laptop);
link-local, multicast and the hub's own Kafka listeners stay refused whatever the settings.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final

import httpcore
import httpx

from broker.errors import NSWError

__all__ = [
    "GuardedBackend",
    "Resolver",
    "UrlPolicy",
    "WebhookUrlError",
    "address_problem",
    "check_address",
    "check_url",
    "guarded_transport",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``resolver(host, port)`` -> the addresses a connection to ``host`` would use.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

MAX_URL_LENGTH: Final = 2048
RESOLVE_SECONDS: Final = 5.0

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network
#: Ranges the development setting opens (a receiver on this machine or the local network).
_DEV_RANGES: Final[tuple[tuple[_V4 | _V6, str], ...]] = (
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("10.0.0.0/8"), "private"),
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.168.0.0/16"), "private"),
    (_V4("100.64.0.0/10"), "shared address space (CGNAT)"),
    (_V6("::1/128"), "loopback"),
    (_V6("fc00::/7"), "private (unique local)"),
)
#: Ranges no setting opens.
_NEVER: Final[tuple[tuple[_V4 | _V6, str], ...]] = (
    (_V4("0.0.0.0/8"), "unspecified (this host)"),
    (_V4("169.254.0.0/16"), "link-local (cloud metadata)"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("240.0.0.0/4"), "reserved"),
    (_V4("192.0.0.0/24"), "reserved (IETF protocol assignments)"),
    (_V4("192.0.2.0/24"), "reserved (documentation)"),
    (_V4("198.51.100.0/24"), "reserved (documentation)"),
    (_V4("203.0.113.0/24"), "reserved (documentation)"),
    (_V4("198.18.0.0/15"), "reserved (benchmarking)"),
    (_V4("192.88.99.0/24"), "reserved (6to4 relay)"),
    (_V6("::/128"), "unspecified"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "site-local (deprecated)"),
    (_V6("ff00::/8"), "multicast"),
    (_V6("100::/64"), "reserved (discard)"),
    (_V6("2001::/23"), "reserved (IETF protocol assignments)"),
    (_V6("2001:db8::/32"), "reserved (documentation)"),
)
#: Checked after the development ranges (it holds ::1).
_RESERVED_V6: Final = _V6("::/8")
_NAT64: Final = _V6("64:ff9b::/96")
_SIIT: Final = _V6("::ffff:0:0:0/96")


class WebhookUrlError(NSWError, ValueError):
    """A webhook URL or the address it resolves to is not allowed (not retriable as such: the reason is given)."""

    retriable = False


@dataclass(frozen=True, slots=True, kw_only=True)
class UrlPolicy:
    #: Development: loopback and private ranges allowed (``NSW_WEBHOOK_ALLOW_PRIVATE``).
    allow_private: bool = False
    #: Development: plain ``http`` allowed (``NSW_WEBHOOK_ALLOW_HTTP``).
    allow_http: bool = False
    #: ``host:port`` of the hub's Kafka listeners: never a webhook target, whatever the settings.
    forbidden_endpoints: frozenset[tuple[str, int]] = field(default_factory=frozenset)

    @classmethod
    def for_hub(cls, *, allow_private: bool, allow_http: bool, bootstrap: str) -> UrlPolicy:
        endpoints = set()
        for server in bootstrap.split(","):
            host, _, port = server.strip().rpartition(":")
            if host and port.isdigit():
                endpoints.add((host.strip("[]"), int(port)))
        return cls(allow_private=allow_private, allow_http=allow_http, forbidden_endpoints=frozenset(endpoints))


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries to the network (mapped, NAT64, SIIT, 6to4)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64 or ip in _SIIT:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def address_problem(ip: IPAddress, *, allow_private: bool = False) -> str | None:
    """Why ``ip`` may not be a webhook target, or None when it may."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_v4(ip)
        if embedded is not None:
            problem = address_problem(embedded, allow_private=allow_private)
            return None if problem is None else f"{problem} (inside {ip})"
    for network, reason in _NEVER:
        if ip.version == network.version and ip in network:
            return reason
    for network, reason in _DEV_RANGES:
        if ip.version == network.version and ip in network:
            return None if allow_private else reason
    if ip.version == 6 and ip in _RESERVED_V6:
        return "reserved"
    if not ip.is_global:
        return "not a public address"
    return None


def check_address(address: str, port: int, policy: UrlPolicy) -> None:
    """Raise WebhookUrlError unless a connection to ``address:port`` is allowed."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # a zone id (fe80::1%eth0) names no other address
    problem = address_problem(ip, allow_private=policy.allow_private)
    if problem is not None:
        raise WebhookUrlError(f"{ip} is {problem}")
    for host, kafka_port in policy.forbidden_endpoints:
        if port == kafka_port and (host == str(ip) or not ip.is_global):
            raise WebhookUrlError(f"{ip}:{port} is the hub's Kafka listener")


def check_url(url: str, policy: UrlPolicy) -> httpx.URL:
    """The parsed URL (parsed as the delivery client will parse it), or WebhookUrlError naming the reason.

    Only the URL itself: the addresses its host resolves to are checked by :func:`resolve_checked`.
    """
    if len(url) > MAX_URL_LENGTH:
        raise WebhookUrlError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise WebhookUrlError("the URL contains spaces or control characters")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise WebhookUrlError(f"not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise WebhookUrlError("only https URLs are accepted")
    if parsed.scheme == "http" and not policy.allow_http:
        raise WebhookUrlError("https is required (plain http only in development: NSW_WEBHOOK_ALLOW_HTTP)")
    if parsed.userinfo:
        raise WebhookUrlError("the URL may not carry a user name or password")
    if not parsed.host:
        raise WebhookUrlError("the URL has no host")
    return parsed


#: Threads for webhook name lookups: their own, so slow names never take the threads other work runs on.
_DNS: Final = ThreadPoolExecutor(max_workers=8, thread_name_prefix="webhook-dns")


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """The system's answer for ``host`` (getaddrinfo, as a socket connection would ask it)."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_SECONDS):
            infos = await loop.run_in_executor(
                _DNS, functools.partial(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM))
    except (OSError, TimeoutError) as exc:
        raise WebhookUrlError(f"the host {host} does not resolve ({exc.__class__.__name__})") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def resolve_checked(host: str, port: int, policy: UrlPolicy, resolver: Resolver = system_resolver) -> list[str]:
    """Every address of ``host``, each one checked; refused if any one is not allowed (a name that
    resolves to one public and one private address is a rebinding attempt, not a mirror)."""
    try:
        addresses = [str(ipaddress.ip_address(host))]  # a literal address names itself
    except ValueError:
        addresses = list(await resolver(host, port))
    if not addresses:
        raise WebhookUrlError(f"the host {host} does not resolve")
    for address in addresses:
        try:
            check_address(address, port, policy)
        except ValueError as exc:  # WebhookUrlError, or not an address at all
            raise WebhookUrlError(f"{host} resolves to {exc}" if isinstance(exc, WebhookUrlError)
                                    else f"{host} resolved to something that is no address") from None
    return addresses


def default_port(url: httpx.URL) -> int:
    return url.port if url.port is not None else (443 if url.scheme == "https" else 80)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, resolving and checking each host itself, then connecting to the
    checked address only (so the check and the connection see the same address)."""

    def __init__(self, policy: UrlPolicy, resolver: Resolver = system_resolver,
                 inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._policy = policy
        self._resolver = resolver
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109 - httpcore's API
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        addresses = await resolve_checked(host, port, self._policy, self._resolver)
        error: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                     socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(self, path: str, timeout: float | None = None,  # noqa: ASYNC109 - httpcore's API
                                  socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise WebhookUrlError("webhooks never use unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(policy: UrlPolicy, *, resolver: Resolver = system_resolver,
                      ssl_context: ssl.SSLContext | None = None, max_connections: int = 100,
                      ) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every connection goes through :class:`GuardedBackend`; never a proxy from
    the environment (the proxy would connect, unchecked)."""
    transport = httpx.AsyncHTTPTransport(trust_env=False, retries=0)
    # httpx 0.28 has no parameter for httpcore's network backend: the pool is built again with it.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context if ssl_context is not None else httpx.create_ssl_context(trust_env=False),
        max_connections=max_connections, max_keepalive_connections=max_connections // 5 or 1, keepalive_expiry=5.0,
        http1=True, http2=False, retries=0, network_backend=GuardedBackend(policy, resolver),
    )
    return transport
