"""Child-path look-ups over lxml trees, without ElementPath's per-call path handling.

``element.find("d:A/d:B", NS)`` goes through lxml's Python ElementPath layer on every call (namespace
map, path cache, a generator per step): about 3 µs a look-up, and a declaration is read with dozens of
them. These helpers take the same child-only paths in the same ``prefix:Name/prefix:Name`` form and walk
``iterchildren(tag)``, which lxml runs in C. The result is the one ``find``/``iterfind`` would give.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping

from lxml import etree

_Element = etree._Element


@functools.lru_cache(maxsize=512)
def clark_steps(path: str, namespaces: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    """``"d:A/d:B"`` as Clark names ``("{ns}A", "{ns}B")``, with the prefixes of ``namespaces``."""
    prefixes = dict(namespaces)
    steps: list[str] = []
    for step in path.split("/"):
        prefix, colon, local = step.partition(":")
        if not colon:
            raise ValueError(f"path step {step!r} has no namespace prefix")
        steps.append(f"{{{prefixes[prefix]}}}{local}")
    return tuple(steps)


class Paths:
    """Look-ups with one namespace map, e.g. ``Paths({"d": NSW_NAMESPACE})``."""

    __slots__ = ("_key",)

    def __init__(self, namespaces: Mapping[str, str]) -> None:
        self._key = tuple(sorted(namespaces.items()))

    def find(self, parent: _Element, path: str) -> _Element | None:
        """The first element at ``path`` below ``parent`` in document order (``parent.find(path, ns)``)."""
        return _first(parent, clark_steps(path, self._key), 0)

    def iter(self, parent: _Element, path: str) -> Iterator[_Element]:
        """Every element at ``path`` below ``parent`` in document order (``parent.iterfind(path, ns)``)."""
        return _all(parent, clark_steps(path, self._key), 0)

    def text(self, parent: _Element, path: str) -> str | None:
        """The text of :meth:`find`'s element; None when there is none (``findtext`` without a default)."""
        found = _first(parent, clark_steps(path, self._key), 0)
        return None if found is None else (found.text or "")


def _first(parent: _Element, steps: tuple[str, ...], at: int) -> _Element | None:
    last = at == len(steps) - 1
    for child in parent.iterchildren(steps[at]):
        if last:
            return child
        found = _first(child, steps, at + 1)
        if found is not None:
            return found
    return None


def _all(parent: _Element, steps: tuple[str, ...], at: int) -> Iterator[_Element]:
    if at == len(steps) - 1:
        yield from parent.iterchildren(steps[at])
        return
    for child in parent.iterchildren(steps[at]):
        yield from _all(child, steps, at + 1)
