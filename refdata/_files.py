"""Reading the package's data files."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from refdata.errors import ReferenceDataError


def load_json(name: str) -> dict[str, Any]:
    """A data file of this package, which must name its source and date."""
    try:
        loaded = json.loads(resources.files("refdata").joinpath(name).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReferenceDataError(f"refdata/{name}: {exc}") from exc
    if not isinstance(loaded, dict) or not loaded.get("source") or not loaded.get("date"):
        raise ReferenceDataError(f"refdata/{name} must be an object naming its source and date")
    return loaded
