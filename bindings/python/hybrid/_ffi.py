# SPDX-License-Identifier: MIT
"""cffi (ABI mode) declarations of the part of libhybrid's public C API the binding uses,
and the loading of ``libhybrid.so.0``.

The library is found, in this order, through ``$HYBRID_LIBRARY`` (a path to the shared
object), the dynamic loader's search path (``libhybrid.so.0``), then the directory
``pkg-config --variable=libdir hybrid`` names.  Nothing is compiled at install time.
"""
from __future__ import annotations

import os
import subprocess

from cffi import FFI

ffi = FFI()
# The body getters return `const void *` in C; declared `const char *` here (the same ABI) so
# ffi.unpack reads them without a cast.
ffi.cdef(
    r"""
typedef struct hyb_error {
        int code; int line; int column; long offset; char message[256];
} hyb_error;
typedef struct hyb_slot hyb_slot;
typedef void (*hyb_destroy_fn)(void *userdata);
const char *hyb_err_name(int code);
int hyb_err_to_status(int code);
int hyb_err_from_status(int status);
const char *hyb_strerror(int code);
void hyb_error_clear(hyb_error *e);
void hyb_free(void *p);
hyb_slot *hyb_slot_unref(hyb_slot *slot);
int hyb_slot_set_destroy_callback(hyb_slot *slot, hyb_destroy_fn destroy);
uint64_t hyb_now_usec(void);
const char *hyb_version(void);

typedef struct hyb_furi hyb_furi;
int hyb_furi_parse(const char *text, size_t len, const void *limits, hyb_furi **ret,
                   hyb_error *reterr);
hyb_furi *hyb_furi_unref(hyb_furi *f);
const char *hyb_furi_get_str(const hyb_furi *f);

typedef struct hyb_obj hyb_obj;
hyb_obj *hyb_obj_unref(hyb_obj *o);
int hyb_obj_get_kind(const hyb_obj *o);
int hyb_obj_to_json(const hyb_obj *o, char **ret, hyb_error *reterr);
int hyb_obj_from_json(const char *text, size_t len, hyb_obj **ret, hyb_error *reterr);
int hyb_obj_format(const hyb_obj *o, unsigned flags, char **ret);
size_t hyb_obj_get_len(const hyb_obj *o);
const hyb_obj *hyb_obj_get_at(const hyb_obj *o, size_t i);

typedef struct hyb_key hyb_key;
typedef struct hyb_bus hyb_bus;
typedef struct hyb_bus_reply hyb_bus_reply;
typedef struct hyb_bus_request hyb_bus_request;
typedef struct hyb_bus_event hyb_bus_event;
typedef struct hyb_bus_connect_options {
        size_t size; const char *path; const char *app; const char *runner;
        const char *token; const hyb_key *key;
        const char *ca_file; const char *pin;
} hyb_bus_connect_options;
void hyb_bus_connect_options_init_sized(hyb_bus_connect_options *opts, size_t size);
int hyb_bus_connect_with(const hyb_bus_connect_options *opts, hyb_bus **ret, hyb_error *reterr);
hyb_bus *hyb_bus_unref(hyb_bus *bus);
void hyb_bus_close(hyb_bus *bus);
bool hyb_bus_is_open(const hyb_bus *bus);
int hyb_bus_get_close_reason(const hyb_bus *bus, const char **ret_message);
const char *hyb_bus_get_endpoint_name(const hyb_bus *bus);
int hyb_bus_get_fd(const hyb_bus *bus);
int hyb_bus_get_events(const hyb_bus *bus);
int hyb_bus_get_timeout(const hyb_bus *bus, uint64_t *ret_usec);
int hyb_bus_process(hyb_bus *bus);
int hyb_bus_flush(hyb_bus *bus);

int hyb_bus_reply_get_status(const hyb_bus_reply *reply);
int hyb_bus_reply_get_error(const hyb_bus_reply *reply);
const char *hyb_bus_reply_get_message(const hyb_bus_reply *reply);
const char *hyb_bus_reply_get_body(const hyb_bus_reply *reply, size_t *ret_len);
bool hyb_bus_reply_is_binary(const hyb_bus_reply *reply);
hyb_bus_reply *hyb_bus_reply_unref(hyb_bus_reply *reply);
int hyb_bus_call(hyb_bus *bus, const char *endpoint, const char *method, const void *body,
                 size_t len, unsigned flags, uint32_t timeout_ms, hyb_bus_reply **ret,
                 hyb_error *reterr);
int hyb_bus_call_into(hyb_bus *bus, const char *endpoint, const char *method,
                      const void *body, size_t len, unsigned flags, uint32_t timeout_ms,
                      void *buf, size_t size, size_t *ret_len, unsigned *ret_flags,
                      hyb_bus_reply **ret_reply, hyb_error *reterr);
typedef struct hyb_bus_call_args {
        size_t size; hyb_bus *bus; const char *endpoint; const char *method; unsigned flags;
        uint32_t timeout_ms; void *buf;
        size_t buf_size; size_t ret_len; hyb_bus_reply *ret_reply;
        hyb_error err;
        int status;
} hyb_bus_call_args;
int hyb_bus_call_prepared(hyb_bus_call_args *a, const void *body, size_t len);
typedef void (*hyb_bus_reply_fn)(hyb_bus *bus, const hyb_bus_reply *reply, void *userdata);
int hyb_bus_call_async(hyb_bus *bus, const char *endpoint, const char *method,
                       const void *body, size_t len, unsigned flags, uint32_t timeout_ms,
                       hyb_bus_reply_fn cb, void *userdata, hyb_slot **ret_slot);

typedef int (*hyb_bus_method_fn)(hyb_bus_request *req, void *userdata);
hyb_bus_request *hyb_bus_request_ref(const hyb_bus_request *req);
hyb_bus_request *hyb_bus_request_unref(hyb_bus_request *req);
const char *hyb_bus_request_get_caller(const hyb_bus_request *req);
int hyb_bus_request_get_caller_principal(const hyb_bus_request *req,
                                         const char **ret_transport,
                                         const char **ret_principal);
const char *hyb_bus_request_get_method(const hyb_bus_request *req);
const char *hyb_bus_request_get_body(const hyb_bus_request *req, size_t *ret_len);
bool hyb_bus_request_is_binary(const hyb_bus_request *req);
uint32_t hyb_bus_request_get_time_left_ms(const hyb_bus_request *req);
typedef void (*hyb_bus_cancel_fn)(hyb_bus_request *req, void *userdata);
void hyb_bus_request_set_cancel_handler(hyb_bus_request *req, hyb_bus_cancel_fn cb,
                                        void *userdata);
bool hyb_bus_request_is_cancelled(const hyb_bus_request *req);
int hyb_bus_request_reply(hyb_bus_request *req, int status, const void *body, size_t len,
                          unsigned flags);
int hyb_bus_request_reply_error(hyb_bus_request *req, int status, const char *message);

const char *hyb_bus_event_get_source(const hyb_bus_event *ev);
const char *hyb_bus_event_get_bubble(const hyb_bus_event *ev);
const char *hyb_bus_event_get_body(const hyb_bus_event *ev, size_t *ret_len);
bool hyb_bus_event_is_binary(const hyb_bus_event *ev);
typedef void (*hyb_bus_event_fn)(hyb_bus *bus, const hyb_bus_event *ev, void *userdata);
int hyb_bus_register_event(hyb_bus *bus, const char *bubble, const char *for_host,
                           const char *for_app, hyb_slot **ret_slot, hyb_error *reterr);
int hyb_bus_register_event_flags(hyb_bus *bus, const char *bubble, const char *for_host,
                                 const char *for_app, unsigned flags, hyb_slot **ret_slot,
                                 hyb_error *reterr);
int hyb_bus_fire(hyb_bus *bus, const char *bubble, const void *body, size_t len,
                 unsigned flags, uint32_t *ret_delivered, uint32_t *ret_failed);
int hyb_bus_subscribe(hyb_bus *bus, const char *endpoint_glob, const char *bubble_glob,
                      hyb_bus_event_fn cb, void *userdata, hyb_slot **ret_slot,
                      hyb_error *reterr);

typedef struct hyb_arg_policy { const char *key; int type; int required; } hyb_arg_policy;
int hyb_endpoint_register_method(hyb_bus *bus, const char *name, const hyb_arg_policy *args,
                                 size_t n_args, const char *for_host, const char *for_app,
                                 unsigned flags, hyb_bus_method_fn handler, void *userdata,
                                 hyb_slot **ret_slot, hyb_error *reterr);

typedef struct hyb_backend hyb_backend;
typedef struct hyb_scope hyb_scope;
typedef struct hyb_store_options hyb_store_options;
typedef void (*hyb_store_msg_fn)(const hyb_furi *target, const hyb_obj *payload, bool retain,
                                 void *userdata);
int hyb_bus_backend_open_host_with(const char *db, const hyb_bus_connect_options *conn,
                                   const hyb_store_options *opts, hyb_backend **ret,
                                   int *ret_source, char **ret_where, hyb_error *reterr);
hyb_backend *hyb_backend_unref(hyb_backend *b);
int hyb_backend_read(hyb_backend *b, const hyb_furi *target, unsigned flags, hyb_obj **ret,
                     hyb_error *reterr);
int hyb_backend_get_fd(hyb_backend *b);
int hyb_backend_get_events(hyb_backend *b);
int hyb_backend_get_timeout(hyb_backend *b, uint64_t *ret_usec);
int hyb_backend_process(hyb_backend *b);
int hyb_scope_new(hyb_backend *host, hyb_backend *program, const char *name, hyb_scope **ret);
int hyb_scope_set_backend(hyb_scope *sc, int scope, hyb_backend *b);
hyb_bus *hyb_bus_backend_get_bus(const hyb_backend *b);
int hyb_cluster_backend_new(const char *url, hyb_backend **ret, hyb_error *reterr);
hyb_scope *hyb_scope_unref(hyb_scope *sc);
int hyb_scope_route(hyb_scope *sc, const hyb_furi *furi, hyb_backend **ret_backend,
                    hyb_furi **ret_target, hyb_error *reterr);
int hyb_scope_write(hyb_scope *sc, const hyb_furi *target, const hyb_obj *value,
                    unsigned flags, hyb_error *reterr);
int hyb_scope_delete(hyb_scope *sc, const hyb_furi *target, unsigned flags, hyb_error *reterr);
int hyb_scope_subscribe(hyb_scope *sc, const hyb_furi *pattern, unsigned flags,
                        hyb_store_msg_fn fn, void *userdata, hyb_slot **ret_slot,
                        hyb_error *reterr);
int hyb_scope_process(hyb_scope *sc);

typedef struct hyb_mmadt hyb_mmadt;
int hyb_mmadt_new(hyb_scope *scope, const char *program, const void *opts, hyb_mmadt **ret);
hyb_mmadt *hyb_mmadt_unref(hyb_mmadt *vm);
int hyb_mmadt_set_budget(hyb_mmadt *vm, uint64_t instructions);
int hyb_mmadt_eval(hyb_mmadt *vm, const char *text, size_t len, const hyb_obj *input,
                   hyb_obj **ret, hyb_error *reterr);

int hyb_key_generate(hyb_key **ret);
int hyb_key_load_memory(const char *data, size_t len, hyb_key **ret, hyb_error *reterr);
int hyb_key_load_file(const char *path, hyb_key **ret, hyb_error *reterr);
hyb_key *hyb_key_unref(hyb_key *key);
bool hyb_key_has_private(const hyb_key *key);
const char *hyb_key_get_kid(const hyb_key *key);
bool hyb_key_equal(const hyb_key *a, const hyb_key *b);
int hyb_key_to_pem(const hyb_key *key, int flags, char **ret);
int hyb_key_to_jwk(const hyb_key *key, int flags, char **ret);
int hyb_key_save_private(const hyb_key *key, const char *path, hyb_error *reterr);
int hyb_key_save_public(const hyb_key *key, const char *path, hyb_error *reterr);
int hyb_token_actions_parse(const char *text, unsigned *ret_actions);
typedef struct hyb_token_cap { const char *resource; unsigned actions; } hyb_token_cap;
typedef struct hyb_token_trust hyb_token_trust;
int hyb_token_trust_new(hyb_token_trust **ret);
hyb_token_trust *hyb_token_trust_unref(hyb_token_trust *trust);
int hyb_token_trust_add(hyb_token_trust *trust, const char *issuer, const hyb_key *key);
typedef struct hyb_token_issue_opts {
        size_t size; const char *iss; const char *sub; const char *const *aud; size_t n_aud;
        const hyb_key *holder; const hyb_token_cap *caps; size_t n_caps; int64_t now;
        uint64_t ttl_s; unsigned dlg; uint64_t epo;
} hyb_token_issue_opts;
void hyb_token_issue_opts_init_sized(hyb_token_issue_opts *opts, size_t size);
int hyb_token_issue(const hyb_key *issuer, const hyb_token_issue_opts *opts,
                    char **ret_token, hyb_error *reterr);
typedef struct hyb_token_attenuate_opts {
        size_t size; const hyb_key *holder; const hyb_token_cap *caps; size_t n_caps;
        const char *const *aud; size_t n_aud; int64_t now; uint64_t ttl_s;
} hyb_token_attenuate_opts;
void hyb_token_attenuate_opts_init_sized(hyb_token_attenuate_opts *opts, size_t size);
int hyb_token_attenuate(const char *token, const hyb_key *holder_key,
                        const hyb_token_attenuate_opts *opts, char **ret_token,
                        hyb_error *reterr);
int hyb_token_inspect(const char *token, char **ret_json, hyb_error *reterr);
typedef struct hyb_token_result hyb_token_result;
typedef struct hyb_token_verify_opts {
        size_t size; const char *audience; int64_t now; uint32_t leeway_s;
        uint64_t max_lifetime_s; void *revoked; void *userdata;
} hyb_token_verify_opts;
void hyb_token_verify_opts_init_sized(hyb_token_verify_opts *opts, size_t size);
int hyb_token_verify(const char *token, const hyb_token_trust *trust,
                     const hyb_token_verify_opts *opts, hyb_token_result **ret,
                     hyb_error *reterr);
hyb_token_result *hyb_token_result_unref(hyb_token_result *result);
int hyb_token_result_to_json(const hyb_token_result *result, char **ret_json);
const char *hyb_token_result_get_iss(const hyb_token_result *result);
const char *hyb_token_result_get_jti(const hyb_token_result *result);
unsigned hyb_token_result_get_n_blocks(const hyb_token_result *result);
int hyb_token_allowed_str(const hyb_token_result *result, const char *resource,
                          unsigned actions);
"""
)


def _pkgconfig_libdir() -> str | None:
    try:
        out = subprocess.run(
            ["pkg-config", "--variable=libdir", "hybrid"],
            capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    d = out.stdout.strip()
    return d if out.returncode == 0 and d else None


def _load():
    tried = []
    env = os.environ.get("HYBRID_LIBRARY")
    if env:
        try:
            return ffi.dlopen(env)
        except OSError as e:
            tried.append(f"$HYBRID_LIBRARY={env} ({e})")
    else:
        tried.append("$HYBRID_LIBRARY (not set)")
    try:
        return ffi.dlopen("libhybrid.so.0")
    except OSError as e:
        tried.append(f"the loader path, libhybrid.so.0 ({e})")
    d = _pkgconfig_libdir()
    if d:
        p = os.path.join(d, "libhybrid.so.0")
        try:
            return ffi.dlopen(p)
        except OSError as e:
            tried.append(f"pkg-config --variable=libdir hybrid: {p} ({e})")
    else:
        tried.append("pkg-config --variable=libdir hybrid (no answer)")
    raise ImportError("hybrid: cannot load libhybrid.so.0; tried " + "; ".join(tried))


lib = _load()

NULL = ffi.NULL
SIZE_MAX = ffi.cast("size_t", -1)


def new_options(ctype: str, init_sized):
    """A new size-stamped options struct ``ctype`` (e.g. "hyb_token_issue_opts"), set up by
    its ``hyb_*_init_sized`` with the size declared above: the library writes that many
    bytes, no more, and reads members past them as absent, whatever its own version."""
    o = ffi.new(ctype + " *")
    init_sized(o, ffi.sizeof(ctype))
    return o
