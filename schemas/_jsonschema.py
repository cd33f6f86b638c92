"""JSON Schema (draft 2020-12, the dialect of OpenAPI 3.1) from the typed models the code already uses.

The API's bodies are TypedDicts (``schemas._records``, ``broker._api_types``, ``adapters._agency_api``); this
walks their type hints so the published description follows the code: a field added to a record is in the
description at once. Pure: types in, dicts out.

- a TypedDict becomes a component (``#/components/schemas/<class name>``), closed (``additionalProperties``
  false), its ``NotRequired`` fields optional (read from the hints: Python 3.11's ``__required_keys__`` misses
  ``NotRequired`` under ``from __future__ import annotations``);
- ``Literal`` becomes ``enum``; ``X | None`` a nullable ``type`` (or ``anyOf`` with ``null``); other unions
  ``anyOf``; ``list[X]`` an array; ``dict[str, X]`` an object of X; ``Any`` anything;
- ``Annotated[X, JsonSchema(...)]`` adds the keywords (``minLength``, ``format``, ``description``...) to X's schema.
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from typing import (
    Annotated,
    Any,
    Literal,
    NotRequired,
    Required,
    Union,
    get_args,
    get_origin,
    get_type_hints,
    is_typeddict,
)

from schemas.errors import NSWSchemaError

__all__ = ["JsonSchema", "SchemaSet", "SchemaTypeError"]

_SIMPLE: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}
_REF: str = "#/components/schemas/"


class SchemaTypeError(NSWSchemaError, TypeError):
    """A type the generator cannot describe (a programming error in a model, not retriable)."""


class JsonSchema:
    """Keywords to add to a type's schema: ``Annotated[str, JsonSchema(minLength=1)]`` (hashable, so the
    annotated type may sit in a union)."""

    __slots__ = ("keywords",)

    def __init__(self, **keywords: Any) -> None:
        self.keywords = keywords

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.keywords)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JsonSchema) and other.keywords == self.keywords

    def __repr__(self) -> str:
        return f"JsonSchema({self.keywords!r})"


class SchemaSet:
    """The component schemas of one document, filled as types are described."""

    def __init__(self) -> None:
        self.components: dict[str, dict[str, Any]] = {}
        self._types: dict[str, Any] = {}

    def ref(self, name: str) -> dict[str, Any]:
        return {"$ref": _REF + name}

    def describe(self, tp: Any) -> dict[str, Any]:
        """The schema of ``tp``; TypedDicts are added to ``components`` and referred to."""
        origin = get_origin(tp)
        if origin is Annotated:
            base, *extras = get_args(tp)
            schema = dict(self.describe(base))
            for extra in extras:
                if isinstance(extra, JsonSchema):
                    schema.update(extra.keywords)
            return schema
        if origin in (NotRequired, Required):
            return self.describe(get_args(tp)[0])
        if tp is Any or tp in _SIMPLE:
            return {"type": _SIMPLE[tp]} if tp in _SIMPLE else {}
        if is_typeddict(tp):
            return self._typeddict(tp)
        if origin is Literal:
            return _literal(get_args(tp))
        if origin in (Union, types.UnionType):
            return self._union(get_args(tp))
        return self._container(tp, origin)

    def _container(self, tp: Any, origin: Any) -> dict[str, Any]:
        args = get_args(tp)
        if origin in (list, tuple, Sequence) or tp is list:
            if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
                raise SchemaTypeError(f"fixed-length tuples are not described: {tp!r}")
            return {"type": "array", "items": self.describe(args[0]) if args else {}}
        if origin in (dict, Mapping) or tp is dict:
            if args and args[0] is not str:
                raise SchemaTypeError(f"JSON object keys are strings, not {args[0]!r}")
            return {"type": "object", "additionalProperties": self.describe(args[1]) if args else {}}
        raise SchemaTypeError(f"no JSON Schema for {tp!r}")

    def _typeddict(self, tp: Any) -> dict[str, Any]:
        name = tp.__name__
        known = self._types.get(name)
        if known is not None and known is not tp:
            raise SchemaTypeError(f"two models are called {name}: {known.__module__} and {tp.__module__}")
        if known is None:
            self._types[name] = tp
            self.components[name] = {}  # a placeholder: recursive models refer to themselves
            hints = get_type_hints(tp, include_extras=True)
            total = getattr(tp, "__total__", True)
            required = [field for field, hint in hints.items()
                        if (get_origin(hint) is Required) or (total and get_origin(hint) is not NotRequired)]
            schema: dict[str, Any] = {"type": "object",
                                      "properties": {field: self.describe(hint) for field, hint in hints.items()},
                                      "required": required, "additionalProperties": False}
            doc = tp.__doc__
            if doc and not doc.startswith(f"{name}("):  # not the generated "Name(field, ...)" signature
                schema["description"] = " ".join(doc.split())
            self.components[name] = schema
        return self.ref(name)

    def _union(self, members: tuple[Any, ...]) -> dict[str, Any]:
        schemas = [self.describe(member) for member in members]
        simple = [s["type"] for s in schemas if set(s) == {"type"} and isinstance(s["type"], str)]
        if len(simple) == len(schemas):
            return {"type": simple}
        nullable = {"type": "null"} in schemas
        others = [s for s in schemas if s != {"type": "null"}]
        if nullable and len(others) == 1 and "enum" in others[0]:
            merged = dict(others[0])
            merged["enum"] = [*merged["enum"], None]
            if isinstance(merged.get("type"), str):
                merged["type"] = [merged["type"], "null"]
            return merged
        return {"anyOf": schemas}


def _literal(values: tuple[Any, ...]) -> dict[str, Any]:
    kinds = {_SIMPLE[type(value)] for value in values}
    schema: dict[str, Any] = {"enum": list(values)}
    if len(kinds) == 1:
        schema = {"type": kinds.pop(), **schema}
    return schema
