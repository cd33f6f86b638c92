"""The console's web application: sessions, CSRF, rendering, and the pages' routes under ``/console``.

Each page lives in a module of its own that offers ``routes(console) -> list[BaseRoute]`` (``PAGES``); this
module owns who is signed in (``principal``), form checks (``form``: every POST carries the session's CSRF
token), rendering with the shared layout (``render``) and the security headers of every answer.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Final
from urllib.parse import parse_qsl, quote

import jinja2
import structlog
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from adapters import DecisionCallback, FeedbackFeed
from broker._auth import TOKEN_PREFIX, KeyStore
from broker._envelope import OutMessage
from broker._http import bounded_body
from broker._view import StatusView, iso
from console._accounts import OfficerStore
from console._principal import Principal
from console._sessions import COOKIE, Session, SessionCodec
from console._workbench import Workbench

log = structlog.get_logger("nsw.console")

__all__ = ["PREFIX", "Console", "ConsoleDeps", "FormError"]

PREFIX: Final = "/console"
MAX_FORM_BYTES: Final = 64 * 1024
#: Fields a form may repeat (check boxes); their values come joined by commas, the others keep the last value.
MULTI_FIELDS: Final = frozenset({"item"})
#: Every page: only the hub's own assets, no framing, forms only to the hub (OWASP secure headers).
SECURITY_HEADERS: Final[dict[str, str]] = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
    "x-frame-options": "DENY",
}

Publish = Callable[[OutMessage], Awaitable[object]]


class FormError(Exception):
    """A console form that cannot be taken: the answer to give (an HTML page with its status)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True, kw_only=True)
class ConsoleDeps:
    """What the console reads and writes, handed in by the hub."""

    view: StatusView
    officers: OfficerStore
    keys: KeyStore
    codec: SessionCodec
    #: Writes one record and returns once Kafka has it (the ingress producer's ``send``).
    publish: Publish
    agencies: tuple[str, ...]
    #: The worklist and the requests behind it (None: a console without officer pages, in unit tests).
    workbench: Workbench | None = None
    #: Where officers' decisions go: the agency callback's checks and publishing (adapters/_callback.py).
    decisions: DecisionCallback | None = None
    #: Selections, inspections, hit rates and the customs calibrations (the feedback page).
    feedback: FeedbackFeed | None = None
    bootstrap: str = "127.0.0.1:9092"
    secure_cookies: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resources.files("console").joinpath("templates"))),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["iso"] = lambda ms: iso(ms) if isinstance(ms, int) else ""
    env.filters["when"] = lambda ms: time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000)) if ms else ""
    env.filters["duration"] = duration
    env.filters["urlencode_path"] = lambda value: quote(str(value), safe="")
    return env


def duration(ms: int | float | None) -> str:
    """``2 h 05 min``, ``4 min``, ``overdue 3 min``: time left, as an officer reads it."""
    if ms is None:
        return ""
    overdue = ms < 0
    minutes = int(abs(ms) // 60_000)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    text = f"{days} d {hours} h" if days else f"{hours} h {mins:02d} min" if hours else f"{mins} min"
    return f"overdue {text}" if overdue else text


class Console:
    def __init__(self, deps: ConsoleDeps, *, pages: Sequence[Callable[[Console], list[BaseRoute]]] | None = None
                 ) -> None:
        self.deps = deps
        self.env = _templates()
        self._pages = pages
        #: Awaited when the hub stops: pages that keep background readings register how to end them.
        self.closers: list[Callable[[], Awaitable[None]]] = []

    async def close(self) -> None:
        for close in self.closers:
            await close()

    # --- who is signed in --------------------------------------------------------------------------

    def session(self, request: Request) -> Session | None:
        cookie = request.cookies.get(COOKIE)
        return self.deps.codec.decode(cookie) if cookie else None

    def principal(self, request: Request) -> Principal | None:
        """The signed-in user, when the session is valid and its account still is (revoked, password changed,
        key revoked: None)."""
        cached = request.scope.get("nsw.console.principal")
        if isinstance(cached, Principal):
            return cached
        session = self.session(request)
        if session is None:
            return None
        principal: Principal | None = None
        csrf = self.deps.codec.csrf(session)
        if session.kind == "officer":
            record = self.deps.officers.active(session.subject)
            if record is not None and generation_of(record["hash"]) == session.generation:
                principal = Principal("officer", record["username"], record["role"], record["agency"],
                                      record["display"], csrf)
        else:
            key = self.deps.keys.get(session.generation)
            if key is not None and key["revoked_at"] is None and key["trader"] == session.subject \
                    and not key.get("agency"):
                principal = Principal("trader", session.subject, "trader", None, session.subject, csrf)
        if principal is not None:
            request.scope["nsw.console.principal"] = principal
            request.scope["nsw.console.session"] = session
        return principal

    def sign_in_redirect(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{PREFIX}/signin?next={quote(target, safe='')}", status_code=303)

    # --- forms ---------------------------------------------------------------------------------------

    async def form(self, request: Request, principal: Principal | None) -> dict[str, str]:
        """The fields of a POSTed form, after checking its CSRF token against the session (FormError 403
        otherwise) and that it came from this site (``MULTI_FIELDS`` joined by commas)."""
        raw = await bounded_body(request, MAX_FORM_BYTES)
        if raw is None:
            raise FormError(413, f"the form is larger than {MAX_FORM_BYTES} bytes")
        fields: dict[str, str] = {}
        try:
            for name, value in parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=1000):
                fields[name] = f"{fields[name]},{value}" if name in fields and name in MULTI_FIELDS else value
        except (UnicodeDecodeError, ValueError) as exc:
            raise FormError(400, f"the form cannot be read ({exc})") from None
        origin = request.headers.get("origin")
        if origin is not None and origin != "null" and origin.rstrip("/") != self.origin(request):
            raise FormError(403, "the form was sent from another site")
        session = request.scope.get("nsw.console.session")
        token = fields.get("csrf", "")
        if principal is not None and (not isinstance(session, Session) or not self.deps.codec.csrf_ok(session, token)):
            log.warning("console_csrf_refused", path=request.url.path)
            raise FormError(403, "the form's security token is missing or expired; reload the page and try again")
        return fields

    @staticmethod
    def origin(request: Request) -> str:
        return f"{request.url.scheme}://{request.url.netloc}"

    # --- answers -------------------------------------------------------------------------------------

    def render(self, request: Request, template: str, context: Mapping[str, Any] | None = None, *,
               status: int = 200, session: Session | None = None) -> Response:
        principal = self.principal(request)
        body = self.env.get_template(template).render(
            prefix=PREFIX, principal=principal, csrf=principal.csrf if principal else "",
            path=request.url.path, **(context or {}))
        response = HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)
        self.refresh(request, response, session)
        return response

    def error(self, request: Request, status: int, message: str) -> Response:
        return self.render(request, "error.html", {"status": status, "message": message}, status=status)

    def refresh(self, request: Request, response: Response, session: Session | None = None) -> None:
        """Set the session cookie: a new session, or the current one touched (its idle clock restarts)."""
        current = session or request.scope.get("nsw.console.session")
        if isinstance(current, Session):
            self.set_cookie(response, self.deps.codec.touch(current))

    def set_cookie(self, response: Response, session: Session) -> None:
        response.set_cookie(COOKIE, self.deps.codec.encode(session), max_age=int(self.deps.codec.lifetime),
                            path=PREFIX, httponly=True, samesite="strict", secure=self.deps.secure_cookies)

    def clear_cookie(self, response: Response) -> None:
        response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict",
                               secure=self.deps.secure_cookies)

    # --- routes --------------------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        from console import _pages  # noqa: PLC0415 - the pages import this module

        pages = self._pages if self._pages is not None else _pages.PAGES
        inner: list[BaseRoute] = [Route("/", self.home, methods=["GET"])]
        for page in pages:
            inner += page(self)
        inner.append(Mount("/static", app=StaticFiles(directory=str(resources.files("console").joinpath("static"))),
                           name="static"))
        return [Mount(PREFIX, routes=inner)]

    async def home(self, request: Request) -> Response:
        principal = self.principal(request)
        if principal is None:
            return RedirectResponse(f"{PREFIX}/signin", status_code=303)
        if principal.kind == "trader":
            return RedirectResponse(f"{PREFIX}/trader", status_code=303)
        if principal.is_operator:
            return RedirectResponse(f"{PREFIX}/ops", status_code=303)
        return RedirectResponse(f"{PREFIX}/worklist", status_code=303)


def generation_of(password_hash: str) -> str:
    """What ties a session to the credential it was opened with: a password change ends every session. A digest
    of the stored hash (salt included), so the cookie carries no part of the hash itself."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def trader_key_id(token: str) -> str:
    return token[len(TOKEN_PREFIX):].partition("_")[0] if token.startswith(TOKEN_PREFIX) else ""
