# SPDX-License-Identifier: MIT
"""Python values <-> libhybrid objs, by the JSON mapping of the library (doc/obj.md).

============================  =====================================================
Python                        obj / JSON
============================  =====================================================
``None``                      noobj / ``null``
``bool``                      bool
``int`` (int64 range only)    int (beyond int64: :class:`OverflowError`, never wraps)
``float``                     real, exact (``-0.0`` and subnormals kept; NaN and
                              infinities are refused: JSON cannot hold them)
``str``                       str
``list`` / ``tuple``          lst (read back as ``list``)
``dict`` with ``str`` keys    rec whose keys are uris (``{"a": 1}``)
``dict`` with other keys      rec (``{"@rec": [[k, v], ...]}``); read back with list keys
                              as tuples
:class:`Uri`                  uri (``{"@uri": "a/b"}``)
:class:`Typed`                a typed value ``T[v]`` (``{"@type": T, "@value": v}``)
a stream                      read back as a ``list``
============================  =====================================================

Bus bodies are JSON text: the binding writes them with Python's :mod:`json` module after the
checks above and reads them with it (Python's ints are unbounded and its float parsing and
printing are exact, so nothing is lost); store values and mm-ADT results go through the
library's own ``hyb_obj_to_json`` / ``hyb_obj_from_json``.
"""
from __future__ import annotations

import json
import json.scanner
from typing import Any, Optional

from ._ffi import ffi, lib
from .errors import check, error_for

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1


class Uri:
    """A uri value (an obj of kind uri), distinct from a ``str``: ``Uri("/a/b")``."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError("Uri() takes a str")
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Uri({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Uri) and other.text == self.text

    def __hash__(self) -> int:
        return hash(("hybrid.Uri", self.text))


class Typed:
    """A typed value ``type[value]`` such as ``nat[5]``: ``Typed("/type/nat", 5)``.

    ``id`` is the value id (``@id``) when the obj had one.
    """

    __slots__ = ("type", "value", "id")

    def __init__(self, type: str, value: Any, id: Optional[str] = None) -> None:
        self.type = type
        self.value = value
        self.id = id

    def __repr__(self) -> str:
        extra = f", id={self.id!r}" if self.id is not None else ""
        return f"Typed({self.type!r}, {self.value!r}{extra})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Typed) and other.type == self.type
                and _same(other.value, self.value))

    def __hash__(self) -> int:
        return hash(("hybrid.Typed", self.type, _hashable(self.value)))


class Code:
    """An mm-ADT code value (``|plus(1)``), which the JSON mapping cannot hold: read from
    mm-ADT results and kept as its exact text form (``text``).  It cannot be written back
    through the binding."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Code({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Code) and other.text == self.text

    def __hash__(self) -> int:
        return hash(("hybrid.Code", self.text))


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _hashable(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple((_hashable(k), _hashable(x)) for k, x in v.items())
    return v


def _prep(v: Any) -> Any:
    """v as plain JSON-able data (the @-forms for uris, typed values and odd keys);
    raises OverflowError for an int beyond int64 and TypeError for other types."""
    t = type(v)
    if t is str or t is float or t is bool or v is None:
        return v
    if t is int:
        if INT64_MIN <= v <= INT64_MAX:
            return v
        raise OverflowError(f"{v} is beyond the int64 range of hybrid ints")
    if t is dict:
        at = False
        for k in v:
            tk = type(k)
            if tk is not str and tk is not Uri:
                return {"@rec": [[_prep(k), _prep(x)] for k, x in v.items()]}
            at = at or str(k)[:1] == "@"
        if at:
            # {"@uri": ...} as a plain object would be a uri, not a dict: the keys go as
            # uris in the @rec form, as the library writes such a rec
            return {"@rec": [[{"@uri": str(k)}, _prep(x)] for k, x in v.items()]}
        return {str(k): _prep(x) for k, x in v.items()}
    if t is list or t is tuple:
        return [_prep(x) for x in v]
    if t is Uri:
        return {"@uri": v.text}
    if t is Typed:
        d = {"@type": v.type, "@value": _prep(v.value)}
        if v.id is not None:
            d["@id"] = v.id
        return d
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, int):
        return _prep(int(v))
    if isinstance(v, float):
        return float(v)
    if isinstance(v, str):
        return str(v)
    if isinstance(v, dict):
        return _prep(dict(v))
    if isinstance(v, (list, tuple)):
        return [_prep(x) for x in v]
    raise TypeError(f"cannot map a {t.__name__} to a hybrid value")


def _no_default(o: Any) -> Any:
    raise TypeError(f"cannot map a {type(o).__name__} to a hybrid value")


# The json module's C encoder, made once (JSONEncoder.encode makes one per call): compact,
# UTF-8 kept, NaN and infinities refused.  _prep has already checked the int64 range and
# replaced uris, typed values and non-str keys by their @-forms.
try:
    from json.encoder import c_make_encoder as _c_make_encoder  # type: ignore
except ImportError:  # pragma: no cover - CPython always has it
    _c_make_encoder = None
_cenc = None
if _c_make_encoder is not None:
    _cenc = _c_make_encoder(None, _no_default, json.encoder.encode_basestring, None, ":", ",",
                            False, False, False)

    def _dumps(v: Any) -> str:
        return "".join(_cenc(v, 0))
else:  # pragma: no cover
    _dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False,
                              separators=(",", ":")).encode


_esc = json.encoder.encode_basestring  # the json module's C string writer (UTF-8 kept)
_irepr = int.__repr__
_frepr = float.__repr__


def _flat_json(v: dict) -> Optional[bytes]:
    """The JSON text of a flat dict of str keys and plain scalars (str, int in int64, finite
    float, bool, None; exact types, no subclasses), written member by member in the walk that
    checks it, byte for byte what json writes (its C string writer, int.__repr__,
    float.__repr__); None for any other dict (to_json's general path then maps it or raises).
    For small dicts this costs less than the check walk and then json's encoder call.
    Bus.call has a copy of it inline."""
    s = sep = ""
    for k, x in v.items():
        t = type(x)
        if type(k) is not str:
            return None
        if t is str:
            s = f"{s}{sep}{_esc(k)}:{_esc(x)}"
        elif t is int and INT64_MIN <= x <= INT64_MAX:
            s = f"{s}{sep}{_esc(k)}:{_irepr(x)}"
        elif t is bool:
            s = f"{s}{sep}{_esc(k)}:{'true' if x else 'false'}"
        elif x is None:
            s = f"{s}{sep}{_esc(k)}:null"
        elif t is float and x - x == 0.0:  # finite (inf - inf and NaN - NaN are NaN)
            s = f"{s}{sep}{_esc(k)}:{_frepr(x)}"
        else:
            return None
        sep = ","
    if '"@' in s:
        return None  # a key starting with @ (or a value, which costs only the long way)
    return f"{{{s}}}".encode()


def to_json(v: Any) -> bytes:
    """The JSON text (UTF-8 bytes) of a Python value by the mapping."""
    if type(v) is dict:
        # the common body: a flat dict of str keys and plain scalars needs no _prep copy
        b = _flat_json(v)
        if b is not None:
            return b
    try:
        return _dumps(_prep(v)).encode()
    except ValueError as e:  # NaN / infinity
        raise ValueError(f"cannot map to a hybrid value: {e}") from None


def _hook(d: dict) -> Any:
    if d:
        k0 = next(iter(d))
        if k0[:1] == "@":
            if "@uri" in d:
                return Uri(d["@uri"])
            if "@rec" in d:
                pairs = d["@rec"]
                if pairs and all(type(k) is Uri for k, _ in pairs):
                    # uri keys alone: a plain object but for a key starting with @, so
                    # the dict it was ({"@uri": 1} stays that)
                    return {k.text: x for k, x in pairs}
                return {_hashable(k): x for k, x in pairs}
            if "@objs" in d:
                return list(d["@objs"])
            if "@type" in d:
                return Typed(d["@type"], d.get("@value"), d.get("@id"))
            if "@value" in d:
                return d["@value"]
    return d


_decoder = json.JSONDecoder(object_hook=_hook)
_loads = _decoder.decode
# The scanners, called directly (decode() adds two regex matches a call); text without
# '"@' holds no @-member, so it needs no object hook.
_scan = json.scanner.make_scanner(_decoder)
_scan_plain = json.scanner.make_scanner(json.JSONDecoder())


def from_json(text: Any) -> Any:
    """The Python value of JSON text (str or bytes) by the mapping; empty text is None."""
    if not text:
        return None
    if type(text) is not str:
        text = (text if type(text) is bytes else bytes(text)).decode("utf-8")
    try:
        v, end = (_scan if '"@' in text else _scan_plain)(text, 0)
    except StopIteration:
        return _loads(text)  # raises the decoder's error
    if end != len(text):
        return _loads(text)  # white space around, or trailing garbage: the full decoder
    return v


def to_obj(v: Any):
    """A new hyb_obj* (caller unrefs with lib.hyb_obj_unref) for a Python value.  A value
    nested past the library's bound (64 levels) raises LimitError (413), as the store
    refuses a value past its max_depth, however deep it is."""
    try:
        data = to_json(v)
    except RecursionError:
        data = None
    ret = ffi.new("hyb_obj **")
    err = ffi.new("hyb_error *")
    r = lib.hyb_obj_from_json(data, len(data), ret, err) if data is not None else _HYB_E_DEPTH
    if r == _HYB_E_DEPTH:
        raise error_for(_HYB_E_LIMIT, f"a value nested deeper than {_MAX_DEPTH} levels")
    check(r, err)
    return ret[0]


_KIND_LST, _KIND_OBJS, _KIND_CODE = 6, 8, 9
_HYB_E_TYPE = -(100000 + 1003)
_HYB_E_LIMIT = -(100000 + 1002)
_HYB_E_DEPTH = -(100000 + 1011)
_MAX_DEPTH = 64  # HYB_OBJ_MAX_DEPTH
_FORMAT_EXACT = 1


def from_obj(o) -> Any:
    """The Python value of a hyb_obj* (borrowed).  Code, which JSON cannot hold, becomes
    :class:`Code`; a lst or stream holding code is read element by element."""
    if o == ffi.NULL:
        return None
    ret = ffi.new("char **")
    err = ffi.new("hyb_error *")
    r = lib.hyb_obj_to_json(o, ret, err)
    if r == _HYB_E_TYPE:
        kind = lib.hyb_obj_get_kind(o)
        if kind == _KIND_CODE:
            check(lib.hyb_obj_format(o, _FORMAT_EXACT, ret))
            try:
                return Code(ffi.string(ret[0]).decode())
            finally:
                lib.hyb_free(ret[0])
        if kind in (_KIND_LST, _KIND_OBJS):
            return [from_obj(lib.hyb_obj_get_at(o, i)) for i in range(lib.hyb_obj_get_len(o))]
    check(r, err)
    try:
        return from_json(ffi.string(ret[0]))
    finally:
        lib.hyb_free(ret[0])
