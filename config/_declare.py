"""How a setting is declared once (name, type, default, description) and read from the environment.

A :class:`Setting` couples an ``NSW_*`` variable with a :class:`Kind` that parses and checks its text. An
:class:`Env` reads settings from one mapping (the process environment, or a test's dict): an unset or empty
variable is its default, a bad one is recorded as a :class:`~config.errors.Problem` (the variable, its value, the
form expected, a hint) and its default used meanwhile, so that :meth:`Env.check` raises one error naming every
mistake at once. This module is the only place that reads ``os.environ`` for the project's settings.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from config.errors import ConfigError, Problem

__all__ = ["Env", "Kind", "Setting", "choice", "flag", "number", "optional", "path", "port", "text", "undeclared",
           "whole", "words"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
E = TypeVar("E", bound=Exception)


class _BadValueError(ValueError):
    """The text is not of the kind's form; the message says why (``is not a whole number``)."""


@dataclass(frozen=True, slots=True)
class Kind(Generic[T_co]):
    """A setting's type: ``expected`` names the form for messages and the README, ``parse`` reads the text."""

    expected: str
    parse: Callable[[str], T_co]


def _whole(least: int | None, most: int | None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise _BadValueError("is not a whole number") from None
        if least is not None and value < least:
            raise _BadValueError(f"is below {least}")
        if most is not None and value > most:
            raise _BadValueError(f"is above {most}")
        return value
    return parse


def whole(*, least: int | None = None, most: int | None = None) -> Kind[int]:
    bounds = f" from {least}" if least is not None else ""
    bounds += f" to {most}" if most is not None else ""
    return Kind(f"a whole number{bounds}", _whole(least, most))


def port() -> Kind[int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise _BadValueError("is not a port number") from None
        if not 0 < value < 65536:
            raise _BadValueError("is outside 1..65535")
        return value
    return Kind("a port number, 1..65535", parse)


def number(*, least: float | None = None, most: float | None = None, above: float | None = None) -> Kind[float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):  # NaN or infinite: not a setting
            raise _BadValueError("is not a number")
        if (least is not None and value < least) or (most is not None and value > most):
            raise _BadValueError(f"is not between {least:g} and {most:g}" if least is not None and most is not None
                       else f"is below {least:g}" if least is not None else f"is above {most:g}")
        if above is not None and value <= above:
            raise _BadValueError(f"must be above {above:g}")
        return value
    span = f" from {least:g} to {most:g}" if least is not None and most is not None else ""
    span += f" above {above:g}" if above is not None else ""
    return Kind(f"a number{span}", parse)


def flag() -> Kind[bool]:
    def parse(raw: str) -> bool:
        if raw not in ("0", "1"):
            raise _BadValueError("is not 0 or 1")
        return raw == "1"
    return Kind("0 or 1", parse)


def choice(*options: str, lower: bool = True) -> Kind[str]:
    def parse(raw: str) -> str:
        value = raw.lower() if lower else raw
        if value not in options:
            raise _BadValueError(f"is not one of {', '.join(options)}")
        return value
    return Kind(f"one of {', '.join(options)}", parse)


def text(pattern: str | None = None, *, expected: str = "text") -> Kind[str]:
    def parse(raw: str) -> str:
        if pattern is not None and re.fullmatch(pattern, raw) is None:
            raise _BadValueError(f"is not {expected}")
        return raw
    return Kind(expected, parse)


def path() -> Kind[Path]:
    return Kind("a path", lambda raw: Path(raw).expanduser())


def words(pattern: str, *, expected: str) -> Kind[tuple[str, ...]]:
    """A comma-separated list, each item matching ``pattern``."""
    def parse(raw: str) -> tuple[str, ...]:
        items = tuple(item.strip() for item in raw.split(",") if item.strip())
        bad = [item for item in items if re.fullmatch(pattern, item) is None]
        if bad:
            raise _BadValueError(f"has {bad[0]!r}, not {expected}")
        return items
    return Kind(f"comma-separated {expected}", parse)


def optional(name: str, kind: Kind[T], doc: str, section: str, shown: str, *, secret: bool = False
             ) -> Setting[T | None]:
    """A setting that is absent (None) unless its variable is set."""
    return Setting(name, kind, None, doc, section, shown, secret)


@dataclass(frozen=True, slots=True)
class Setting(Generic[T]):
    """One ``NSW_*`` variable, declared once.

    ``name`` may hold ``<AGENCY>`` (one variable per agency). ``default`` is what an unset or empty variable
    means (None: absent); ``shown`` is how the README's Configuration table writes it; ``secret`` values are
    never printed (``nsw config show``). ``section`` is the part of the configuration it belongs to.
    """

    name: str
    kind: Kind[T]
    default: T
    doc: str
    section: str
    shown: str
    secret: bool = False

    @property
    def default_text(self) -> str:
        """The default as a person reads it (the README's text without its code quotes)."""
        return self.shown.replace("`", "")

    @property
    def pattern(self) -> bool:
        return "<" in self.name

    def variable(self, key: str | None = None) -> str:
        """The variable's name; for a pattern, the one of ``key`` (``sps`` -> ``NSW_AGENCY_SPS_MODE``)."""
        if not self.pattern:
            return self.name
        if key is None:
            raise TypeError(f"{self.name} needs a key")
        return re.sub(r"<[A-Z]+>", key.upper().replace("-", "_"), self.name)


class Env:
    """Reads settings from one mapping, collecting every problem (see the module docstring)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self.problems: list[Problem] = []

    @property
    def environ(self) -> Mapping[str, str]:
        """The ``NSW_*`` variables of the mapping read (a copy: ``nsw config show`` says which were set)."""
        return {k: v for k, v in self._environ.items() if k.startswith("NSW_")}

    def raw(self, setting: Setting[Any], key: str | None = None) -> str | None:
        """The variable's text, stripped; None when unset or empty."""
        value = self._environ.get(setting.variable(key))
        return value.strip() if value is not None and value.strip() else None

    def get(self, setting: Setting[T], key: str | None = None, *, default: T | None = None) -> T:
        """The setting's value; its (or the given) default when unset, empty or wrong (then a problem)."""
        fallback: T = setting.default if default is None else default
        raw = self.raw(setting, key)
        if raw is None:
            return fallback
        try:
            return setting.kind.parse(raw)
        except _BadValueError as reason:
            name = setting.variable(key)
            shown = fallback if default is not None else setting.default_text
            hint = f"unset {name} for its default, {shown}" if shown not in ("", "none") else \
                f"give {setting.kind.expected}, or unset {name}"
            self.problems.append(Problem(f"{name}={raw!r} {reason}", hint))
            return fallback

    def fail(self, message: str, hint: str = "") -> None:
        """A problem found by a section's own checks (two settings that do not go together)."""
        self.problems.append(Problem(message, hint))

    def adopt(self, error: Exception) -> None:
        """A section's constructor refused its values: record its problems with the others."""
        problems = getattr(error, "problems", None)
        if problems:
            self.problems.extend(problems)
        else:
            self.fail(str(error), str(getattr(error, "hint", "")))

    def check(self, error: Callable[[str], E] | None = None) -> None:
        """Raise one error naming every problem so far (``error``: the section's own error class)."""
        if not self.problems:
            return
        # Once each: a variable two sections read (NSW_KAFKA_SECURITY) is one mistake.
        combined = ConfigError.of(list(dict.fromkeys(self.problems)))
        if error is None:
            raise combined
        raised = error(str(combined))
        raised.hint = combined.hint  # type: ignore[attr-defined]
        raised.problems = combined.problems  # type: ignore[attr-defined]
        raise raised


def undeclared(environ: Mapping[str, str], settings: Iterable[Setting[Any]]) -> list[str]:
    """``NSW_*`` variables in ``environ`` that no setting declares (a typo such as ``NSW_PROT`` is ignored
    otherwise; ``nsw config show`` names them)."""
    exact = {s.name for s in settings if not s.pattern}
    patterns = [re.compile(re.sub(r"<[A-Z]+>", "[A-Z0-9_]+", s.name)) for s in settings if s.pattern]
    return sorted(name for name in environ if name.startswith("NSW_") and name not in exact
                  and not any(p.fullmatch(name) for p in patterns))
