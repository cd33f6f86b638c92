"""Avro binary encoders and decoders specialised to one record schema, compiled once per schema.

fastavro's writer and reader are generic: for every field they look the schema up at run time and try union
branches by validating the value. The hub's schemas use a small part of Avro (records, arrays, enums, unions of
``null`` and one other type, strings, ints, longs, doubles, booleans, references to named records and enums), so
for each record schema this module writes the Python source of one encoder and one decoder that do only what that
schema needs, and compiles it once (:func:`compile_codec`). A schema that uses anything else (maps, bytes, fixed,
floats, another shape of union, a logical type, a recursive type) gets no codec: the registry keeps fastavro for it.

The compiled code is a fast path, never a second opinion. It handles the values it is sure of (exact ``dict``,
``list``, ``str``, ``int`` in range, ``float``, ``bool``, ``None``; well-formed bodies whose lengths fit the bytes
left) and gives up on anything else by returning None, so that the caller runs fastavro on the same input and
gets fastavro's bytes, record or error. Hence the bytes and records are fastavro's for every input: an ``int``
given as ``True`` or ``1.0``, a missing field without default, a negative block count, an overlong varint or a
negative enum index are all left to fastavro. The decoder checks every length against the bytes left before
it allocates anything, so a crafted length costs nothing; the schemas it accepts are not recursive, so its
depth is the schema's.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["Codec", "compile_codec"]

_PRIMITIVES: Final = frozenset({"string", "int", "long", "double", "boolean"})
_INT_RANGE: Final = {"int": (-(1 << 31), (1 << 31) - 1), "long": (-(1 << 63), (1 << 63) - 1)}


class _Slow(Exception):  # noqa: N818 - a signal inside the compiled code, never seen outside this module
    """The fast path cannot be sure of this input: fastavro decides."""


class _Unsupported(Exception):  # noqa: N818 - a signal while compiling, never seen outside this module
    """The schema uses a type the compiled codec does not handle."""


def _zigzag(n: int) -> bytes:
    """The varint of ``n``, already zigzag-encoded (non-negative, below 2**64)."""
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _long(value: int) -> bytes:
    """The Avro long ``value`` (in the long range)."""
    return _zigzag((value << 1) ^ (value >> 63))


def _read_varint(data: bytes, pos: int, first: int) -> tuple[int, int]:
    """The rest of a varint whose first byte (``first``, continuation bit set) is before ``pos``. Varints
    longer than ten bytes or above 64 bits are left to fastavro (its C reader wraps them its own way)."""
    n = first & 0x7F
    shift = 7
    byte = first
    while byte & 0x80:
        if shift > 63:  # past the last bit of a 64-bit varint
            raise _Slow
        byte = data[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        shift += 7
    if n >> 64:
        raise _Slow
    return n, pos


_DOUBLE: Final = struct.Struct("<d")
#: The encodings of the longs 0 to _SMALL_COUNT - 1 (string lengths, most ints), looked up instead of computed.
_SMALL_COUNT: Final = 8192
_SMALL: Final = tuple(_long(n) for n in range(_SMALL_COUNT))
#: What the compiled code may raise when the fast path meets an input it does not take.
_GIVE_UP: Final = (_Slow, KeyError, IndexError, TypeError, ValueError, OverflowError, struct.error)


@dataclass(frozen=True, slots=True)
class Codec:
    """The compiled encoder and decoder of one record schema. Both return None when fastavro must decide."""

    name: str
    source: str  # the generated Python, for reading and debugging
    _encode: Callable[[Mapping[str, Any], bytearray], None]
    _decode: Callable[[bytes, int, int], tuple[dict[str, Any], int]]

    def encode(self, record: Mapping[str, Any], prefix: bytes = b"") -> bytes | None:
        """``prefix`` followed by the binary encoding of ``record``, or None (fastavro must encode it)."""
        out = bytearray(prefix)
        try:
            self._encode(record, out)
        except _GIVE_UP:
            return None
        return bytes(out)

    def decode(self, data: bytes, start: int = 0) -> dict[str, Any] | None:
        """The record whose body starts at ``start`` in ``data`` (bytes after it are ignored, as fastavro
        does), or None (fastavro must read it: it may be corrupt, or written in a way the fast path leaves)."""
        if not isinstance(data, bytes):  # a memoryview or bytearray: fastavro reads those its own way
            return None
        try:
            record, _ = self._decode(data, start, len(data))
        except _GIVE_UP:
            return None
        return record


class _Writer:
    """Writes the source of the encode and decode functions of every record a schema reaches."""

    def __init__(self, named: Mapping[str, Any]) -> None:
        self.named = named
        self.consts: dict[str, Any] = {}
        self.functions: dict[str, str] = {}  # record full name -> function suffix
        self.lines: list[str] = []
        self._active: set[str] = set()
        self._counter = 0

    def const(self, value: Any) -> str:
        name = f"_k{len(self.consts)}"
        self.consts[name] = value
        return name

    def var(self, stem: str) -> str:
        self._counter += 1
        return f"{stem}{self._counter}"

    def resolve(self, schema: Any) -> Any:
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            if schema not in self.named:
                raise _Unsupported(schema)
            return self.named[schema]
        if isinstance(schema, dict) and schema.get("type") in _PRIMITIVES:
            if set(schema) - {"type", "doc"}:  # a logical type or other attribute fastavro may act on
                raise _Unsupported(str(schema))
            return schema["type"]
        return schema

    def record(self, schema: Any) -> str:
        """The suffix of the functions for the record ``schema`` (written on first use)."""
        if not isinstance(schema, dict) or schema.get("type") != "record" or set(schema) - {
                "type", "name", "fields", "doc", "namespace", "aliases", "__fastavro_parsed", "__named_schemas"}:
            raise _Unsupported(str(schema)[:80])
        full = str(schema["name"])
        if full in self.functions:
            return self.functions[full]
        if full in self._active:
            raise _Unsupported(f"{full} is recursive")
        self._active.add(full)
        suffix = f"{self.var('')}_{full.rsplit('.', 1)[-1]}"
        enc: list[str] = [f"def _e{suffix}(r, b):", "    if type(r) is not dict: raise _Slow"]
        dec: list[str] = [f"def _d{suffix}(d, p, L):"]
        values = []
        for field in schema["fields"]:
            ftype = field["type"]
            key = repr(str(field["name"]))
            if "default" in field:
                enc.append(f"    v = r.get({key}, {self.const(field['default'])})")
            elif isinstance(ftype, list) and "null" in ftype:  # fastavro writes None for it
                enc.append(f"    v = r.get({key})")
            else:
                enc.append(f"    v = r[{key}]")
            self.encode(ftype, "v", "    ", enc)
            value = self.var("v")
            self.decode(ftype, value, "    ", dec)
            values.append(f"{key}: {value}")
        dec.append(f"    return {{{', '.join(values)}}}, p")
        self._active.discard(full)
        self.functions[full] = suffix
        self.lines += [*enc, "", *dec, ""]
        return suffix

    def encode(self, schema: Any, v: str, ind: str, out: list[str]) -> None:
        schema = self.resolve(schema)
        if schema == "string":
            out += [f"{ind}if type({v}) is not str: raise _Slow",
                    f"{ind}e = {v}.encode()",
                    f"{ind}n = len(e)",
                    f"{ind}b += _SMALL[n] if n < {_SMALL_COUNT} else _zigzag(n << 1)",
                    f"{ind}b += e"]
        elif isinstance(schema, str) and schema in _INT_RANGE:
            low, high = _INT_RANGE[schema]
            out += [f"{ind}if type({v}) is not int or not {low} <= {v} <= {high}: raise _Slow",
                    f"{ind}b += _SMALL[{v}] if 0 <= {v} < {_SMALL_COUNT} else _long({v})"]
        elif schema == "double":
            out += [f"{ind}if type({v}) is not float: raise _Slow",
                    f"{ind}b += _pack_double({v})"]
        elif schema == "boolean":
            out += [f"{ind}if {v} is True: b.append(1)",
                    f"{ind}elif {v} is False: b.append(0)",
                    f"{ind}else: raise _Slow"]
        elif isinstance(schema, list):
            branch = self._nullable(schema)
            out += [f"{ind}if {v} is None: b.append(0)", f"{ind}else:", f"{ind}    b.append(2)"]
            self.encode(branch, v, ind + "    ", out)
        elif isinstance(schema, dict) and schema.get("type") == "enum":
            table = self.const({s: _long(i) for i, s in enumerate(self._symbols(schema))})
            x = self.var("x")
            out += [f"{ind}{x} = {table}.get({v}) if type({v}) is str else None",
                    f"{ind}if {x} is None: raise _Slow",
                    f"{ind}b += {x}"]
        elif isinstance(schema, dict) and schema.get("type") == "array":
            self._no_extra(schema, {"type", "items", "doc"})
            item = self.var("x")
            out += [f"{ind}if type({v}) is not list: raise _Slow",
                    f"{ind}if {v}:",
                    f"{ind}    b += _long(len({v}))",
                    f"{ind}    for {item} in {v}:"]
            self.encode(schema["items"], item, ind + "        ", out)
            out.append(f"{ind}b.append(0)")
        else:
            out.append(f"{ind}_e{self.record(schema)}({v}, b)")

    def decode(self, schema: Any, v: str, ind: str, out: list[str]) -> None:
        schema = self.resolve(schema)
        if schema == "string":
            n = self._varint(ind, out)
            out += [f"{ind}q = p + ({n} >> 1)",
                    f"{ind}if {n} & 1 or q > L: raise _Slow",  # a negative length, or more than the bytes left
                    f"{ind}{v} = d[p:q].decode()",
                    f"{ind}p = q"]
        elif isinstance(schema, str) and schema in _INT_RANGE:
            n = self._varint(ind, out)
            out.append(f"{ind}{v} = ({n} >> 1) ^ -({n} & 1)")
        elif schema == "double":
            out += [f"{ind}if p + 8 > L: raise _Slow",
                    f"{ind}{v} = _unpack_double(d, p)[0]",
                    f"{ind}p += 8"]
        elif schema == "boolean":
            c = self.var("c")
            out += [f"{ind}{c} = d[p]", f"{ind}p += 1",
                    f"{ind}if {c} == 0: {v} = False",
                    f"{ind}elif {c} == 1: {v} = True",
                    f"{ind}else: raise _Slow"]
        elif isinstance(schema, list):
            branch = self._nullable(schema)
            c = self.var("c")
            out += [f"{ind}{c} = d[p]", f"{ind}p += 1",
                    f"{ind}if {c} == 0: {v} = None",
                    f"{ind}elif {c} != 2: raise _Slow",
                    f"{ind}else:"]
            self.decode(branch, v, ind + "    ", out)
        elif isinstance(schema, dict) and schema.get("type") == "enum":
            symbols = self._symbols(schema)
            n = self._varint(ind, out)
            out += [f"{ind}if {n} & 1 or {n} >= {2 * len(symbols)}: raise _Slow",
                    f"{ind}{v} = {self.const(tuple(symbols))}[{n} >> 1]"]
        elif isinstance(schema, dict) and schema.get("type") == "array":
            self._no_extra(schema, {"type", "items", "doc"})
            item = self.var("x")
            out += [f"{ind}{v} = []", f"{ind}while True:"]
            n = self._varint(ind + "    ", out)
            out += [f"{ind}    if not {n}: break",
                    f"{ind}    if {n} & 1: raise _Slow",  # a negative count (with a block size): fastavro's
                    f"{ind}    {n} >>= 1",
                    f"{ind}    if {n} > L - p: raise _Slow",  # every item takes at least one byte
                    f"{ind}    for _ in range({n}):"]
            self.decode(schema["items"], item, ind + "        ", out)
            out.append(f"{ind}        {v}.append({item})")
        else:
            out.append(f"{ind}{v}, p = _d{self.record(schema)}(d, p, L)")

    def _varint(self, ind: str, out: list[str]) -> str:
        """Lines reading one varint at ``p``; returns the variable holding it (still zigzag-encoded)."""
        n = self.var("n")
        out += [f"{ind}{n} = d[p]", f"{ind}p += 1",
                f"{ind}if {n} > 127: {n}, p = _read_varint(d, p, {n})"]
        return n

    def _nullable(self, union: list[Any]) -> Any:
        if len(union) != 2 or union[0] != "null" or union[1] == "null" or isinstance(self.resolve(union[1]), list):
            raise _Unsupported(str(union))
        return union[1]

    @staticmethod
    def _symbols(schema: dict[str, Any]) -> list[str]:
        _Writer._no_extra(schema, {"type", "name", "symbols", "doc", "namespace", "aliases", "default"})
        symbols = [str(s) for s in schema["symbols"]]
        if not symbols or len(set(symbols)) != len(symbols):
            raise _Unsupported(str(schema))
        return symbols

    @staticmethod
    def _no_extra(schema: dict[str, Any], allowed: set[str]) -> None:
        if set(schema) - allowed:
            raise _Unsupported(str(schema)[:80])


def compile_codec(parsed: Any) -> Codec | None:
    """The codec of a record schema parsed by fastavro (``parse_schema``: named types in its
    ``__named_schemas``), or None when the schema uses a type the codec does not handle."""
    named = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}
    writer = _Writer(named)
    try:
        suffix = writer.record(parsed)
    except _Unsupported:
        return None
    source = "\n".join(writer.lines)
    namespace: dict[str, Any] = {"_Slow": _Slow, "_SMALL": _SMALL, "_zigzag": _zigzag, "_long": _long,
                                 "_read_varint": _read_varint, "_pack_double": _DOUBLE.pack,
                                 "_unpack_double": _DOUBLE.unpack_from, **writer.consts}
    exec(compile(source, f"<avro codec {parsed['name']}>", "exec"), namespace)  # noqa: S102 - our own generated source
    return Codec(name=str(parsed["name"]), source=source, _encode=namespace[f"_e{suffix}"],
                 _decode=namespace[f"_d{suffix}"])
