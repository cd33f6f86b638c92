"""Keys a hub keeps in its state folder when the environment gives none (webhook secrets, console sessions)."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["state_key"]


def state_key(state_dir: Path, filename: str, *, env: str | None, env_name: str, size: int,
              decode: Callable[[str, str], bytes]) -> bytes:
    """``env`` (the value of ``env_name``, base64) when given, else ``<state dir>/<filename>``, created with ``size``
    random bytes on first use, readable by this user only; ``decode(text, origin)`` checks either."""
    if env:
        return decode(env, env_name)
    path = state_dir / filename
    try:
        return decode(path.read_text(encoding="ascii"), str(path))
    except FileNotFoundError:
        pass
    state_dir.mkdir(parents=True, exist_ok=True)
    key = os.urandom(size)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process of this machine made it first: use theirs
        return decode(path.read_text(encoding="ascii"), str(path))
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(base64.b64encode(key).decode() + "\n")
    return key
