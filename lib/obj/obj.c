/* SPDX-License-Identifier: MIT */
/*
 * Objs: representation, reference counts, constructors, builders, getters.
 *
 *   noobj  true  false        static singletons (OBJ_STATIC: ref/unref are no-ops)
 *   small_ints[-16..255]      cached ints, built once (pthread_once), also OBJ_STATIC
 *   everything else           malloc'd, n_ref atomic; the last unref frees children
 *
 * An obj is immutable once shared.  Builders (obj_lst_builder, obj_rec_builder)
 * fill a fresh obj whose only reference the builder's caller holds; the rec
 * builder keeps its hash index up to date while pairs are added, so building a
 * large rec and looking a key up are both O(1) per key.
 */
#include <assert.h>
#include <pthread.h>
#include <stdio.h>

#include "common/util.h"
#include "obj-internal.h"
#include "common/ref.h"

#define SMALL_INT_MIN (-16)
#define SMALL_INT_MAX 255

static hyb_obj noobj_obj = { .kind = HYB_OBJ_NOOBJ, .flags = OBJ_STATIC };
static hyb_obj true_obj = { .kind = HYB_OBJ_BOOL, .flags = OBJ_STATIC, .u.b = true };
static hyb_obj false_obj = { .kind = HYB_OBJ_BOOL, .flags = OBJ_STATIC, .u.b = false };
static hyb_obj small_ints[SMALL_INT_MAX - SMALL_INT_MIN + 1];
static pthread_once_t small_ints_once = PTHREAD_ONCE_INIT;

static void small_ints_init(void)
{
        for (int64_t v = SMALL_INT_MIN; v <= SMALL_INT_MAX; v++) {
                hyb_obj *o = &small_ints[v - SMALL_INT_MIN];
                o->kind = HYB_OBJ_INT;
                o->flags = OBJ_STATIC;
                o->u.i = v;
        }
}

static hyb_obj *obj_alloc(hyb_obj_kind kind)
{
        /* malloc and each member set (inlined stores), not calloc, whose clear is a call of
         * its own: every parsed value comes here.  (A memset of the whole obj would be
         * turned back into calloc by the compiler.) */
        hyb_obj *o = malloc(sizeof(*o));

        if (!o)
                return NULL;
        o->flags = 0;
        o->type_id = NULL;
        o->value_id = NULL;
        memset(&o->u, 0, sizeof(o->u));
        atomic_init(&o->n_ref, 1);
        o->kind = kind;
        return o;
}

static void obj_free(hyb_obj *o)
{
        switch (o->kind) {
        case HYB_OBJ_STR:
                free(o->u.str.bytes);
                break;
        case HYB_OBJ_URI:
                hyb_furi_unref(o->u.uri);
                break;
        case HYB_OBJ_LST:
        case HYB_OBJ_OBJS:
                for (size_t i = 0; i < o->u.lst.n; i++)
                        hyb_obj_unref(o->u.lst.items[i]);
                free(o->u.lst.items);
                break;
        case HYB_OBJ_REC:
                for (size_t i = 0; i < o->u.rec.n; i++) {
                        hyb_obj_unref(o->u.rec.keys[i]);
                        hyb_obj_unref(o->u.rec.values[i]);
                }
                free(o->u.rec.keys);
                free(o->u.rec.values);
                free(o->u.rec.index);
                break;
        case HYB_OBJ_CODE:
                if (o->u.code.ops && o->u.code.ops->free)
                        o->u.code.ops->free(o->u.code.data);
                break;
        default:
                break;
        }
        hyb_furi_unref(o->type_id);
        hyb_furi_unref(o->value_id);
        free(o);
}

static inline void obj_unrefp(hyb_obj **p)
{
        hyb_obj_unref(*p);
}
#define _cleanup_obj_ _cleanup_(obj_unrefp)

/* noobj, true and false are static singletons: not counted. */
static inline bool obj_is_counted(const hyb_obj *o)
{
        return !(o->flags & OBJ_STATIC);
}

HYB_DEFINE_REF_UNREF_IF(hyb_obj, hyb_obj, obj_free, obj_is_counted)

HYB_EXPORT hyb_obj *hyb_obj_noobj(void)
{
        return &noobj_obj;
}

HYB_EXPORT hyb_obj *hyb_obj_bool(bool v)
{
        return v ? &true_obj : &false_obj;
}

HYB_EXPORT int hyb_obj_new_int(int64_t v, hyb_obj **ret)
{
        hyb_obj *o;

        hyb_assert_return(ret, -EINVAL);
        if (v >= SMALL_INT_MIN && v <= SMALL_INT_MAX) {
                pthread_once(&small_ints_once, small_ints_init);
                *ret = &small_ints[v - SMALL_INT_MIN];
                return 0;
        }
        o = obj_alloc(HYB_OBJ_INT);
        if (!o)
                return -ENOMEM;
        o->u.i = v;
        *ret = o;
        return 0;
}

HYB_EXPORT int hyb_obj_new_real(double v, hyb_obj **ret)
{
        hyb_obj *o;

        hyb_assert_return(ret, -EINVAL);
        o = obj_alloc(HYB_OBJ_REAL);
        if (!o)
                return -ENOMEM;
        o->u.r = v;
        *ret = o;
        return 0;
}

int obj_new_str_steal(char *bytes, size_t len, hyb_obj **ret)
{
        hyb_obj *o = obj_alloc(HYB_OBJ_STR);

        if (!o) {
                free(bytes);
                return -ENOMEM;
        }
        o->u.str.bytes = bytes;
        o->u.str.len = len;
        *ret = o;
        return 0;
}

HYB_EXPORT int hyb_obj_new_str(const char *s, size_t len, hyb_obj **ret)
{
        char *copy;

        hyb_assert_return(ret, -EINVAL);
        hyb_assert_return(s || len == 0 || len == (size_t)-1, -EINVAL);
        if (len == (size_t)-1)
                len = s ? strlen(s) : 0;
        copy = strndup_safe(s ? s : "", len);
        if (!copy)
                return -ENOMEM;
        return obj_new_str_steal(copy, len, ret);
}

int obj_new_uri_steal(hyb_furi *f, hyb_obj **ret)
{
        hyb_obj *o = obj_alloc(HYB_OBJ_URI);

        if (!o) {
                hyb_furi_unref(f);
                return -ENOMEM;
        }
        o->u.uri = f;
        *ret = o;
        return 0;
}

HYB_EXPORT int hyb_obj_new_uri(const hyb_furi *f, hyb_obj **ret)
{
        hyb_assert_return(f && ret, -EINVAL);
        return obj_new_uri_steal(hyb_furi_ref(f), ret);
}

HYB_EXPORT int hyb_obj_new_uri_str(const char *text, hyb_obj **ret, hyb_error *reterr)
{
        hyb_furi *f = NULL;
        int r;

        hyb_assert_return(text && ret, -EINVAL);
        r = hyb_furi_parse(text, (size_t)-1, NULL, &f, reterr);
        if (r < 0)
                return r;
        return obj_new_uri_steal(f, ret);
}

int obj_new_code(const obj_code_ops *ops, void *data, hyb_obj **ret)
{
        hyb_obj *o = obj_alloc(HYB_OBJ_CODE);

        if (!o) {
                if (ops && ops->free)
                        ops->free(data);
                return -ENOMEM;
        }
        o->u.code.ops = ops;
        o->u.code.data = data;
        *ret = o;
        return 0;
}

void *obj_code_data(const hyb_obj *o)
{
        return o && o->kind == HYB_OBJ_CODE ? o->u.code.data : NULL;
}

const obj_code_ops *obj_code_get_ops(const hyb_obj *o)
{
        return o && o->kind == HYB_OBJ_CODE ? o->u.code.ops : NULL;
}

/* --- builders --- */

int obj_lst_builder(hyb_obj_kind kind, size_t hint, hyb_obj **ret)
{
        hyb_obj *o;

        assert(obj_kind_is_seq(kind));
        o = obj_alloc(kind);
        if (!o)
                return -ENOMEM;
        if (hint > 0 && grow_array((void **)&o->u.lst.items, &o->u.lst.alloc, hint,
                                   sizeof(hyb_obj *)) < 0) {
                free(o);
                return -ENOMEM;
        }
        *ret = o;
        return 0;
}

int obj_lst_append(hyb_obj *lst, hyb_obj *item)
{
        assert(obj_kind_is_seq(lst->kind));
        if (grow_array((void **)&lst->u.lst.items, &lst->u.lst.alloc, lst->u.lst.n + 1,
                       sizeof(hyb_obj *)) < 0) {
                hyb_obj_unref(item);
                return -ENOMEM;
        }
        lst->u.lst.items[lst->u.lst.n++] = item;
        return 0;
}

int obj_rec_builder(size_t hint, hyb_obj **ret)
{
        hyb_obj *o = obj_alloc(HYB_OBJ_REC);

        if (!o)
                return -ENOMEM;
        if (hint > 0 &&
            (grow_array((void **)&o->u.rec.keys, &o->u.rec.alloc, hint, sizeof(hyb_obj *)) < 0 ||
             !(o->u.rec.values = mallocarray(o->u.rec.alloc, sizeof(hyb_obj *))))) {
                free(o->u.rec.keys);
                free(o);
                return -ENOMEM;
        }
        *ret = o;
        return 0;
}

/* Inserts position pos into the index (which has room). */
static void rec_index_insert(hyb_obj *rec, size_t pos)
{
        size_t mask = rec->u.rec.index_size - 1;
        size_t h = (size_t)hyb_obj_hash(rec->u.rec.keys[pos]) & mask;

        while (rec->u.rec.index[h] != 0)
                h = (h + 1) & mask;
        rec->u.rec.index[h] = (uint32_t)(pos + 1);
}

/* Keeps the load factor at most 1/2 once the rec is past OBJ_REC_INDEX_MIN pairs. */
static int rec_index_reserve(hyb_obj *rec, size_t n)
{
        size_t size = rec->u.rec.index_size;
        uint32_t *idx;

        if (n <= OBJ_REC_INDEX_MIN || n * 2 <= size)
                return 0;
        if (n > UINT32_MAX / 4)
                return -ENOMEM;
        size = size ? size : 32;
        while (size < n * 2)
                size *= 2;
        idx = calloc(size, sizeof(uint32_t));
        if (!idx)
                return -ENOMEM;
        free(rec->u.rec.index);
        rec->u.rec.index = idx;
        rec->u.rec.index_size = size;
        for (size_t i = 0; i < rec->u.rec.n; i++)
                rec_index_insert(rec, i);
        return 0;
}

long obj_rec_find(const hyb_obj *rec, const hyb_obj *key)
{
        if (!rec || rec->kind != HYB_OBJ_REC || !key)
                return -1;
        if (rec->u.rec.index) {
                size_t mask = rec->u.rec.index_size - 1;
                size_t h = (size_t)hyb_obj_hash(key) & mask;

                for (; rec->u.rec.index[h] != 0; h = (h + 1) & mask) {
                        size_t pos = rec->u.rec.index[h] - 1;
                        if (hyb_obj_equal(rec->u.rec.keys[pos], key))
                                return (long)pos;
                }
                return -1;
        }
        for (size_t i = 0; i < rec->u.rec.n; i++)
                if (hyb_obj_equal(rec->u.rec.keys[i], key))
                        return (long)i;
        return -1;
}

int obj_rec_set(hyb_obj *rec, hyb_obj *key, hyb_obj *value)
{
        long pos;
        size_t n;

        assert(rec->kind == HYB_OBJ_REC);
        pos = obj_rec_find(rec, key);
        if (pos >= 0) {
                hyb_obj_unref(rec->u.rec.values[pos]);
                rec->u.rec.values[pos] = value;
                hyb_obj_unref(key);
                return 0;
        }
        n = rec->u.rec.n;
        if (n + 1 > rec->u.rec.alloc) {
                size_t alloc = rec->u.rec.alloc;
                hyb_obj **v;

                if (grow_array((void **)&rec->u.rec.keys, &alloc, n + 1, sizeof(hyb_obj *)) < 0)
                        goto oom;
                v = reallocarray_safe(rec->u.rec.values, alloc, sizeof(hyb_obj *));
                if (!v)
                        goto oom; /* keys grew, alloc unchanged: still consistent */
                rec->u.rec.values = v;
                rec->u.rec.alloc = alloc;
        }
        if (rec_index_reserve(rec, n + 1) < 0)
                goto oom;
        rec->u.rec.keys[n] = key;
        rec->u.rec.values[n] = value;
        rec->u.rec.n = n + 1;
        if (rec->u.rec.index)
                rec_index_insert(rec, n);
        return 0;
oom:
        hyb_obj_unref(key);
        hyb_obj_unref(value);
        return -ENOMEM;
}

static int seq_new(hyb_obj_kind kind, hyb_obj *const *items, size_t n, hyb_obj **ret)
{
        _cleanup_obj_ hyb_obj *o = NULL;
        int r;

        hyb_assert_return(ret && (items || n == 0), -EINVAL);
        for (size_t i = 0; i < n; i++)
                hyb_assert_return(items[i], -EINVAL);
        r = obj_lst_builder(kind, n, &o);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                o->u.lst.items[i] = hyb_obj_ref(items[i]);
        o->u.lst.n = n;
        *ret = TAKE_PTR(o);
        return 0;
}

HYB_EXPORT int hyb_obj_new_lst(hyb_obj *const *items, size_t n, hyb_obj **ret)
{
        return seq_new(HYB_OBJ_LST, items, n, ret);
}

HYB_EXPORT int hyb_obj_new_objs(hyb_obj *const *items, size_t n, hyb_obj **ret)
{
        return seq_new(HYB_OBJ_OBJS, items, n, ret);
}

HYB_EXPORT int hyb_obj_new_rec(hyb_obj *const *keys, hyb_obj *const *values, size_t n,
                               hyb_obj **ret)
{
        _cleanup_obj_ hyb_obj *o = NULL;
        int r;

        hyb_assert_return(ret && ((keys && values) || n == 0), -EINVAL);
        for (size_t i = 0; i < n; i++)
                hyb_assert_return(keys[i] && values[i], -EINVAL);
        r = obj_rec_builder(n, &o);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                r = obj_rec_set(o, hyb_obj_ref(keys[i]), hyb_obj_ref(values[i]));
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(o);
        return 0;
}

/* --- type and value ids --- */

static const char *const base_type_names[] = {
        [HYB_OBJ_BOOL] = "/type/bool", [HYB_OBJ_INT] = "/type/int", [HYB_OBJ_REAL] = "/type/real",
        [HYB_OBJ_STR] = "/type/str",   [HYB_OBJ_URI] = "/type/uri", [HYB_OBJ_LST] = "/type/lst",
        [HYB_OBJ_REC] = "/type/rec",
};

int obj_normalize_type(hyb_obj_kind kind, const hyb_furi *type_id, hyb_furi **ret)
{
        hyb_furi *t = NULL;

        *ret = NULL;
        if (!type_id)
                return 0;
        if (hyb_furi_get_scope(type_id) == HYB_SCOPE_PROGRAM) {
                const char *s = hyb_furi_get_str(type_id);
                _cleanup_free_ char *full = NULL;
                int r;

                if (!*s)
                        return -EINVAL; /* the empty uri names no type */
                if (asprintf(&full, "/type/%s", s) < 0)
                        return -ENOMEM;
                r = hyb_furi_parse(full, (size_t)-1, NULL, &t, NULL);
                if (r < 0)
                        return r;
        } else
                t = hyb_furi_ref(type_id);
        if ((size_t)kind < ELEMENTSOF(base_type_names) && base_type_names[kind] &&
            strcmp(hyb_furi_get_str(t), base_type_names[kind]) == 0) {
                hyb_furi_unref(t);
                return 0;
        }
        /* A base type accepts only its own kind: `str[5]` fails its check (spec: T[v]). */
        for (size_t k = 0; k < ELEMENTSOF(base_type_names); k++)
                if (base_type_names[k] && strcmp(hyb_furi_get_str(t), base_type_names[k]) == 0) {
                        hyb_furi_unref(t);
                        return HYB_E_TYPE;
                }
        *ret = t;
        return 0;
}

/* A shallow copy of o (children referenced), unshared, without flags. */
static int obj_copy(const hyb_obj *o, hyb_obj **ret)
{
        _cleanup_obj_ hyb_obj *c = obj_alloc(o->kind);

        if (!c)
                return -ENOMEM;
        c->type_id = hyb_furi_ref(o->type_id);
        c->value_id = hyb_furi_ref(o->value_id);
        switch (o->kind) {
        case HYB_OBJ_BOOL:
        case HYB_OBJ_INT:
        case HYB_OBJ_REAL:
                c->u = o->u;
                break;
        case HYB_OBJ_STR:
                c->u.str.bytes = strndup_safe(o->u.str.bytes, o->u.str.len);
                if (!c->u.str.bytes)
                        return -ENOMEM;
                c->u.str.len = o->u.str.len;
                break;
        case HYB_OBJ_URI:
                c->u.uri = hyb_furi_ref(o->u.uri);
                break;
        case HYB_OBJ_LST:
        case HYB_OBJ_OBJS:
                c->u.lst.items = mallocarray(o->u.lst.n, sizeof(hyb_obj *));
                if (!c->u.lst.items)
                        return -ENOMEM;
                c->u.lst.alloc = o->u.lst.n;
                for (size_t i = 0; i < o->u.lst.n; i++)
                        c->u.lst.items[i] = hyb_obj_ref(o->u.lst.items[i]);
                c->u.lst.n = o->u.lst.n;
                break;
        case HYB_OBJ_REC:
                for (size_t i = 0; i < o->u.rec.n; i++) {
                        int r = obj_rec_set(c, hyb_obj_ref(o->u.rec.keys[i]),
                                            hyb_obj_ref(o->u.rec.values[i]));
                        if (r < 0)
                                return r;
                }
                break;
        default:
                /* code data has one owner: code objs are tagged by the compiler, not copied */
                return -EINVAL;
        }
        *ret = TAKE_PTR(c);
        return 0;
}

/* o (stolen) as an obj the caller may modify: itself when unshared, else a copy. */
static int obj_own(hyb_obj *o, hyb_obj **ret)
{
        int r;

        if (!(o->flags & OBJ_STATIC) && atomic_load(&o->n_ref) == 1) {
                *ret = o;
                return 0;
        }
        r = obj_copy(o, ret);
        hyb_obj_unref(o);
        return r;
}

int obj_with_type_steal(hyb_obj *o, const hyb_furi *type_id, hyb_obj **ret)
{
        hyb_furi *t = NULL;
        int r;

        if (o->kind == HYB_OBJ_NOOBJ) {
                hyb_obj_unref(o);
                return -EINVAL;
        }
        r = obj_normalize_type(o->kind, type_id, &t);
        if (r < 0) {
                hyb_obj_unref(o);
                return r;
        }
        if (obj_furi_equal(t, o->type_id)) {
                hyb_furi_unref(t);
                *ret = o;
                return 0;
        }
        r = obj_own(o, &o);
        if (r < 0) {
                hyb_furi_unref(t);
                return r;
        }
        hyb_furi_unref(o->type_id);
        o->type_id = t;
        *ret = o;
        return 0;
}

int obj_with_id_steal(hyb_obj *o, const hyb_furi *value_id, hyb_obj **ret)
{
        int r;

        if (o->kind == HYB_OBJ_NOOBJ) {
                hyb_obj_unref(o);
                return -EINVAL;
        }
        if (value_id == o->value_id) {
                *ret = o;
                return 0;
        }
        r = obj_own(o, &o);
        if (r < 0)
                return r;
        hyb_furi_unref(o->value_id);
        o->value_id = hyb_furi_ref(value_id);
        *ret = o;
        return 0;
}

HYB_EXPORT int hyb_obj_with_type(const hyb_obj *o, const hyb_furi *type_id, hyb_obj **ret)
{
        hyb_assert_return(o && ret, -EINVAL);
        return obj_with_type_steal(hyb_obj_ref(o), type_id, ret);
}

HYB_EXPORT int hyb_obj_with_id(const hyb_obj *o, const hyb_furi *value_id, hyb_obj **ret)
{
        hyb_assert_return(o && ret, -EINVAL);
        return obj_with_id_steal(hyb_obj_ref(o), value_id, ret);
}

/* --- getters --- */

HYB_EXPORT hyb_obj_kind hyb_obj_get_kind(const hyb_obj *o)
{
        return o ? (hyb_obj_kind)o->kind : HYB_OBJ_NOOBJ;
}

HYB_EXPORT const char *hyb_obj_kind_name(hyb_obj_kind k)
{
        static const char *const names[] = {
                [HYB_OBJ_NOOBJ] = "noobj", [HYB_OBJ_BOOL] = "bool", [HYB_OBJ_INT] = "int",
                [HYB_OBJ_REAL] = "real",   [HYB_OBJ_STR] = "str",   [HYB_OBJ_URI] = "uri",
                [HYB_OBJ_LST] = "lst",     [HYB_OBJ_REC] = "rec",   [HYB_OBJ_OBJS] = "objs",
                [HYB_OBJ_CODE] = "code",
        };

        if ((unsigned)k < ELEMENTSOF(names))
                return names[k];
        return "unknown";
}

HYB_EXPORT bool hyb_obj_is_noobj(const hyb_obj *o)
{
        return !o || o->kind == HYB_OBJ_NOOBJ;
}

HYB_EXPORT bool hyb_obj_get_bool(const hyb_obj *o)
{
        return o && o->kind == HYB_OBJ_BOOL ? o->u.b : false;
}

HYB_EXPORT int64_t hyb_obj_get_int(const hyb_obj *o)
{
        return o && o->kind == HYB_OBJ_INT ? o->u.i : 0;
}

HYB_EXPORT double hyb_obj_get_real(const hyb_obj *o)
{
        return o && o->kind == HYB_OBJ_REAL ? o->u.r : 0.0;
}

HYB_EXPORT const char *hyb_obj_get_str(const hyb_obj *o, size_t *len)
{
        if (!o || o->kind != HYB_OBJ_STR) {
                if (len)
                        *len = 0;
                return NULL;
        }
        if (len)
                *len = o->u.str.len;
        return o->u.str.bytes;
}

HYB_EXPORT const hyb_furi *hyb_obj_get_uri(const hyb_obj *o)
{
        return o && o->kind == HYB_OBJ_URI ? o->u.uri : NULL;
}

HYB_EXPORT const hyb_furi *hyb_obj_get_type_id(const hyb_obj *o)
{
        return o ? o->type_id : NULL;
}

HYB_EXPORT const hyb_furi *hyb_obj_get_value_id(const hyb_obj *o)
{
        return o ? o->value_id : NULL;
}

HYB_EXPORT size_t hyb_obj_get_len(const hyb_obj *o)
{
        if (!o)
                return 0;
        if (obj_kind_is_seq(o->kind))
                return o->u.lst.n;
        if (o->kind == HYB_OBJ_REC)
                return o->u.rec.n;
        return 0;
}

HYB_EXPORT const hyb_obj *hyb_obj_get_at(const hyb_obj *o, size_t i)
{
        if (!o || !obj_kind_is_seq(o->kind) || i >= o->u.lst.n)
                return NULL;
        return o->u.lst.items[i];
}

HYB_EXPORT const hyb_obj *hyb_obj_get_rec_key(const hyb_obj *o, size_t i)
{
        if (!o || o->kind != HYB_OBJ_REC || i >= o->u.rec.n)
                return NULL;
        return o->u.rec.keys[i];
}

HYB_EXPORT const hyb_obj *hyb_obj_get_rec_value(const hyb_obj *o, size_t i)
{
        if (!o || o->kind != HYB_OBJ_REC || i >= o->u.rec.n)
                return NULL;
        return o->u.rec.values[i];
}

HYB_EXPORT const hyb_obj *hyb_obj_get_field(const hyb_obj *o, const hyb_obj *key)
{
        long pos = obj_rec_find(o, key);

        return pos < 0 ? NULL : o->u.rec.values[pos];
}
