"""The officer workbench: the hub's web console for the agencies' people, traders and operators.

Server-rendered pages (Jinja2 templates in ``console/templates``, assets in ``console/static``, nothing from
a CDN) mounted by the ingress under ``/console``. Officers sign in with accounts of their agency
(``nsw officers create``) and see only their agency's work; their actions become agency decisions through
the same request-bound path as any agency system (``adapters._callback``).
"""

from console._app import Console, ConsoleDeps
from console._principal import Principal

__all__ = ["Console", "ConsoleDeps", "Principal"]
