"""The signed-in user's own account: who the console takes them for, what they see, when the session ends."""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from console._app import Console
from console._principal import Principal
from console._sessions import Session

__all__ = ["routes", "sees"]

SEES: Final = {
    "officer": "the worklist and hit rates of your agency only; you record inspections and decisions",
    "supervisor": "the worklist and hit rates of your agency only; you also decide escalated cases",
    "operator": "the hub's operations (no agency's cases)",
    "trader": "your own submissions only",
}


def sees(principal: Principal) -> str:
    return SEES[principal.role]


def routes(console: Console) -> list[BaseRoute]:
    async def account(request: Request) -> Response:
        principal = console.principal(request)
        if principal is None:
            return console.sign_in_redirect(request)
        session = request.scope.get("nsw.console.session")
        issued = session.issued_at if isinstance(session, Session) else 0.0
        codec = console.deps.codec
        return console.render(request, "account.html", {
            "sees": sees(principal), "signed_in": int(issued * 1000),
            "ends": int((issued + codec.lifetime) * 1000), "idle_minutes": round(codec.idle / 60)})

    return [Route("/account", account, methods=["GET"])]
