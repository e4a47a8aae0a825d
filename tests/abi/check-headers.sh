#!/bin/sh
# Binding generators (cffi, Node-API) see enums but lose macros: the public
# headers define no flag or number as a macro.  Allowed macros: include guards,
# HYB_EXPORT, the version numbers (for #if), the error X-macro and its base,
# the builtin endpoint's name, the method-table initialisers and the hyb_*_init(o)
# macros of the size-stamped structs (they pass sizeof *(o) to hyb_*_init_sized).
set -eu
hdrdir=$1
bad=$(grep -Hn '^[[:space:]]*#[[:space:]]*define[[:space:]]' "$hdrdir"/*.h |
      grep -Ev '#[[:space:]]*define[[:space:]]+(HYBRID_[A-Z_]+_H|HYB_EXPORT|HYB_VERSION_(MAJOR|MINOR|PATCH)|HYB_E_BASE|HYB_ERRORS|HYB_X_ENUM|HYB_BUS_BUILTIN_ENDPOINT|HYB_METHOD(_NOARGS|_ACL)?)([[:space:](]|$)|#[[:space:]]*define[[:space:]]+hyb_[a-z0-9_]+_init\(' || true)
if [ -n "$bad" ]; then
        echo "FAIL: macros where an enum belongs (bindings cannot see them):"
        echo "$bad"
        exit 1
fi
echo "ok: no flag or number macros in the public headers"
