"""The console's pages, in the order of its navigation: each module offers ``routes(console)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from starlette.routing import BaseRoute

from console import _account, _cases, _feedback_page, _ops, _signin, _trader
from console._app import Console

PAGES: Final[tuple[Callable[[Console], list[BaseRoute]], ...]] = (
    _signin.routes,
    _cases.routes,
    _feedback_page.routes,
    _trader.routes,
    _ops.routes,
    _account.routes,
)
