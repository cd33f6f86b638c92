"""The configuration's error: a setting has a value the project cannot use.

    errors.NSWError
    └── config.errors.ConfigError   (ValueError) one or more settings are wrong; never retriable

Each problem names the variable, the bad value and the form expected, with a hint; one error carries every
problem found while reading the environment, so a user fixes them all at once instead of one start per mistake.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from errors import NSWError

__all__ = ["ConfigError", "Problem"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One setting that cannot be used: ``message`` names it and its value, ``hint`` says what to do."""

    message: str
    hint: str = ""


class ConfigError(NSWError, ValueError):
    """A setting has a value the hub cannot use; ``hint`` says what to do instead, ``problems`` lists them all."""

    def __init__(self, message: str, *, hint: str = "", problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.hint = hint
        self.problems: tuple[Problem, ...] = tuple(problems) or (Problem(message, hint),)

    @classmethod
    def of(cls, problems: Sequence[Problem]) -> ConfigError:
        """One error for ``problems`` (at least one): the message lists them when there are several."""
        if len(problems) == 1:
            return cls(problems[0].message, hint=problems[0].hint, problems=problems)
        message = f"{len(problems)} settings cannot be used: " + "; ".join(p.message for p in problems)
        hints = "; ".join(p.hint for p in problems if p.hint)
        return cls(message, hint=hints, problems=problems)
