/* SPDX-License-Identifier: MIT */
/*
 * hybrid.c - the addon's entry point (Node-API level 8), errors, the value mapping
 * and mm-ADT.
 *
 * Values follow doc/obj.md's JSON mapping, walked in C on both sides so that no
 * body is ever parsed by JSON.parse (which loses int64): an int is a Number when
 * |v| <= 2^53-1, else a BigInt; a Number is an int when it is a safe integer and
 * not -0, else a real; Real(x) forces a real; a uri is a Uri; a typed value is a
 * Typed.
 */
#include "hybrid-node.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAFE_INT 9007199254740991.0 /* 2^53 - 1 */

static void env_free(napi_env env, void *data, void *hint)
{
        hn_env *e = data;
        napi_ref *refs[] = {&e->hybrid_error, &e->uri,      &e->typed,        &e->real,
                            &e->on_request,   &e->on_event, &e->on_store_msg, &e->on_close,
                            &e->object_proto, &e->map_cls,  &e->on_cancel,    &e->json_parse,
                            &e->on_reply,     &e->on_shape,   &e->call_buffer_ref};
        for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++)
                if (*refs[i])
                        napi_delete_reference(env, *refs[i]);
        for (unsigned i = 0; i < e->n_shapes; i++)
                free(e->shapes[i].keys);
        free(e);
}

hn_env *hn_get_env(napi_env env)
{
        void *data = NULL;
        napi_get_instance_data(env, &data);
        return data;
}

napi_value hn_undefined(napi_env env)
{
        napi_value u;
        napi_get_undefined(env, &u);
        return u;
}

bool hn_get_args(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv,
                 size_t min, const char *usage)
{
        if (napi_get_cb_info(env, info, argc, argv, NULL, NULL) != napi_ok) {
                hn_throw_last(env);
                return false;
        }
        if (*argc < min) {
                napi_throw_type_error(env, NULL, usage);
                return false;
        }
        return true;
}

void hn_throw_last(napi_env env)
{
        bool pending = false;
        const napi_extended_error_info *info = NULL;

        napi_is_exception_pending(env, &pending);
        if (pending)
                return;
        napi_get_last_error_info(env, &info);
        napi_throw_error(env, NULL,
                         info && info->error_message ? info->error_message
                                                     : "Node-API call failed");
}

napi_value hn_error_new(napi_env env, int code, int status, const char *message)
{
        hn_env *e = hn_get_env(env);
        napi_value cls, argv[3], err;

        if (status <= 0)
                status = hyb_err_to_status(code);
        if (!message || !*message)
                message = hyb_strerror(code);
        napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &argv[0]);
        napi_create_int32(env, status, &argv[1]);
        napi_create_string_utf8(env, hyb_err_name(code), NAPI_AUTO_LENGTH, &argv[2]);
        if (!e || !e->hybrid_error ||
            napi_get_reference_value(env, e->hybrid_error, &cls) != napi_ok ||
            napi_new_instance(env, cls, 3, argv, &err) != napi_ok) {
                napi_create_error(env, argv[2], argv[0], &err);
        }
        return err;
}

bool hn_exception_pending(napi_env env)
{
        bool pending = false;

        napi_is_exception_pending(env, &pending);
        return pending;
}

void hn_throw_code(napi_env env, int code, const hyb_error *err)
{
        napi_throw(env, hn_error_new(env, code, 0, err && err->message[0] ? err->message : NULL));
}

static void throw_nul(napi_env env)
{
        napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE",
                              "a name or text with a NUL character (the library reads it as a C "
                              "string, which ends there)");
}

char *hn_get_string(napi_env env, napi_value v, bool optional)
{
        napi_valuetype t;
        size_t len = 0;
        char *s;

        napi_typeof(env, v, &t);
        if (optional && (t == napi_undefined || t == napi_null))
                return NULL;
        if (t != napi_string) {
                napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a string");
                return NULL;
        }
        napi_get_value_string_utf8(env, v, NULL, 0, &len);
        s = malloc(len + 1);
        if (!s) {
                napi_throw_error(env, "ENOMEM", "out of memory");
                return NULL;
        }
        napi_get_value_string_utf8(env, v, s, len + 1, &len);
        if (strlen(s) != len) {
                /* a C string ends at the first NUL: "ec\0ho" would name "ec" */
                free(s);
                throw_nul(env);
                return NULL;
        }
        return s;
}

char *hn_get_string_buf(napi_env env, napi_value v, char *buf, size_t n)
{
        size_t len = 0;

        /* napi_string_expected for anything else: no separate napi_typeof per argument */
        if (napi_get_value_string_utf8(env, v, buf, n, &len) != napi_ok) {
                napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a string");
                return NULL;
        }
        /* napi writes whole characters only: a cut text may stop up to 3 bytes before the
         * end of buf (the next character 4 bytes long), so only one that left 4 or more
         * bytes free is known whole */
        if (len + 4 < n) {
                if (strlen(buf) == len)
                        return buf;
                throw_nul(env);
                return NULL;
        }
        return hn_get_string(env, v, false); /* it may have been cut */
}

void hn_dispatch(napi_env env, napi_ref fn, size_t argc, napi_value *argv)
{
        napi_value f, recv, result;
        bool pending = false;

        if (!fn || napi_get_reference_value(env, fn, &f) != napi_ok || !f)
                return;
        napi_get_undefined(env, &recv);
        if (napi_call_function(env, recv, f, argc, argv, &result) != napi_ok) {
                napi_is_exception_pending(env, &pending);
                if (pending) {
                        napi_value ex;
                        napi_get_and_clear_last_exception(env, &ex);
                        napi_fatal_exception(env, ex);
                }
        }
}

/* ------------------------------------------------------------------ slots */

static void slot_finalize(napi_env env, void *data, void *hint)
{
        hyb_slot **box = data;
        hyb_slot_unref(*box);
        free(box);
}

napi_value hn_slot_wrap(napi_env env, hyb_slot *slot)
{
        hyb_slot **box = malloc(sizeof *box);
        napi_value ext;

        if (!box) {
                hyb_slot_unref(slot);
                napi_throw_error(env, "ENOMEM", "out of memory");
                return NULL;
        }
        *box = slot;
        if (napi_create_external(env, box, slot_finalize, NULL, &ext) != napi_ok) {
                hyb_slot_unref(slot);
                free(box);
                hn_throw_last(env);
                return NULL;
        }
        return ext;
}

/* slotUnref(slot): unregisters now (idempotent). */
static napi_value js_slot_unref(napi_env env, napi_callback_info info)
{
        size_t argc = 1;
        napi_value argv[1];
        hyb_slot **box = NULL;

        HN_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
        if (argc < 1 || napi_get_value_external(env, argv[0], (void **)&box) != napi_ok || !box) {
                napi_throw_type_error(env, NULL, "expected a slot");
                return NULL;
        }
        *box = hyb_slot_unref(*box);
        return hn_undefined(env);
}

/* ------------------------------------------------------------------ values */

static bool instance_of(napi_env env, napi_value v, napi_ref cls_ref)
{
        napi_value cls;
        bool r = false;

        if (!cls_ref || napi_get_reference_value(env, cls_ref, &cls) != napi_ok)
                return false;
        napi_instanceof(env, v, cls, &r);
        return r;
}

static int throw_code(napi_env env, int code, const hyb_error *err)
{
        hn_throw_code(env, code, err);
        return code;
}

static int to_obj_depth(napi_env env, napi_value v, hyb_obj **ret, unsigned depth,
                        napi_value key);

/*
 * JSON.stringify's toJSON rule: when object v has a toJSON method, *ret_v is what
 * v.toJSON(key) returns (key: the property name, '' at the top) and 1 is returned; 0
 * without one; < 0 when it threw (the exception stays pending).
 */
static int call_to_json(napi_env env, napi_value v, napi_value key, napi_value *ret_v)
{
        napi_value fn, arg = key;
        napi_valuetype t;

        if (napi_get_named_property(env, v, "toJSON", &fn) != napi_ok) {
                hn_throw_last(env);
                return -EINVAL;
        }
        napi_typeof(env, fn, &t);
        if (t != napi_function)
                return 0;
        if (!arg)
                napi_create_string_utf8(env, "", 0, &arg);
        if (napi_call_function(env, v, fn, 1, &arg, ret_v) != napi_ok) {
                hn_throw_last(env);
                return -EINVAL;
        }
        return 1;
}

static int key_to_obj(napi_env env, napi_value key, hyb_obj **ret)
{
        /* Plain object keys are uris, as JSON object keys are (doc/obj.md). */
        char *s = hn_get_string(env, key, false);
        hyb_error err;
        int r;

        if (!s)
                return -EINVAL;
        hyb_error_clear(&err);
        r = hyb_obj_new_uri_str(s, ret, &err);
        if (r < 0) {
                char msg[512];
                snprintf(msg, sizeof msg, "object key '%.200s' is not a uri: %s", s, err.message);
                napi_throw(env, hn_error_new(env, r, 0, msg));
        }
        free(s);
        return r;
}

static int pairs_to_rec(napi_env env, napi_value keys_arr, napi_value vals_arr, uint32_t n,
                        bool keys_are_names, hyb_obj **ret, unsigned depth)
{
        hyb_obj **ks = calloc(n ? n : 1, sizeof *ks), **vs = calloc(n ? n : 1, sizeof *vs);
        int r = 0;
        uint32_t i;

        if (!ks || !vs) {
                free(ks);
                free(vs);
                napi_throw_error(env, "ENOMEM", "out of memory");
                return -ENOMEM;
        }
        for (i = 0; i < n && r >= 0; i++) {
                napi_value k, val;
                if (napi_get_element(env, keys_arr, i, &k) != napi_ok ||
                    napi_get_element(env, vals_arr, i, &val) != napi_ok) {
                        hn_throw_last(env);
                        r = -EINVAL;
                        break;
                }
                r = keys_are_names ? key_to_obj(env, k, &ks[i])
                                   : to_obj_depth(env, k, &ks[i], depth + 1, NULL);
                if (r >= 0)
                        r = to_obj_depth(env, val, &vs[i], depth + 1, keys_are_names ? k : NULL);
        }
        if (r >= 0) {
                r = hyb_obj_new_rec(ks, vs, n, ret);
                if (r < 0)
                        throw_code(env, r, NULL);
        }
        for (i = 0; i < n; i++) {
                hyb_obj_unref(ks[i]);
                hyb_obj_unref(vs[i]);
        }
        free(ks);
        free(vs);
        return r;
}

static int number_to_obj(napi_env env, double d, bool force_real, hyb_obj **ret)
{
        int r;

        if (!isfinite(d)) {
                /* the mapping is JSON's: a store write, which takes the obj as it is, must
                 * refuse what a call (through JSON) refuses, or readers get a value they
                 * cannot map */
                hyb_error e = { .code = HYB_E_TYPE };
                snprintf(e.message, sizeof e.message, "%s has no JSON form, so no obj form",
                         isnan(d) ? "NaN" : d < 0 ? "-Infinity" : "Infinity");
                return throw_code(env, HYB_E_TYPE, &e);
        }
        if (!force_real && d == trunc(d) && fabs(d) <= SAFE_INT &&
            !(d == 0 && signbit(d)))
                r = hyb_obj_new_int((int64_t)d, ret);
        else
                r = hyb_obj_new_real(d, ret);
        if (r < 0)
                throw_code(env, r, NULL);
        return r;
}

static int to_obj_depth(napi_env env, napi_value v, hyb_obj **ret, unsigned depth,
                        napi_value key)
{
        hn_env *e = hn_get_env(env);
        napi_valuetype t;
        int r;

        *ret = NULL;
        if (depth > HYB_OBJ_MAX_DEPTH) {
                napi_throw_range_error(env, NULL, "value nested too deeply");
                return HYB_E_DEPTH;
        }
        if (napi_typeof(env, v, &t) != napi_ok) {
                hn_throw_last(env);
                return -EINVAL;
        }
        switch (t) {
        case napi_undefined:
        case napi_null:
                *ret = hyb_obj_noobj();
                return 0;
        case napi_boolean: {
                bool b;
                napi_get_value_bool(env, v, &b);
                *ret = hyb_obj_bool(b);
                return 0;
        }
        case napi_number: {
                double d;
                napi_get_value_double(env, v, &d);
                return number_to_obj(env, d, false, ret);
        }
        case napi_bigint: {
                int64_t i;
                bool lossless;
                napi_get_value_bigint_int64(env, v, &i, &lossless);
                if (!lossless) {
                        napi_throw_range_error(env, "ERR_OUT_OF_RANGE",
                                               "BigInt beyond the int64 range");
                        return HYB_E_OVERFLOW;
                }
                r = hyb_obj_new_int(i, ret);
                return r < 0 ? throw_code(env, r, NULL) : r;
        }
        case napi_string: {
                size_t len = 0;
                char *s;
                napi_get_value_string_utf8(env, v, NULL, 0, &len);
                s = malloc(len + 1);
                if (!s) {
                        napi_throw_error(env, "ENOMEM", "out of memory");
                        return -ENOMEM;
                }
                napi_get_value_string_utf8(env, v, s, len + 1, &len);
                r = hyb_obj_new_str(s, len, ret);
                free(s);
                return r < 0 ? throw_code(env, r, NULL) : r;
        }
        case napi_object: {
                bool is_array = false;
                napi_value field;
                napi_is_array(env, v, &is_array);
                if (is_array) {
                        uint32_t n, i;
                        hyb_obj **items;
                        napi_get_array_length(env, v, &n);
                        items = calloc(n ? n : 1, sizeof *items);
                        if (!items) {
                                napi_throw_error(env, "ENOMEM", "out of memory");
                                return -ENOMEM;
                        }
                        r = 0;
                        for (i = 0; i < n && r >= 0; i++) {
                                napi_value item, index;
                                napi_get_element(env, v, i, &item);
                                napi_typeof(env, item, &t);
                                if (t == napi_object) { /* its toJSON gets the index */
                                        char num[16];
                                        snprintf(num, sizeof num, "%u", i);
                                        napi_create_string_utf8(env, num, NAPI_AUTO_LENGTH,
                                                                &index);
                                } else {
                                        index = NULL;
                                }
                                r = to_obj_depth(env, item, &items[i], depth + 1, index);
                        }
                        if (r >= 0) {
                                r = hyb_obj_new_lst(items, n, ret);
                                if (r < 0)
                                        throw_code(env, r, NULL);
                        }
                        for (i = 0; i < n; i++)
                                hyb_obj_unref(items[i]);
                        free(items);
                        return r;
                }
                {
                        /* plain objects (the common case) skip the class checks */
                        napi_value proto, object_proto;
                        bool plain = false;
                        if (napi_get_prototype(env, v, &proto) == napi_ok &&
                            napi_get_reference_value(env, e->object_proto, &object_proto) ==
                                    napi_ok)
                                napi_strict_equals(env, proto, object_proto, &plain);
                        if (plain)
                                goto with_to_json;
                }
                if (instance_of(env, v, e->real)) {
                        double d;
                        napi_get_named_property(env, v, "value", &field);
                        if (napi_get_value_double(env, field, &d) != napi_ok) {
                                napi_throw_type_error(env, NULL, "Real holds no number");
                                return -EINVAL;
                        }
                        return number_to_obj(env, d, true, ret);
                }
                if (instance_of(env, v, e->uri)) {
                        hyb_error err;
                        char *s;
                        napi_get_named_property(env, v, "value", &field);
                        if (!(s = hn_get_string(env, field, false)))
                                return -EINVAL;
                        hyb_error_clear(&err);
                        r = hyb_obj_new_uri_str(s, ret, &err);
                        free(s);
                        return r < 0 ? throw_code(env, r, &err) : r;
                }
                if (instance_of(env, v, e->typed)) {
                        hyb_furi *type = NULL;
                        hyb_obj *inner = NULL;
                        hyb_error err;
                        char *s;
                        napi_get_named_property(env, v, "type", &field);
                        if (!(s = hn_get_string(env, field, false)))
                                return -EINVAL;
                        hyb_error_clear(&err);
                        r = hyb_furi_parse(s, (size_t)-1, NULL, &type, &err);
                        free(s);
                        if (r < 0)
                                return throw_code(env, r, &err);
                        napi_get_named_property(env, v, "value", &field);
                        r = to_obj_depth(env, field, &inner, depth + 1, NULL);
                        if (r >= 0) {
                                r = hyb_obj_with_type(inner, type, ret);
                                if (r < 0)
                                        throw_code(env, r, NULL);
                        }
                        hyb_obj_unref(inner);
                        hyb_furi_unref(type);
                        return r;
                }
                if (instance_of(env, v, e->map_cls)) {
                        /* A Map: keys are values of any kind; else an object: keys are uris. */
                        napi_value global;
                        napi_get_global(env, &global);
                        {
                                napi_value arr_cls, from, entries_keys, entries_vals, fn, size_v;
                                uint32_t n;
                                napi_get_named_property(env, global, "Array", &arr_cls);
                                napi_get_named_property(env, arr_cls, "from", &from);
                                napi_get_named_property(env, v, "keys", &fn);
                                napi_call_function(env, v, fn, 0, NULL, &entries_keys);
                                napi_call_function(env, arr_cls, from, 1, &entries_keys,
                                                   &entries_keys);
                                napi_get_named_property(env, v, "values", &fn);
                                napi_call_function(env, v, fn, 0, NULL, &entries_vals);
                                napi_call_function(env, arr_cls, from, 1, &entries_vals,
                                                   &entries_vals);
                                napi_get_named_property(env, v, "size", &size_v);
                                napi_get_value_uint32(env, size_v, &n);
                                return pairs_to_rec(env, entries_keys, entries_vals, n, false, ret,
                                                    depth);
                        }
                }
        with_to_json : {
                /* as JSON.stringify: a toJSON method gives the value (a Date its text) */
                napi_value json;
                r = call_to_json(env, v, key, &json);
                if (r < 0)
                        return r;
                if (r > 0)
                        return to_obj_depth(env, json, ret, depth + 1, key);
        }
        {
                /* the own enumerable string keys, as JSON.stringify takes them */
                napi_value keys, vals;
                uint32_t n, i;
                if (napi_get_all_property_names(env, v, napi_key_own_only,
                                                napi_key_enumerable | napi_key_skip_symbols,
                                                napi_key_numbers_to_strings, &keys) != napi_ok) {
                        hn_throw_last(env);
                        return -EINVAL;
                }
                napi_get_array_length(env, keys, &n);
                napi_create_array_with_length(env, n, &vals);
                for (i = 0; i < n; i++) {
                        napi_value k, val;
                        napi_get_element(env, keys, i, &k);
                        napi_get_property(env, v, k, &val);
                        napi_set_element(env, vals, i, val);
                }
                return pairs_to_rec(env, keys, vals, n, true, ret, depth);
        }
        }
        default:
                napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE",
                                      "a function or symbol has no obj form");
                return -EINVAL;
        }
}

int hn_to_obj(napi_env env, napi_value v, hyb_obj **ret)
{
        return to_obj_depth(env, v, ret, 0, NULL);
}

static napi_value new_instance(napi_env env, napi_ref cls_ref, size_t argc, napi_value *argv)
{
        napi_value cls, r;
        HN_CALL(env, napi_get_reference_value(env, cls_ref, &cls));
        HN_CALL(env, napi_new_instance(env, cls, argc, argv, &r));
        return r;
}

static napi_value from_obj_untyped(napi_env env, const hyb_obj *o);

static bool is_proto_key(const hyb_obj *k)
{
        const char *s = hyb_obj_get_kind(k) == HYB_OBJ_URI ? hyb_furi_get_str(hyb_obj_get_uri(k))
                                                           : hyb_obj_get_str(k, NULL);
        return s && strcmp(s, "__proto__") == 0;
}

napi_value hn_from_obj(napi_env env, const hyb_obj *o)
{
        const hyb_furi *type = hyb_obj_get_type_id(o);
        napi_value argv[2];
        hyb_obj *plain = NULL;
        int r;

        if (!type || hyb_obj_get_kind(o) == HYB_OBJ_CODE)
                return from_obj_untyped(env, o);
        r = hyb_obj_with_type(o, NULL, &plain);
        if (r < 0) {
                hn_throw_code(env, r, NULL);
                return NULL;
        }
        napi_create_string_utf8(env, hyb_furi_get_str(type), NAPI_AUTO_LENGTH, &argv[0]);
        argv[1] = from_obj_untyped(env, plain);
        hyb_obj_unref(plain);
        if (!argv[1])
                return NULL;
        return new_instance(env, hn_get_env(env)->typed, 2, argv);
}

static napi_value from_obj_untyped(napi_env env, const hyb_obj *o)
{
        napi_value v;

        switch (hyb_obj_get_kind(o)) {
        case HYB_OBJ_NOOBJ:
                napi_get_null(env, &v);
                return v;
        case HYB_OBJ_BOOL:
                napi_get_boolean(env, hyb_obj_get_bool(o), &v);
                return v;
        case HYB_OBJ_INT: {
                int64_t i = hyb_obj_get_int(o);
                if (i >= -(int64_t)SAFE_INT && i <= (int64_t)SAFE_INT)
                        napi_create_int64(env, i, &v);
                else
                        napi_create_bigint_int64(env, i, &v);
                return v;
        }
        case HYB_OBJ_REAL:
                napi_create_double(env, hyb_obj_get_real(o), &v);
                return v;
        case HYB_OBJ_STR: {
                size_t len;
                const char *s = hyb_obj_get_str(o, &len);
                HN_CALL(env, napi_create_string_utf8(env, s, len, &v));
                return v;
        }
        case HYB_OBJ_URI: {
                napi_value arg;
                napi_create_string_utf8(env, hyb_furi_get_str(hyb_obj_get_uri(o)), NAPI_AUTO_LENGTH,
                                        &arg);
                return new_instance(env, hn_get_env(env)->uri, 1, &arg);
        }
        case HYB_OBJ_LST:
        case HYB_OBJ_OBJS: {
                size_t n = hyb_obj_get_len(o);
                HN_CALL(env, napi_create_array_with_length(env, n, &v));
                for (size_t i = 0; i < n; i++) {
                        napi_value item = hn_from_obj(env, hyb_obj_get_at(o, i));
                        if (!item)
                                return NULL;
                        napi_set_element(env, v, (uint32_t)i, item);
                }
                return v;
        }
        case HYB_OBJ_REC: {
                size_t n = hyb_obj_get_len(o);
                bool plain = true;
                for (size_t i = 0; i < n && plain; i++) {
                        const hyb_obj *k = hyb_obj_get_rec_key(o, i);
                        hyb_obj_kind kk = hyb_obj_get_kind(k);
                        plain = (kk == HYB_OBJ_URI || kk == HYB_OBJ_STR) && !hyb_obj_get_type_id(k);
                }
                if (plain) {
                        HN_CALL(env, napi_create_object(env, &v));
                        for (size_t i = 0; i < n; i++) {
                                const hyb_obj *k = hyb_obj_get_rec_key(o, i);
                                napi_value key, val;
                                if (hyb_obj_get_kind(k) == HYB_OBJ_URI) {
                                        napi_create_string_utf8(
                                                env, hyb_furi_get_str(hyb_obj_get_uri(k)),
                                                NAPI_AUTO_LENGTH, &key);
                                } else {
                                        size_t len;
                                        const char *s = hyb_obj_get_str(k, &len);
                                        napi_create_string_utf8(env, s, len, &key);
                                }
                                if (!(val = hn_from_obj(env, hyb_obj_get_rec_value(o, i))))
                                        return NULL;
                                if (is_proto_key(k)) {
                                        /* an own property, as JSON.parse makes it: assigning
                                         * would set the object's prototype instead */
                                        napi_property_descriptor pd = {
                                                .name = key,
                                                .value = val,
                                                .attributes = napi_writable | napi_enumerable |
                                                              napi_configurable};
                                        HN_CALL(env, napi_define_properties(env, v, 1, &pd));
                                } else {
                                        HN_CALL(env, napi_set_property(env, v, key, val));
                                }
                        }
                        return v;
                }
                /* Keys that are not names: a Map of converted keys. */
                napi_value global, map_cls, set;
                napi_get_global(env, &global);
                napi_get_named_property(env, global, "Map", &map_cls);
                HN_CALL(env, napi_new_instance(env, map_cls, 0, NULL, &v));
                napi_get_named_property(env, v, "set", &set);
                for (size_t i = 0; i < n; i++) {
                        napi_value kv[2], ignored;
                        if (!(kv[0] = hn_from_obj(env, hyb_obj_get_rec_key(o, i))) ||
                            !(kv[1] = hn_from_obj(env, hyb_obj_get_rec_value(o, i))))
                                return NULL;
                        HN_CALL(env, napi_call_function(env, v, set, 2, kv, &ignored));
                }
                return v;
        }
        case HYB_OBJ_CODE:
        default: {
                char *text = NULL;
                int r = hyb_obj_format(o, HYB_FORMAT_EXACT, &text);
                if (r < 0) {
                        hn_throw_code(env, r, NULL);
                        return NULL;
                }
                napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &v);
                hyb_free(text);
                return v;
        }
        }
}

/*
 * Whether JSON.parse reads body as the library's mapping does (doc/node.md "Values"), so the
 * common reply skips the walk through a hyb_obj: ASCII text (no invalid UTF-8 to tell apart)
 * whose integers have at most 15 digits (safe, where JSON.parse would round) and are not -0
 * (the mapping's int 0), whose reals have an exponent of at most two digits (no overflow the
 * library refuses), whose strings hold no \u escape in D000-DFFF (lone surrogates become U+FFFD
 * in the mapping) and do not start with '@' (uri, typed and @rec forms), whose object keys are
 * names ([A-Za-z_][A-Za-z0-9_-]*: uris that print as written) without repeats (the library
 * refuses them; JSON.parse keeps the last), nested at most 32 deep, without control
 * characters (both refuse them; refused here, the text reaches the library's walk whole,
 * NULs too).  Text that is not JSON may pass: JSON.parse refuses it and the library's walk
 * gives the error.
 */
#define FAST_DEPTH 32
#define FAST_KEYS 16

static bool json_parse_agrees(const char *s, size_t len)
{
        char stack[FAST_DEPTH];
        struct {
                const char *k[FAST_KEYS];
                unsigned char n[FAST_KEYS];
                unsigned nk;
        } keys[FAST_DEPTH];
        int depth = -1;
        char last = 0; /* the last structural character: { [ , : */

        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c >= 0x80 || (c < 0x20 && c != '\t' && c != '\n' && c != '\r'))
                        return false;
                switch (c) {
                case '{':
                case '[':
                        if (++depth >= FAST_DEPTH)
                                return false;
                        stack[depth] = (char)c;
                        keys[depth].nk = 0;
                        last = (char)c;
                        break;
                case '}':
                case ']':
                        if (depth < 0)
                                return false;
                        depth--;
                        last = 0;
                        break;
                case ',':
                case ':':
                        last = (char)c;
                        break;
                case '"': {
                        bool is_key =
                                depth >= 0 && stack[depth] == '{' && (last == '{' || last == ',');
                        size_t j = i + 1;
                        if (j < len && s[j] == '@')
                                return false;
                        for (; j < len && s[j] != '"'; j++) {
                                unsigned char d = (unsigned char)s[j];
                                if (d >= 0x80 || d < 0x20)
                                        return false;
                                if (is_key) {
                                        bool name =
                                                (d >= 'A' && d <= 'Z') || (d >= 'a' && d <= 'z') ||
                                                d == '_' ||
                                                (j > i + 1 && ((d >= '0' && d <= '9') || d == '-'));
                                        if (!name)
                                                return false;
                                } else if (d == '\\') {
                                        if (++j >= len)
                                                return false;
                                        if (s[j] == 'u' && j + 1 < len &&
                                            (s[j + 1] == 'd' || s[j + 1] == 'D'))
                                                return false;
                                }
                        }
                        if (j >= len)
                                return false;
                        if (is_key) {
                                size_t kl = j - i - 1;
                                if (kl == 0 || kl > 255 || keys[depth].nk >= FAST_KEYS)
                                        return false;
                                for (unsigned k = 0; k < keys[depth].nk; k++)
                                        if (keys[depth].n[k] == kl &&
                                            memcmp(keys[depth].k[k], s + i + 1, kl) == 0)
                                                return false;
                                keys[depth].k[keys[depth].nk] = s + i + 1;
                                keys[depth].n[keys[depth].nk++] = (unsigned char)kl;
                        }
                        i = j;
                        last = 0;
                        break;
                }
                case '-':
                case '0':
                case '1':
                case '2':
                case '3':
                case '4':
                case '5':
                case '6':
                case '7':
                case '8':
                case '9': {
                        size_t j = i, digits = 0, exp_digits = 0;
                        bool real = false, in_exp = false;
                        for (; j < len; j++) {
                                char d = s[j];
                                if (d >= '0' && d <= '9') {
                                        if (in_exp)
                                                exp_digits++;
                                        else
                                                digits++;
                                } else if (d == '.') {
                                        real = true;
                                } else if (d == 'e' || d == 'E') {
                                        real = in_exp = true;
                                } else if (d != '-' && d != '+') {
                                        break;
                                }
                        }
                        if (in_exp && exp_digits > 2)
                                return false;
                        if (!real &&
                            (digits > 15 || (s[i] == '-' && j - i == 2 && s[i + 1] == '0')))
                                return false;
                        i = j - 1;
                        last = 0;
                        break;
                }
                default:
                        break; /* white space, true, false, null (or not JSON: JSON.parse says) */
                }
        }
        return true;
}

/* ------------------------------------------------------------------ flat records */

static size_t skip_ws(const char *s, size_t i, size_t len)
{
        while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
                i++;
        return i;
}

static bool is_name_start(unsigned char c)
{
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_name_char(unsigned char c)
{
        return is_name_start(c) || (c >= '0' && c <= '9') || c == '-';
}

/* The shape of keys (joined with ','; hash its FNV-1a): its number, registered with onShape
 * when new; -1 when the table is full or onShape could not be called. */
static int shape_of(napi_env env, hn_env *e, const char *keys, uint32_t len, uint32_t hash)
{
        struct hn_shape *sh;
        napi_value argv[2], f, recv, res;
        unsigned i = e->last_shape;

        if (i < e->n_shapes && e->shapes[i].hash == hash && e->shapes[i].len == len &&
            memcmp(e->shapes[i].keys, keys, len) == 0)
                return (int)i;
        for (i = 0; i < e->n_shapes; i++) {
                sh = &e->shapes[i];
                if (sh->hash == hash && sh->len == len && memcmp(sh->keys, keys, len) == 0) {
                        e->last_shape = i;
                        return (int)i;
                }
        }
        if (e->n_shapes >= HN_SHAPES || !e->on_shape)
                return -1;
        sh = &e->shapes[e->n_shapes];
        if (!(sh->keys = malloc(len + 1)))
                return -1;
        memcpy(sh->keys, keys, len);
        sh->keys[len] = 0;
        if (napi_create_uint32(env, e->n_shapes, &argv[0]) != napi_ok ||
            napi_create_string_latin1(env, keys, len, &argv[1]) != napi_ok ||
            napi_get_reference_value(env, e->on_shape, &f) != napi_ok || !f ||
            napi_get_undefined(env, &recv) != napi_ok ||
            napi_call_function(env, recv, f, 2, argv, &res) != napi_ok) {
                napi_get_and_clear_last_exception(env, &res);
                free(sh->keys);
                sh->keys = NULL;
                return -1;
        }
        sh->hash = hash;
        sh->len = len;
        e->last_shape = e->n_shapes;
        return (int)e->n_shapes++;
}

int hn_record_values(napi_env env, const char *s, size_t len, napi_value *vals, uint32_t *shape)
{
        hn_env *e = hn_get_env(env);
        struct {
                size_t at, len;
                char kind; /* 's'tring, 'i'nt, 't'rue, 'f'alse, 'n'ull */
        } v[HN_RECORD_KEYS];
        char keys[HN_RECORD_KEYS * 65];
        size_t kat[HN_RECORD_KEYS], klen[HN_RECORD_KEYS];
        uint32_t kl = 0, hash = 2166136261u;
        unsigned n = 0;
        size_t i;
        int sh;

        if (!e)
                return -1;
        i = skip_ws(s, 0, len);
        if (i >= len || s[i] != '{')
                return -1;
        i = skip_ws(s, i + 1, len);
        if (i < len && s[i] == '}') {
                i++;
        } else {
                for (;;) {
                        size_t k0, j;
                        if (n >= HN_RECORD_KEYS || i >= len || s[i] != '"')
                                return -1;
                        /* the key: a name of at most 64 characters */
                        k0 = ++i;
                        if (i >= len || !is_name_start((unsigned char)s[i]))
                                return -1;
                        while (i < len && is_name_char((unsigned char)s[i]))
                                i++;
                        if (i >= len || s[i] != '"' || i - k0 > 64)
                                return -1;
                        if (i - k0 == 9 && memcmp(s + k0, "__proto__", 9) == 0)
                                return -1; /* a literal would set the prototype */
                        for (unsigned k = 0; k < n; k++)
                                if (klen[k] == i - k0 && memcmp(s + kat[k], s + k0, i - k0) == 0)
                                        return -1; /* a repeat: the library refuses it */
                        kat[n] = k0;
                        klen[n] = i - k0;
                        if (n)
                                keys[kl++] = ',';
                        memcpy(keys + kl, s + k0, i - k0);
                        kl += (uint32_t)(i - k0);
                        i = skip_ws(s, i + 1, len);
                        if (i >= len || s[i] != ':')
                                return -1;
                        i = skip_ws(s, i + 1, len);
                        if (i >= len)
                                return -1;
                        /* the value */
                        j = i;
                        if (s[i] == '"') {
                                j = ++i;
                                if (j < len && s[j] == '@')
                                        return -1; /* uri, typed, @rec forms */
                                while (j < len && s[j] != '"') {
                                        unsigned char c = (unsigned char)s[j];
                                        if (c < 0x20 || c >= 0x7f || c == '\\')
                                                return -1;
                                        j++;
                                }
                                if (j >= len)
                                        return -1;
                                v[n].kind = 's';
                                v[n].at = i;
                                v[n].len = j - i;
                                j++;
                        } else if (s[i] == '-' || (s[i] >= '0' && s[i] <= '9')) {
                                size_t d0 = s[i] == '-' ? i + 1 : i;
                                j = d0;
                                while (j < len && s[j] >= '0' && s[j] <= '9')
                                        j++;
                                /* JSON's integers: no leading zero; at most 15 digits; not -0 */
                                if (j == d0 || j - d0 > 15 || (s[d0] == '0' && j - d0 > 1) ||
                                    (d0 > i && j - d0 == 1 && s[d0] == '0'))
                                        return -1;
                                if (j < len && (s[j] == '.' || s[j] == 'e' || s[j] == 'E'))
                                        return -1; /* a real: JSON.parse's way */
                                v[n].kind = 'i';
                                v[n].at = i;
                                v[n].len = j - i;
                        } else if (len - i >= 4 && memcmp(s + i, "true", 4) == 0) {
                                v[n].kind = 't';
                                j = i + 4;
                        } else if (len - i >= 5 && memcmp(s + i, "false", 5) == 0) {
                                v[n].kind = 'f';
                                j = i + 5;
                        } else if (len - i >= 4 && memcmp(s + i, "null", 4) == 0) {
                                v[n].kind = 'n';
                                j = i + 4;
                        } else {
                                return -1;
                        }
                        n++;
                        i = skip_ws(s, j, len);
                        if (i < len && s[i] == ',') {
                                i = skip_ws(s, i + 1, len);
                                continue;
                        }
                        if (i < len && s[i] == '}') {
                                i++;
                                break;
                        }
                        return -1;
                }
        }
        if (skip_ws(s, i, len) != len)
                return -1;
        for (uint32_t k = 0; k < kl; k++)
                hash = (hash ^ (unsigned char)keys[k]) * 16777619u;
        if ((sh = shape_of(env, e, keys, kl, hash)) < 0)
                return -1;
        for (unsigned k = 0; k < n; k++) {
                napi_status st;
                switch (v[k].kind) {
                case 's':
                        st = napi_create_string_latin1(env, s + v[k].at, v[k].len, &vals[k]);
                        break;
                case 'i': {
                        int64_t x = 0;
                        bool neg = s[v[k].at] == '-';
                        for (size_t d = v[k].at + neg; d < v[k].at + v[k].len; d++)
                                x = x * 10 + (s[d] - '0');
                        st = napi_create_int64(env, neg ? -x : x, &vals[k]);
                        break;
                }
                case 'n':
                        st = napi_get_null(env, &vals[k]);
                        break;
                default:
                        st = napi_get_boolean(env, v[k].kind == 't', &vals[k]);
                        break;
                }
                if (st != napi_ok)
                        return -1;
        }
        *shape = (uint32_t)sh;
        return (int)n;
}

/* JSON text through a hyb_obj: the mapping's own reading (throws its error) */
static napi_value body_walk(napi_env env, const void *body, size_t len)
{
        napi_value v;
        hyb_obj *o = NULL;
        hyb_error err;
        int r;

        hyb_error_clear(&err);
        r = hyb_obj_from_json(body, len, &o, &err);
        if (r < 0) {
                hn_throw_code(env, r, &err);
                return NULL;
        }
        v = hn_from_obj(env, o);
        hyb_obj_unref(o);
        return v;
}

napi_value hn_from_body_or_text(napi_env env, const void *body, size_t len, bool binary,
                                bool *text)
{
        napi_value v;

        *text = false;
        if (binary) {
                void *data;
                HN_CALL(env, napi_create_buffer_copy(env, len, body, &data, &v));
                return v;
        }
        if (len == 0) {
                napi_get_null(env, &v);
                return v;
        }
        if (len <= INT32_MAX && json_parse_agrees(body, len) &&
            napi_create_string_latin1(env, body, len, &v) == napi_ok) {
                *text = true;
                return v;
        }
        return body_walk(env, body, len);
}

napi_value hn_from_body(napi_env env, const void *body, size_t len, bool binary)
{
        napi_value v, parse, undef, res, ex;
        bool text = false;
        hn_env *e = hn_get_env(env);

        v = hn_from_body_or_text(env, body, len, binary, &text);
        if (!v || !text)
                return v;
        if (e->json_parse && napi_get_reference_value(env, e->json_parse, &parse) == napi_ok &&
            napi_get_undefined(env, &undef) == napi_ok &&
            napi_call_function(env, undef, parse, 1, &v, &res) == napi_ok)
                return res;
        napi_get_and_clear_last_exception(env, &ex); /* not JSON: the library says why */
        return body_walk(env, body, len);
}

char *hn_to_json(napi_env env, napi_value v, size_t *ret_len)
{
        hyb_obj *o = NULL;
        char *text = NULL;
        hyb_error err;
        int r;

        if (hn_to_obj(env, v, &o) < 0)
                return NULL;
        hyb_error_clear(&err);
        r = hyb_obj_to_json(o, &text, &err);
        hyb_obj_unref(o);
        if (r < 0) {
                hn_throw_code(env, r, &err);
                return NULL;
        }
        *ret_len = strlen(text);
        return text;
}

/* toJSON(value) -> text; fromJSON(text) -> value: the mapping itself, for users and tests. */
static napi_value js_to_json(napi_env env, napi_callback_info info)
{
        size_t argc = 1, len;
        napi_value argv[1], s;
        char *text;

        HN_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
        if (argc < 1)
                argv[0] = hn_undefined(env);
        if (!(text = hn_to_json(env, argv[0], &len)))
                return NULL;
        napi_create_string_utf8(env, text, len, &s);
        hyb_free(text);
        return s;
}

static napi_value js_from_json(napi_env env, napi_callback_info info)
{
        size_t argc = 1;
        napi_value argv[1], v;
        char *text;

        if (!hn_get_args(env, info, &argc, argv, 1, "expected a string") ||
            !(text = hn_get_string(env, argv[0], false)))
                return NULL;
        v = hn_from_body(env, text, strlen(text), false);
        free(text);
        return v;
}

/* errorName(code or status) -> 'HYB_E_...' for a bus status (>= 100) or a library code. */
static napi_value js_status_code(napi_env env, napi_callback_info info)
{
        size_t argc = 1;
        napi_value argv[1], s;
        int32_t status = 500;

        HN_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
        if (argc >= 1)
                napi_get_value_int32(env, argv[0], &status);
        napi_create_string_utf8(env, hyb_err_name(hyb_err_from_status(status)), NAPI_AUTO_LENGTH,
                                &s);
        return s;
}

/* ------------------------------------------------------------------ mm-ADT */

/* mmadtRun(source) -> array of the results of every statement. */
static napi_value js_mmadt_run(napi_env env, napi_callback_info info)
{
        size_t argc = 1;
        napi_value argv[1], v = NULL;
        hyb_mmadt *vm = NULL;
        hyb_obj *out = NULL;
        hyb_error err;
        char *src;
        int r;

        if (!hn_get_args(env, info, &argc, argv, 1, "expected mm-ADT source text"))
                return NULL;
        if (!(src = hn_get_string(env, argv[0], false)))
                return NULL;
        hyb_error_clear(&err);
        r = hyb_mmadt_new(NULL, "node", NULL, &vm);
        if (r >= 0)
                r = hyb_mmadt_eval(vm, src, strlen(src), NULL, &out, &err);
        free(src);
        if (r < 0) {
                hn_throw_code(env, r, &err);
        } else if (hyb_obj_get_kind(out) == HYB_OBJ_OBJS || hyb_obj_get_kind(out) == HYB_OBJ_LST) {
                v = hn_from_obj(env, out);
        } else {
                napi_value one = hn_from_obj(env, out);
                if (one) {
                        napi_create_array_with_length(env, 1, &v);
                        napi_set_element(env, v, 0, one);
                }
        }
        hyb_obj_unref(out);
        hyb_mmadt_unref(vm);
        return v;
}

/* ------------------------------------------------------------------ setup */

/* setup({HybridError, Uri, Typed, Real, onRequest, onEvent, onStoreMessage, onClose, onCancel,
 *        onReply, onShape}) */
static napi_value js_setup(napi_env env, napi_callback_info info)
{
        size_t argc = 1;
        napi_value argv[1], f;
        hn_env *e = hn_get_env(env);
        static const char *const names[] = {"HybridError",    "Uri",       "Typed",
                                            "Real",           "onRequest", "onEvent",
                                            "onStoreMessage", "onClose",   "onCancel",
                                            "onReply",        "onShape"};
        napi_ref *refs[] = {&e->hybrid_error, &e->uri,        &e->typed,
                            &e->real,         &e->on_request, &e->on_event,
                            &e->on_store_msg, &e->on_close,   &e->on_cancel,
                            &e->on_reply,     &e->on_shape};

        HN_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
        /* a new onShape knows none of the shapes the last one was given */
        for (unsigned i = 0; i < e->n_shapes; i++)
                free(e->shapes[i].keys);
        e->n_shapes = e->last_shape = 0;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
                HN_CALL(env, napi_get_named_property(env, argv[0], names[i], &f));
                if (*refs[i])
                        napi_delete_reference(env, *refs[i]);
                HN_CALL(env, napi_create_reference(env, f, 1, refs[i]));
        }
        {
                napi_value global, cls, proto;
                napi_get_global(env, &global);
                HN_CALL(env, napi_get_named_property(env, global, "Object", &cls));
                HN_CALL(env, napi_get_named_property(env, cls, "prototype", &proto));
                if (e->object_proto)
                        napi_delete_reference(env, e->object_proto);
                HN_CALL(env, napi_create_reference(env, proto, 1, &e->object_proto));
                HN_CALL(env, napi_get_named_property(env, global, "Map", &cls));
                if (e->map_cls)
                        napi_delete_reference(env, e->map_cls);
                HN_CALL(env, napi_create_reference(env, cls, 1, &e->map_cls));
                HN_CALL(env, napi_get_named_property(env, global, "JSON", &cls));
                HN_CALL(env, napi_get_named_property(env, cls, "parse", &proto));
                if (e->json_parse)
                        napi_delete_reference(env, e->json_parse);
                HN_CALL(env, napi_create_reference(env, proto, 1, &e->json_parse));
        }
        return hn_undefined(env);
}

/* replyShapes() -> how many record shapes the environment keeps (at most HN_SHAPES): for the
 * tests of that bound */
static napi_value js_reply_shapes(napi_env env, napi_callback_info info)
{
        hn_env *e = hn_get_env(env);
        napi_value v;

        HN_CALL(env, napi_create_uint32(env, e ? e->n_shapes : 0, &v));
        return v;
}

static napi_value js_version(napi_env env, napi_callback_info info)
{
        napi_value s;
        napi_create_string_utf8(env, hyb_version(), NAPI_AUTO_LENGTH, &s);
        return s;
}

NAPI_MODULE_INIT()
{
        hn_env *e = calloc(1, sizeof *e);
        napi_value level;

        if (!e || napi_set_instance_data(env, e, env_free, NULL) != napi_ok) {
                free(e);
                napi_throw_error(env, NULL, "hybrid: cannot set up the addon");
                return NULL;
        }
        HN_EXPORT_FN(env, exports, "setup", js_setup);
        HN_EXPORT_FN(env, exports, "version", js_version);
        HN_EXPORT_FN(env, exports, "replyShapes", js_reply_shapes);
        HN_EXPORT_FN(env, exports, "toJSON", js_to_json);
        HN_EXPORT_FN(env, exports, "fromJSON", js_from_json);
        HN_EXPORT_FN(env, exports, "statusCode", js_status_code);
        HN_EXPORT_FN(env, exports, "slotUnref", js_slot_unref);
        HN_EXPORT_FN(env, exports, "mmadtRun", js_mmadt_run);
        napi_create_int32(env, NAPI_VERSION, &level);
        napi_set_named_property(env, exports, "napiVersion", level);
        hn_bus_init(env, exports);
        hn_store_init(env, exports);
        hn_token_init(env, exports);
        return exports;
}
