"""Signing in and out: officers with their user name and password, traders with their API key.

Failed attempts are limited per user name and per client address (``SignInLimiter``): after five failures
of one name within fifteen minutes that name is refused (429 with Retry-After) until the window has passed,
so a password cannot be guessed at speed; an address is refused after twenty (the officers of one agency
often share an address behind their office's NAT, and one of them mistyping must not lock out the others;
twenty per quarter hour is still no guessing speed). A success clears the name's failures.

The forms carry a pre-session token (``console._sessions``, login CSRF), so another site cannot sign a
browser in to an account of the attacker's. The password check (scrypt, 128 MiB, a fraction of a second)
runs in a worker thread, at most ``MAX_HASHING`` at once: the event loop never waits on it, and a burst of
sign-ins cannot take the memory of the hub (past ``MAX_WAITING`` queued attempts the answer is 503).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Final

import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from console._accounts import OfficerRecord
from console._app import PREFIX, Console, FormError, generation_of, trader_key_id
from console._sessions import PRE_COOKIE, PRE_LIFETIME, Session
from errors import NSWError

log = structlog.get_logger("nsw.console")

__all__ = ["MAX_CLIENT_FAILURES", "MAX_FAILURES", "SignInLimiter", "routes"]

MAX_FAILURES: Final = 5
MAX_CLIENT_FAILURES: Final = 20
WINDOW_SECONDS: Final = 15 * 60.0
MAX_TRACKED: Final = 100_000
#: Password checks at once (each holds 128 MiB for its fraction of a second), and attempts that may wait.
MAX_HASHING: Final = 2
MAX_WAITING: Final = 32


class SignInLimiter:
    """Failures per key (a user name, a client address) within a sliding window; ``limits`` gives a key
    prefix (``client:``) another number of failures than ``failures``."""

    def __init__(self, *, failures: int = MAX_FAILURES, window: float = WINDOW_SECONDS,
                 limits: dict[str, int] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._failures, self._window, self._clock = failures, window, clock
        self._limits = dict(limits or {})
        self._seen: dict[str, deque[float]] = {}

    def _limit(self, key: str) -> int:
        return next((n for prefix, n in self._limits.items() if key.startswith(prefix)), self._failures)

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
        """0 when every key may try again, else the seconds until all of them may."""
        now = self._clock()
        waits = []
        for key in keys:
            times = self._recent(key)
            limit = self._limit(key)
            if len(times) >= limit:  # free again when the failure that reached the limit leaves the window
                waits.append(self._window - (now - times[len(times) - limit]))
        return max(waits, default=0.0)

    def failed(self, *keys: str) -> None:
        now = self._clock()
        for key in keys:
            if key not in self._seen and len(self._seen) >= MAX_TRACKED:
                self._seen.pop(next(iter(self._seen)))  # the oldest tracked key goes
            self._seen.setdefault(key, deque(maxlen=max(self._failures, *self._limits.values(), 1))).append(now)

    def succeeded(self, key: str) -> None:
        self._seen.pop(key, None)


class BusyError(NSWError):
    """More sign-ins wait for a password check than the hub lets wait (retriable: try again in a moment)."""

    retriable = True


class PasswordChecks:
    """Password checks off the event loop, ``MAX_HASHING`` at once, ``MAX_WAITING`` queued."""

    def __init__(self, *, parallel: int = MAX_HASHING, waiting: int = MAX_WAITING) -> None:
        self._slots = asyncio.Semaphore(parallel)
        self._waiting, self._max_waiting = 0, waiting

    async def run(self, check: Callable[[], OfficerRecord | None]) -> OfficerRecord | None:
        if self._waiting >= self._max_waiting:
            raise BusyError
        self._waiting += 1
        try:
            async with self._slots:
                return await asyncio.to_thread(check)
        finally:
            self._waiting -= 1


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _next(fields: dict[str, str]) -> str:
    target = fields.get("next", "")
    # Only a path of the console itself: never an open redirect.
    return target if target.startswith(f"{PREFIX}/") and not target.startswith("//") and "\\" not in target \
        else f"{PREFIX}/"


class _SignIn:
    """The sign-in and sign-out routes of one console, with their limiter and password checks."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.codec = console.deps.codec
        self.limiter = SignInLimiter(limits={"client:": MAX_CLIENT_FAILURES})
        self.checks = PasswordChecks()

    def page_with(self, request: Request, context: dict[str, str], *, status: int = 200) -> Response:
        """The sign-in page with the token of the browser's pre-session (a new one when it has none valid,
        and after every refusal)."""
        token = self.codec.presession_token(request.cookies.get(PRE_COOKIE))
        fresh = None
        if token is None or status != 200:
            fresh = self.codec.new_presession()
            token = self.codec.presession_token(fresh)
        response = self.console.render(request, "signin.html", {"next": "", "error": "", "username": "",
                                                                **context, "login_csrf": token or ""}, status=status)
        if fresh is not None:
            response.set_cookie(PRE_COOKIE, fresh, max_age=int(PRE_LIFETIME), path=PREFIX, httponly=True,
                                samesite="strict", secure=self.console.deps.secure_cookies)
        return response

    async def page(self, request: Request) -> Response:
        return self.page_with(request, {"next": request.query_params.get("next", "")[:2048]})

    def refused(self, request: Request, fields: dict[str, str], message: str, status: int) -> Response:
        return self.page_with(request, {"next": fields.get("next", "")[:2048], "error": message,
                                        "username": fields.get("username", "")[:64]}, status=status)

    async def form(self, request: Request) -> dict[str, str] | Response:
        """The form's fields, or the answer when it cannot be taken (too large, foreign, no pre-session)."""
        try:
            fields = await self.console.form(request, None)
        except FormError as exc:
            return self.console.error(request, exc.status, exc.message)
        if not self.codec.presession_ok(request.cookies.get(PRE_COOKIE), fields.get("login_csrf", "")):
            log.warning("console_login_csrf_refused", path=request.url.path)
            return self.refused(request, fields, "The sign-in form expired or did not come from this page; "
                                                 "please sign in again.", 403)
        return fields

    def blocked(self, request: Request, fields: dict[str, str], keys: tuple[str, ...]) -> Response | None:
        wait = self.limiter.blocked_for(*keys)
        if wait <= 0:
            return None
        log.warning("console_signin_blocked", path=request.url.path)
        minutes = max(1, round(wait / 60))
        response = self.refused(request, fields, f"Too many failed sign-ins; try again in {minutes} min.", 429)
        response.headers["retry-after"] = str(max(1, round(wait)))
        return response

    def signed_in(self, target: str, session: Session) -> Response:
        # Always a new session (a new nonce, so a new CSRF token): a cookie planted before is not carried in.
        response = RedirectResponse(target, status_code=303)
        self.console.set_cookie(response, session)
        response.delete_cookie(PRE_COOKIE, path=PREFIX, httponly=True, samesite="strict",
                               secure=self.console.deps.secure_cookies)
        return response

    async def officer(self, request: Request) -> Response:
        fields = await self.form(request)
        if isinstance(fields, Response):
            return fields
        username = fields.get("username", "").strip().lower()[:64]
        password = fields.get("password", "")
        keys = (f"user:{username}", f"client:{_client(request)}")
        refusal = self.blocked(request, fields, keys)
        if refusal is not None:
            return refusal
        officers = self.console.deps.officers
        try:
            record = await self.checks.run(lambda: officers.authenticate(username, password))
        except BusyError:
            response = self.refused(request, fields, "The console is busy; please try again in a moment.", 503)
            response.headers["retry-after"] = "5"
            return response
        if record is None:
            self.limiter.failed(*keys)
            log.info("console_signin_failed")
            return self.refused(request, fields, "The user name or password is not right.", 401)
        self.limiter.succeeded(keys[0])
        log.info("console_signed_in", officer=record["username"], agency=record["agency"], role=record["role"])
        return self.signed_in(_next(fields), self.codec.new("officer", record["username"],
                                                             generation_of(record["hash"])))

    async def trader(self, request: Request) -> Response:
        fields = await self.form(request)
        if isinstance(fields, Response):
            return fields
        token = fields.get("api_key", "").strip()
        keys = (f"client:{_client(request)}",)
        refusal = self.blocked(request, fields, keys)
        if refusal is not None:
            return refusal
        trader_id = self.console.deps.keys.authenticate(token)
        if trader_id is None:
            self.limiter.failed(*keys)
            return self.refused(request, fields, "The API key is not valid or was revoked.", 401)
        log.info("console_trader_signed_in", trader=trader_id)
        return self.signed_in(f"{PREFIX}/trader", self.codec.new("trader", trader_id, trader_key_id(token)))

    async def sign_out(self, request: Request) -> Response:
        principal = self.console.principal(request)
        try:
            await self.console.form(request, principal)
        except FormError as exc:
            return self.console.error(request, exc.status, exc.message)
        session = request.scope.get("nsw.console.session")
        if principal is not None and isinstance(session, Session):
            self.codec.end(session)  # a copy of the cookie is refused from now on
            log.info("console_signed_out", who=principal.actor)
        response = RedirectResponse(f"{PREFIX}/signin", status_code=303)
        self.console.clear_cookie(response)
        return response


def routes(console: Console) -> list[BaseRoute]:
    signin = _SignIn(console)
    return [Route("/signin", signin.page, methods=["GET"]), Route("/signin", signin.officer, methods=["POST"]),
            Route("/signin/trader", signin.trader, methods=["POST"]),
            Route("/signout", signin.sign_out, methods=["POST"])]
