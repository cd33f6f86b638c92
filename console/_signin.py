"""Signing in and out: officers with their user name and password, traders with their API key.

Failed attempts are limited per user name and per client address (``SignInLimiter``): after five
failures within fifteen minutes that name or address is refused (429) until the window has passed, so
a password cannot be guessed at speed and an attacker cannot lock out everyone from one address.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Final

import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from console._app import PREFIX, Console, FormError, generation_of, trader_key_id

log = structlog.get_logger("nsw.console")

__all__ = ["SignInLimiter", "routes"]

MAX_FAILURES: Final = 5
WINDOW_SECONDS: Final = 15 * 60.0
MAX_TRACKED: Final = 100_000


class SignInLimiter:
    """Failures per key (a user name, a client address) within a sliding window."""

    def __init__(self, *, failures: int = MAX_FAILURES, window: float = WINDOW_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._failures, self._window, self._clock = failures, window, clock
        self._seen: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        now = self._clock()
        times = self._seen.get(key)
        if times is None:
            return deque()
        while times and now - times[0] > self._window:
            times.popleft()
        if not times:
            del self._seen[key]
        return times

    def blocked_for(self, *keys: str) -> float:
        """0 when every key may try again, else the seconds until the first of them may."""
        waits = [self._window - (self._clock() - t[0]) for t in map(self._recent, keys) if len(t) >= self._failures]
        return max(waits, default=0.0)

    def failed(self, *keys: str) -> None:
        if len(self._seen) >= MAX_TRACKED:
            self._seen.pop(next(iter(self._seen)))
        now = self._clock()
        for key in keys:
            self._seen.setdefault(key, deque()).append(now)

    def succeeded(self, key: str) -> None:
        self._seen.pop(key, None)


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _next(fields: dict[str, str]) -> str:
    target = fields.get("next", "")
    # Only a path of the console itself: never an open redirect.
    return target if target.startswith(f"{PREFIX}/") and not target.startswith("//") and "\\" not in target \
        else f"{PREFIX}/"


def routes(console: Console) -> list[BaseRoute]:
    limiter = SignInLimiter()

    async def page(request: Request) -> Response:
        return console.render(request, "signin.html", {"next": request.query_params.get("next", ""), "error": ""})

    def refused(request: Request, fields: dict[str, str], message: str, status: int) -> Response:
        return console.render(request, "signin.html", {"next": fields.get("next", ""), "error": message,
                                                        "username": fields.get("username", "")[:64]}, status=status)

    async def officer(request: Request) -> Response:
        try:
            fields = await console.form(request, None)
        except FormError as exc:
            return console.error(request, exc.status, exc.message)
        username = fields.get("username", "").strip().lower()[:64]
        keys = (f"user:{username}", f"client:{_client(request)}")
        wait = limiter.blocked_for(*keys)
        if wait > 0:
            log.warning("console_signin_blocked")
            minutes = max(1, round(wait / 60))
            response = refused(request, fields, f"Too many failed sign-ins; try again in {minutes} min.", 429)
            response.headers["retry-after"] = str(max(1, round(wait)))
            return response
        record = console.deps.officers.authenticate(username, fields.get("password", ""))
        if record is None:
            limiter.failed(*keys)
            log.info("console_signin_failed")
            return refused(request, fields, "The user name or password is not right.", 401)
        limiter.succeeded(keys[0])
        session = console.deps.codec.new("officer", record["username"], generation_of(record["hash"]))
        log.info("console_signed_in", officer=record["username"], agency=record["agency"], role=record["role"])
        response = RedirectResponse(_next(fields), status_code=303)
        console.set_cookie(response, session)
        return response

    async def trader(request: Request) -> Response:
        try:
            fields = await console.form(request, None)
        except FormError as exc:
            return console.error(request, exc.status, exc.message)
        token = fields.get("api_key", "").strip()
        keys = (f"client:{_client(request)}",)
        wait = limiter.blocked_for(*keys)
        if wait > 0:
            response = refused(request, fields, "Too many failed sign-ins; try again later.", 429)
            response.headers["retry-after"] = str(max(1, round(wait)))
            return response
        trader_id = console.deps.keys.authenticate(token)
        if trader_id is None:
            limiter.failed(*keys)
            return refused(request, fields, "The API key is not valid or was revoked.", 401)
        session = console.deps.codec.new("trader", trader_id, trader_key_id(token))
        log.info("console_trader_signed_in", trader=trader_id)
        response = RedirectResponse(f"{PREFIX}/trader", status_code=303)
        console.set_cookie(response, session)
        return response

    async def sign_out(request: Request) -> Response:
        principal = console.principal(request)
        try:
            await console.form(request, principal)
        except FormError as exc:
            return console.error(request, exc.status, exc.message)
        response = RedirectResponse(f"{PREFIX}/signin", status_code=303)
        console.clear_cookie(response)
        return response

    return [Route("/signin", page, methods=["GET"]), Route("/signin", officer, methods=["POST"]),
            Route("/signin/trader", trader, methods=["POST"]), Route("/signout", sign_out, methods=["POST"])]
