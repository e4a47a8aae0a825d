# SPDX-License-Identifier: MIT
"""Security tokens (ES256 key pairs, issue, attenuate, inspect, verify) over libhybrid's
``hybrid/token.h``.  A token is text; connect with one through ``Bus(token=..., key=...)``
or ``Store(token=..., key=...)``."""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ._ffi import ffi, lib, new_options
from .errors import check

__all__ = ["Key", "keygen", "load_key", "issue", "attenuate", "inspect", "verify", "Verified"]

_EXPORT_PRIVATE = 1


def _take_str(p) -> str:
    try:
        return ffi.string(p).decode()
    finally:
        lib.hyb_free(p)


class Key:
    """A P-256 key (a key pair, or a public key alone)."""

    def __init__(self, _ptr) -> None:
        self._ptr = ffi.gc(_ptr, lib.hyb_key_unref)

    @classmethod
    def generate(cls) -> "Key":
        """A new key pair from the system's random source."""
        ret = ffi.new("hyb_key **")
        check(lib.hyb_key_generate(ret))
        return cls(ret[0])

    @classmethod
    def load(cls, source: Union[str, bytes, os.PathLike]) -> "Key":
        """Reads a key: a path to a PEM or JWK file, or the PEM / JWK text itself."""
        ret = ffi.new("hyb_key **")
        err = ffi.new("hyb_error *")
        if isinstance(source, bytes) or (isinstance(source, str) and
                                         source.lstrip().startswith(("-----", "{"))):
            data = source.encode() if isinstance(source, str) else source
            check(lib.hyb_key_load_memory(data, len(data), ret, err), err)
        else:
            check(lib.hyb_key_load_file(os.fsencode(source), ret, err), err)
        return cls(ret[0])

    @property
    def kid(self) -> str:
        """The key's id (its RFC 7638 thumbprint)."""
        return ffi.string(lib.hyb_key_get_kid(self._ptr)).decode()

    @property
    def has_private(self) -> bool:
        """True for a key pair (one that can sign)."""
        return bool(lib.hyb_key_has_private(self._ptr))

    def to_pem(self, private: bool = False) -> str:
        """PEM text: the public key, or with private=True the private key."""
        ret = ffi.new("char **")
        check(lib.hyb_key_to_pem(self._ptr, _EXPORT_PRIVATE if private else 0, ret))
        return _take_str(ret[0])

    def to_jwk(self, private: bool = False) -> Dict[str, Any]:
        """The JWK (a dict)."""
        ret = ffi.new("char **")
        check(lib.hyb_key_to_jwk(self._ptr, _EXPORT_PRIVATE if private else 0, ret))
        return json.loads(_take_str(ret[0]))

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Writes the private key to path (mode 0600) and the public key to path + '.pub',
        as ``hybrid token keygen PATH`` does."""
        err = ffi.new("hyb_error *")
        p = os.fspath(path)
        check(lib.hyb_key_save_private(self._ptr, os.fsencode(p), err), err)
        self.save_public(p + ".pub")

    def save_public(self, path: Union[str, os.PathLike]) -> None:
        """Writes the public key (PEM) to path."""
        err = ffi.new("hyb_error *")
        check(lib.hyb_key_save_public(self._ptr, os.fsencode(os.fspath(path)), err), err)

    def public(self) -> "Key":
        """The public key alone."""
        return Key.load(self.to_pem())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and bool(lib.hyb_key_equal(self._ptr, other._ptr))

    def __hash__(self) -> int:
        return hash(self.kid)

    def __repr__(self) -> str:
        return f"<hybrid.token.Key {self.kid} {'pair' if self.has_private else 'public'}>"


def keygen(path: Union[str, os.PathLike, None] = None) -> Key:
    """A new key pair; with path it is also saved (path, and path + '.pub')."""
    k = Key.generate()
    if path is not None:
        k.save(path)
    return k


def load_key(source: Union[str, bytes, os.PathLike]) -> Key:
    """Same as :meth:`Key.load`."""
    return Key.load(source)


def _key(k: Any) -> Key:
    return k if isinstance(k, Key) else Key.load(k)


CapsSpec = Union[Mapping[str, Union[str, Iterable[str]]], Iterable[Tuple[str, Any]]]


def _caps(caps: Optional[CapsSpec], keep: List[Any]):
    if caps is None:
        return ffi.NULL, 0
    items = list(caps.items()) if isinstance(caps, Mapping) else list(caps)
    arr = ffi.new("hyb_token_cap[]", max(1, len(items)))
    keep.append(arr)
    acts = ffi.new("unsigned *")
    for i, (res, a) in enumerate(items):
        text = a if isinstance(a, str) else ",".join(a)
        r = lib.hyb_token_actions_parse(text.encode(), acts)
        if r < 0:
            raise ValueError(f"unknown action in {text!r} (call reg sub pub read write "
                             "delete admin)")
        c = ffi.new("char[]", res.encode())
        keep.append(c)
        arr[i].resource = c
        arr[i].actions = acts[0]
    return arr, len(items)


def _strs(v: Union[None, str, Sequence[str]], keep: List[Any]):
    if v is None:
        return ffi.NULL, 0
    if isinstance(v, str):
        v = [v]
    cs = [ffi.new("char[]", s.encode()) for s in v]
    keep.extend(cs)
    arr = ffi.new("const char *[]", cs)
    keep.append(arr)
    return arr, len(cs)


def issue(issuer: Any, *, iss: str, sub: str, aud: Union[str, Sequence[str]], holder: Any,
          caps: CapsSpec, ttl: Optional[int] = None, dlg: int = 0, epo: int = 0,
          now: int = 0) -> str:
    """Issues a one-block token signed by issuer (a key pair: :class:`Key` or a path) for
    holder (its public key), with caps ``{"/sensors/#": "read,sub", ...}`` (resource
    patterns -> comma-separated actions or a list of them).  ttl in seconds (None: one
    hour), dlg the number of attenuations allowed.  Returns the token text."""
    keep: List[Any] = []
    ik, hk = _key(issuer), _key(holder)
    o = new_options("hyb_token_issue_opts", lib.hyb_token_issue_opts_init_sized)
    s_iss, s_sub = ffi.new("char[]", iss.encode()), ffi.new("char[]", sub.encode())
    o.iss, o.sub = s_iss, s_sub
    o.aud, o.n_aud = _strs(aud, keep)
    o.holder = hk._ptr
    o.caps, o.n_caps = _caps(caps, keep)
    o.now, o.ttl_s, o.dlg, o.epo = now, ttl or 0, dlg, epo
    ret = ffi.new("char **")
    err = ffi.new("hyb_error *")
    check(lib.hyb_token_issue(ik._ptr, o, ret, err), err)
    return _take_str(ret[0])


def attenuate(token: str, holder_key: Any, *, new_holder: Any,
              caps: Optional[CapsSpec] = None, aud: Union[None, str, Sequence[str]] = None,
              ttl: Optional[int] = None, now: int = 0) -> str:
    """Appends an attenuation block signed by holder_key (the current holder's key pair)
    naming new_holder, optionally narrowing caps, audiences and lifetime.  Returns the
    longer token."""
    keep: List[Any] = []
    hk, nk = _key(holder_key), _key(new_holder)
    o = new_options("hyb_token_attenuate_opts", lib.hyb_token_attenuate_opts_init_sized)
    o.holder = nk._ptr
    o.caps, o.n_caps = _caps(caps, keep)
    o.aud, o.n_aud = _strs(aud, keep)
    o.now, o.ttl_s = now, ttl or 0
    ret = ffi.new("char **")
    err = ffi.new("hyb_error *")
    check(lib.hyb_token_attenuate(token.strip().encode(), hk._ptr, o, ret, err), err)
    return _take_str(ret[0])


def inspect(token: str) -> Dict[str, Any]:
    """Every block's header and claims, UNVERIFIED: ``{"verified": False, "blocks": [...]}``."""
    ret = ffi.new("char **")
    err = ffi.new("hyb_error *")
    check(lib.hyb_token_inspect(token.strip().encode(), ret, err), err)
    return json.loads(_take_str(ret[0]))


class Verified:
    """A verified token: ``sub``, ``iss``, ``jti``, ``exp``, ``holder`` (the last holder's
    kid), ``caps`` (``[(resource, [actions...]), ...]`` after intersecting the blocks),
    ``n_blocks``; :meth:`allowed` checks a right."""

    def __init__(self, ptr) -> None:
        self._ptr = ffi.gc(ptr, lib.hyb_token_result_unref)
        ret = ffi.new("char **")
        check(lib.hyb_token_result_to_json(self._ptr, ret))
        d = json.loads(_take_str(ret[0]))
        self.sub: str = d.get("sub")
        self.exp: int = d.get("exp")
        self.holder: str = d.get("holder")
        self.caps: List[Tuple[str, List[str]]] = [(c["resource"], list(c["actions"]))
                                                  for c in d.get("cap", [])]
        self.iss = ffi.string(lib.hyb_token_result_get_iss(self._ptr)).decode()
        self.jti = ffi.string(lib.hyb_token_result_get_jti(self._ptr)).decode()
        self.n_blocks = int(lib.hyb_token_result_get_n_blocks(self._ptr))

    def allowed(self, resource: str, actions: Union[str, Iterable[str]]) -> bool:
        """True when every action (``"read,sub"`` or a list) is granted on resource (a fURI
        or pattern; bus names as ``bus://host/app/runner/name``)."""
        text = actions if isinstance(actions, str) else ",".join(actions)
        a = ffi.new("unsigned *")
        if lib.hyb_token_actions_parse(text.encode(), a) < 0:
            raise ValueError(f"unknown action in {text!r}")
        r = lib.hyb_token_allowed_str(self._ptr, resource.encode(), a[0])
        return check(r) > 0

    def __repr__(self) -> str:
        return f"<hybrid.token.Verified sub={self.sub!r} iss={self.iss!r} caps={self.caps!r}>"


def verify(token: str, trust: Mapping[str, Any], audience: str, now: int = 0,
           max_lifetime: Optional[int] = None) -> Verified:
    """Verifies token completely against trust (issuer name -> its public :class:`Key` or
    key file) for this audience.  Raises :class:`hybrid.Unauthorized` (the reason in its
    message) when it does not hold."""
    t = ffi.new("hyb_token_trust **")
    check(lib.hyb_token_trust_new(t))
    tr = ffi.gc(t[0], lib.hyb_token_trust_unref)
    keys = []
    for name, k in trust.items():
        kk = _key(k)
        keys.append(kk)
        check(lib.hyb_token_trust_add(tr, name.encode(), kk._ptr))
    o = new_options("hyb_token_verify_opts", lib.hyb_token_verify_opts_init_sized)
    aud = ffi.new("char[]", audience.encode())
    o.audience = aud
    o.now = now
    if max_lifetime:
        o.max_lifetime_s = max_lifetime
    ret = ffi.new("hyb_token_result **")
    err = ffi.new("hyb_error *")
    check(lib.hyb_token_verify(token.strip().encode(), tr, o, ret, err), err)
    return Verified(ret[0])
