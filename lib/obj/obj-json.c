/* SPDX-License-Identifier: MIT */
/*
 * The JSON mapping of doc/obj.md, through jansson.
 *
 *   JSON                                          obj
 *   null  true  false                             noobj  true  false
 *   12                                            12 (int64; larger is HYB_E_OVERFLOW)
 *   1.5  1.0  1e300                               reals (printed shortest, always with . or e)
 *   "text"                                        'text'
 *   [1,2]                                         [1,2]
 *   {"a":1,"b/c":2}                               [a=>1,b/c=>2]      keys are uris
 *   {"@uri":"a/b"}                                a/b
 *   {"@rec":[[1,"x"],[[2],3]]}                    [1=>'x',[2]=>3]    any keys
 *   {"@objs":[1,2]}                               {1,2}              a stream
 *   {"@type":"/type/nat","@value":5,"@id":"a"}    nat[5]@a           type and/or value id
 *
 * Any other member starting with `@`, or `@` members mixed with plain ones, is
 * HYB_E_PARSE.  Depth counts lst/rec/stream levels, at most HYB_OBJ_MAX_DEPTH.
 */
#include <assert.h>
#include <math.h>

#include "common/util.h"
#include "obj-internal.h"

static inline void obj_json_decrefp(json_t **p)
{
        json_decref(*p);
}
#define _cleanup_json_ _cleanup_(obj_json_decrefp)

static inline void obj_unrefp(hyb_obj **p)
{
        hyb_obj_unref(*p);
}
#define _cleanup_obj_ _cleanup_(obj_unrefp)

static int furi_of(const char *what, const char *text, size_t len, hyb_furi **ret,
                   hyb_error *reterr)
{
        hyb_error e;
        int r;

        hyb_error_clear(&e);
        r = hyb_furi_parse(text, len, NULL, ret, &e);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return err_set(reterr, r, -1, "%s \"%.*s\" is not a uri: %s", what,
                               (int)(len > 60 ? 60 : len), text, e.message);
        return 0;
}

static int from_json(json_t *v, unsigned depth, hyb_obj **ret, hyb_error *reterr);

static int enter(unsigned *depth, hyb_error *reterr)
{
        if (*depth >= HYB_OBJ_MAX_DEPTH)
                return err_set(reterr, HYB_E_DEPTH, -1, "JSON nested deeper than %d levels",
                               HYB_OBJ_MAX_DEPTH);
        (*depth)++;
        return 0;
}

static int seq_from_json(hyb_obj_kind kind, json_t *arr, unsigned depth, hyb_obj **ret,
                         hyb_error *reterr)
{
        _cleanup_obj_ hyb_obj *o = NULL;
        size_t i;
        json_t *item;
        int r;

        r = enter(&depth, reterr);
        if (r < 0)
                return r;
        r = obj_lst_builder(kind, json_array_size(arr), &o);
        if (r < 0)
                return r;
        json_array_foreach(arr, i, item) {
                hyb_obj *x = NULL;

                r = from_json(item, depth, &x, reterr);
                if (r < 0)
                        return r;
                r = obj_lst_append(o, x);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(o);
        return 0;
}

/* {"@rec":[[k,v],...]} */
static int pairs_from_json(json_t *arr, unsigned depth, hyb_obj **ret, hyb_error *reterr)
{
        _cleanup_obj_ hyb_obj *o = NULL;
        size_t i;
        json_t *pair;
        int r;

        if (!json_is_array(arr))
                return err_set(reterr, HYB_E_PARSE, -1, "\"@rec\" must be an array of [key,value]");
        r = enter(&depth, reterr);
        if (r < 0)
                return r;
        r = obj_rec_builder(json_array_size(arr), &o);
        if (r < 0)
                return r;
        json_array_foreach(arr, i, pair) {
                hyb_obj *k = NULL, *v = NULL;

                if (!json_is_array(pair) || json_array_size(pair) != 2)
                        return err_set(reterr, HYB_E_PARSE, -1,
                                       "\"@rec\" item %zu is not a [key,value] pair", i);
                r = from_json(json_array_get(pair, 0), depth, &k, reterr);
                if (r < 0)
                        return r;
                r = from_json(json_array_get(pair, 1), depth, &v, reterr);
                if (r < 0) {
                        hyb_obj_unref(k);
                        return r;
                }
                if (obj_rec_find(o, k) >= 0) {
                        hyb_obj_unref(k);
                        hyb_obj_unref(v);
                        return err_set(reterr, HYB_E_PARSE, -1,
                                       "\"@rec\" repeats the key of item %zu", i);
                }
                r = obj_rec_set(o, k, v);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(o);
        return 0;
}

/* {"@type":T,"@value":V,"@id":I}: @value required, the others optional */
static int typed_from_json(json_t *obj, unsigned depth, hyb_obj **ret, hyb_error *reterr)
{
        json_t *type = json_object_get(obj, "@type"), *id = json_object_get(obj, "@id");
        json_t *value = json_object_get(obj, "@value");
        _cleanup_obj_ hyb_obj *o = NULL;
        hyb_furi *f = NULL;
        int r;

        if (!value)
                return err_set(reterr, HYB_E_PARSE, -1, "\"@type\"/\"@id\" without \"@value\"");
        if ((type && !json_is_string(type)) || (id && !json_is_string(id)))
                return err_set(reterr, HYB_E_PARSE, -1, "\"@type\" and \"@id\" must be strings");
        if (json_is_object(value) && json_object_get(value, "@value"))
                return err_set(reterr, HYB_E_PARSE, -1, "\"@value\" holds another \"@value\"");
        r = from_json(value, depth, &o, reterr);
        if (r < 0)
                return r;
        if ((type || id) && o->kind == HYB_OBJ_NOOBJ)
                return err_set(reterr, HYB_E_PARSE, -1, "null cannot have a type or an id");
        if (type) {
                r = furi_of("\"@type\"", json_string_value(type), json_string_length(type), &f,
                            reterr);
                if (r < 0)
                        return r;
                r = obj_with_type_steal(TAKE_PTR(o), f, &o);
                hyb_furi_unref(f);
                if (r == -EINVAL)
                        return err_set(reterr, HYB_E_PARSE, -1, "\"@type\" names no type");
                if (r == HYB_E_TYPE)
                        return err_set(reterr, HYB_E_TYPE, -1,
                                       "\"@value\" is not of the base type \"@type\" names");
                if (r < 0)
                        return r;
        }
        if (id) {
                r = furi_of("\"@id\"", json_string_value(id), json_string_length(id), &f,
                            reterr);
                if (r < 0)
                        return r;
                r = obj_with_id_steal(TAKE_PTR(o), f, &o);
                hyb_furi_unref(f);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(o);
        return 0;
}

static int reserved_from_json(json_t *obj, unsigned depth, hyb_obj **ret, hyb_error *reterr)
{
        const char *key;
        json_t *v;
        size_t n = json_object_size(obj);

        json_object_foreach(obj, key, v) {
                if (key[0] != '@')
                        return err_set(reterr, HYB_E_PARSE, -1,
                                       "member \"%s\" mixed with \"@\" members", key);
                if (strcmp(key, "@type") != 0 && strcmp(key, "@value") != 0 &&
                    strcmp(key, "@id") != 0 && strcmp(key, "@uri") != 0 &&
                    strcmp(key, "@rec") != 0 && strcmp(key, "@objs") != 0)
                        return err_set(reterr, HYB_E_PARSE, -1, "unknown reserved member \"%s\"",
                                       key);
        }
        if ((v = json_object_get(obj, "@uri"))) {
                hyb_furi *f = NULL;
                int r;

                if (n != 1 || !json_is_string(v))
                        return err_set(reterr, HYB_E_PARSE, -1,
                                       "\"@uri\" must be the only member, a string");
                r = furi_of("\"@uri\"", json_string_value(v), json_string_length(v), &f, reterr);
                if (r < 0)
                        return r;
                return obj_new_uri_steal(f, ret);
        }
        if ((v = json_object_get(obj, "@rec"))) {
                if (n != 1)
                        return err_set(reterr, HYB_E_PARSE, -1, "\"@rec\" must be the only member");
                return pairs_from_json(v, depth, ret, reterr);
        }
        if ((v = json_object_get(obj, "@objs"))) {
                if (n != 1 || !json_is_array(v))
                        return err_set(reterr, HYB_E_PARSE, -1,
                                       "\"@objs\" must be the only member, an array");
                return seq_from_json(HYB_OBJ_OBJS, v, depth, ret, reterr);
        }
        return typed_from_json(obj, depth, ret, reterr);
}

static int rec_from_json(json_t *obj, unsigned depth, hyb_obj **ret, hyb_error *reterr)
{
        _cleanup_obj_ hyb_obj *o = NULL;
        const char *key;
        json_t *v;
        int r;

        json_object_foreach(obj, key, v)
                if (key[0] == '@')
                        return reserved_from_json(obj, depth, ret, reterr);
        r = enter(&depth, reterr);
        if (r < 0)
                return r;
        r = obj_rec_builder(json_object_size(obj), &o);
        if (r < 0)
                return r;
        json_object_foreach(obj, key, v) {
                hyb_obj *k = NULL, *x = NULL;
                hyb_furi *f = NULL;

                r = furi_of("key", key, strlen(key), &f, reterr);
                if (r < 0)
                        return r;
                r = obj_new_uri_steal(f, &k);
                if (r < 0)
                        return r;
                r = from_json(v, depth, &x, reterr);
                if (r < 0) {
                        hyb_obj_unref(k);
                        return r;
                }
                if (obj_rec_find(o, k) >= 0) {
                        /* "a/b" and "a/./b" are one uri */
                        hyb_obj_unref(k);
                        hyb_obj_unref(x);
                        return err_set(reterr, HYB_E_PARSE, -1, "key \"%s\" repeats a uri", key);
                }
                r = obj_rec_set(o, k, x);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(o);
        return 0;
}

static int from_json(json_t *v, unsigned depth, hyb_obj **ret, hyb_error *reterr)
{
        switch (json_typeof(v)) {
        case JSON_NULL:
                *ret = hyb_obj_noobj();
                return 0;
        case JSON_TRUE:
        case JSON_FALSE:
                *ret = hyb_obj_bool(json_is_true(v));
                return 0;
        case JSON_INTEGER:
                return hyb_obj_new_int((int64_t)json_integer_value(v), ret);
        case JSON_REAL:
                return hyb_obj_new_real(json_real_value(v), ret);
        case JSON_STRING:
                return hyb_obj_new_str(json_string_value(v), json_string_length(v), ret);
        case JSON_ARRAY:
                return seq_from_json(HYB_OBJ_LST, v, depth, ret, reterr);
        case JSON_OBJECT:
                return rec_from_json(v, depth, ret, reterr);
        default:
                return err_set(reterr, HYB_E_PARSE, -1, "unknown JSON value");
        }
}

int obj_from_json_t(json_t *v, hyb_obj **ret, hyb_error *reterr)
{
        int r;

        assert(v && ret);
        r = from_json(v, 0, ret, reterr);
        if (r == -ENOMEM)
                err_set(reterr, r, -1, "out of memory");
        return r;
}

/* --- obj -> JSON --- */

static int oom(json_t *j)
{
        return j ? 0 : -ENOMEM;
}

static bool is_plain_uri_key(const hyb_obj *k)
{
        return k->kind == HYB_OBJ_URI && !k->type_id && !k->value_id &&
               hyb_furi_get_str(k->u.uri)[0] != '@';
}

static int to_json(const hyb_obj *o, json_t **ret, hyb_error *reterr);

static int value_to_json(const hyb_obj *o, json_t **ret, hyb_error *reterr)
{
        _cleanup_json_ json_t *j = NULL;
        bool plain = true;
        int r;

        switch (o->kind) {
        case HYB_OBJ_NOOBJ:
                j = json_null();
                break;
        case HYB_OBJ_BOOL:
                j = json_boolean(o->u.b);
                break;
        case HYB_OBJ_INT:
                j = json_integer((json_int_t)o->u.i);
                break;
        case HYB_OBJ_REAL:
                if (!isfinite(o->u.r))
                        return err_set(reterr, HYB_E_TYPE, -1, "JSON cannot hold the real %s",
                                       isnan(o->u.r) ? "nan" : o->u.r < 0 ? "-inf" : "inf");
                j = json_real(o->u.r);
                break;
        case HYB_OBJ_STR:
                j = json_stringn(o->u.str.bytes, o->u.str.len);
                if (!j)
                        return err_set(reterr, HYB_E_TYPE, -1,
                                       "JSON cannot hold a str that is not UTF-8");
                break;
        case HYB_OBJ_URI:
                j = json_pack("{s:s}", "@uri", hyb_furi_get_str(o->u.uri));
                break;
        case HYB_OBJ_LST:
        case HYB_OBJ_OBJS: {
                json_t *arr = json_array();

                if (!arr)
                        return -ENOMEM;
                if (o->kind == HYB_OBJ_LST)
                        j = arr;
                else if (!(j = json_pack("{s:o}", "@objs", arr)))
                        return -ENOMEM;
                for (size_t i = 0; i < o->u.lst.n; i++) {
                        json_t *x = NULL;
                        r = to_json(o->u.lst.items[i], &x, reterr);
                        if (r < 0)
                                return r;
                        if (json_array_append_new(arr, x) < 0)
                                return -ENOMEM;
                }
                break;
        }
        case HYB_OBJ_REC:
                for (size_t i = 0; i < o->u.rec.n && plain; i++)
                        plain = is_plain_uri_key(o->u.rec.keys[i]);
                if (plain) {
                        j = json_object();
                        for (size_t i = 0; j && i < o->u.rec.n; i++) {
                                json_t *x = NULL;
                                r = to_json(o->u.rec.values[i], &x, reterr);
                                if (r < 0)
                                        return r;
                                if (json_object_set_new(
                                            j, hyb_furi_get_str(o->u.rec.keys[i]->u.uri), x) < 0)
                                        return -ENOMEM;
                        }
                } else {
                        json_t *arr = json_array();

                        if (!arr || !(j = json_pack("{s:o}", "@rec", arr)))
                                return -ENOMEM;
                        for (size_t i = 0; i < o->u.rec.n; i++) {
                                json_t *k = NULL, *x = NULL;
                                r = to_json(o->u.rec.keys[i], &k, reterr);
                                if (r < 0)
                                        return r;
                                r = to_json(o->u.rec.values[i], &x, reterr);
                                if (r < 0) {
                                        json_decref(k);
                                        return r;
                                }
                                if (json_array_append_new(arr, json_pack("[oo]", k, x)) < 0)
                                        return -ENOMEM;
                        }
                }
                break;
        default:
                return err_set(reterr, HYB_E_TYPE, -1, "JSON cannot hold a %s",
                               hyb_obj_kind_name((hyb_obj_kind)o->kind));
        }
        r = oom(j);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(j);
        return 0;
}

static int to_json(const hyb_obj *o, json_t **ret, hyb_error *reterr)
{
        _cleanup_json_ json_t *v = NULL, *w = NULL;
        int r;

        if (!o) {
                *ret = json_null();
                return 0;
        }
        r = value_to_json(o, &v, reterr);
        if (r < 0)
                return r;
        if (!o->type_id && !o->value_id) {
                *ret = TAKE_PTR(v);
                return 0;
        }
        w = json_object();
        if (!w)
                return -ENOMEM;
        if (o->type_id && json_object_set_new(w, "@type", json_string(hyb_furi_get_str(o->type_id))))
                return -ENOMEM;
        if (json_object_set(w, "@value", v) < 0)
                return -ENOMEM;
        if (o->value_id && json_object_set_new(w, "@id", json_string(hyb_furi_get_str(o->value_id))))
                return -ENOMEM;
        *ret = TAKE_PTR(w);
        return 0;
}

int obj_to_json_t(const hyb_obj *o, json_t **ret, hyb_error *reterr)
{
        int r;

        assert(ret);
        r = to_json(o, ret, reterr);
        if (r == -ENOMEM)
                err_set(reterr, r, -1, "out of memory");
        return r;
}

/* --- text --- */

HYB_EXPORT int hyb_obj_to_json(const hyb_obj *o, char **ret, hyb_error *reterr)
{
        _cleanup_json_ json_t *j = NULL;
        char *s;
        int r;

        hyb_assert_return(ret, -EINVAL);
        hyb_error_clear(reterr);
        r = obj_to_json_t(o, &j, reterr);
        if (r < 0)
                return r;
        s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER |
                                  JSON_REAL_PRECISION(obj_json_real_precision(o)));
        if (!s)
                return err_set(reterr, -ENOMEM, -1, "out of memory");
        *ret = s;
        return 0;
}

HYB_EXPORT int hyb_obj_from_json(const char *text, size_t len, hyb_obj **ret,
                                 hyb_error *reterr)
{
        _cleanup_json_ json_t *j = NULL;
        json_error_t jerr;
        int code;

        hyb_assert_return(ret && (text || len == 0 || len == (size_t)-1), -EINVAL);
        if (len == (size_t)-1)
                len = text ? strlen(text) : 0;
        hyb_error_clear(reterr);
        j = json_loadb(text ? text : "", len,
                       JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
        if (!j) {
                switch (json_error_code(&jerr)) {
                case json_error_numeric_overflow:
                        code = HYB_E_OVERFLOW;
                        break;
                case json_error_stack_overflow:
                        code = HYB_E_DEPTH;
                        break;
                case json_error_out_of_memory:
                        code = -ENOMEM;
                        break;
                default:
                        code = HYB_E_PARSE;
                }
                return err_set_at(reterr, code, (long)jerr.position, jerr.line, jerr.column,
                                  "JSON: %s at line %d, column %d", jerr.text, jerr.line,
                                  jerr.column);
        }
        return obj_from_json_t(j, ret, reterr);
}
