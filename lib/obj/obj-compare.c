/* SPDX-License-Identifier: MIT */
/*
 * Equality, total order and hashing of objs; the three agree:
 *   equal(a, b)  <=>  compare(a, b) == 0   =>  hash(a) == hash(b)
 *
 * - Value ids never take part; type ids do (compared after the value).
 * - Kinds order noobj < bool < int < real < str < uri < lst < rec < objs < code
 *   (1 and 1.0 are different kinds, so not equal).
 * - Reals: -0.0 equals 0.0 and every NaN equals every NaN, which sorts above +inf,
 *   so the order stays total.
 * - Uris compare as addresses (hyb_furi_compare) and then by query text: `a?int`
 *   and `a` are different values although they name the same place.
 * - Recs are equal when they hold the same pairs in any order (a rec is a map
 *   that remembers its insertion order for printing); they order by their pairs
 *   sorted by key.  Lsts and streams compare element by element.
 */
#include <math.h>
#include <stdlib.h>

#include "common/util.h"
#include "obj-internal.h"

static uint64_t mix(uint64_t x)
{
        /* splitmix64 finalizer */
        x ^= x >> 30;
        x *= 0xbf58476d1ce4e5b9ULL;
        x ^= x >> 27;
        x *= 0x94d049bb133111ebULL;
        x ^= x >> 31;
        return x;
}

static uint64_t hash_bytes(const void *p, size_t n)
{
        const unsigned char *s = p;
        uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, then mixed */

        for (size_t i = 0; i < n; i++) {
                h ^= s[i];
                h *= 0x100000001b3ULL;
        }
        return mix(h ^ n);
}

static int strcmp_null(const char *a, const char *b)
{
        if (!a || !b)
                return (a != NULL) - (b != NULL);
        return strcmp(a, b);
}

bool obj_furi_equal(const hyb_furi *a, const hyb_furi *b)
{
        if (a == b)
                return true;
        if (!a || !b)
                return false;
        return hyb_furi_equal(a, b) && strcmp_null(hyb_furi_get_query(a), hyb_furi_get_query(b)) == 0;
}

int obj_furi_compare(const hyb_furi *a, const hyb_furi *b)
{
        int r;

        if (a == b)
                return 0;
        if (!a || !b)
                return (a != NULL) - (b != NULL);
        r = hyb_furi_compare(a, b);
        if (r == 0 && !hyb_furi_equal(a, b))
                r = strcmp(hyb_furi_get_path_str(a), hyb_furi_get_path_str(b)); /* keep it total */
        if (r == 0)
                r = strcmp_null(hyb_furi_get_query(a), hyb_furi_get_query(b));
        return r < 0 ? -1 : r > 0;
}

uint64_t obj_furi_hash(const hyb_furi *f)
{
        const char *q;

        if (!f)
                return 0;
        q = hyb_furi_get_query(f);
        return mix(hyb_furi_hash(f) ^ (q ? hash_bytes(q, strlen(q)) : 0x51ULL));
}

static bool real_equal(double a, double b)
{
        return a == b || (isnan(a) && isnan(b));
}

static int real_compare(double a, double b)
{
        if (isnan(a) || isnan(b))
                return isnan(a) - isnan(b);
        return (a > b) - (a < b);
}

/* The text a code obj's hook prints under EXACT (code nested in code prints bare). */
static char *code_text(const hyb_obj *o)
{
        obj_buf b = {0};

        obj_format_to(o, HYB_FORMAT_EXACT | OBJ_FORMAT_IN_CODE, &b);
        obj_buf_putc(&b, '\0');
        if (b.err) {
                free(b.data);
                return NULL;
        }
        return b.data;
}

static bool code_text_equal(const hyb_obj *a, const hyb_obj *b)
{
        char *x = code_text(a), *y = code_text(b);
        bool eq = x && y && strcmp(x, y) == 0;

        free(x);
        free(y);
        return eq;
}

static bool values_equal(const hyb_obj *a, const hyb_obj *b)
{
        switch (a->kind) {
        case HYB_OBJ_NOOBJ:
                return true;
        case HYB_OBJ_BOOL:
                return a->u.b == b->u.b;
        case HYB_OBJ_INT:
                return a->u.i == b->u.i;
        case HYB_OBJ_REAL:
                return real_equal(a->u.r, b->u.r);
        case HYB_OBJ_STR:
                return a->u.str.len == b->u.str.len &&
                       memcmp(a->u.str.bytes, b->u.str.bytes, a->u.str.len) == 0;
        case HYB_OBJ_URI:
                return obj_furi_equal(a->u.uri, b->u.uri);
        case HYB_OBJ_LST:
        case HYB_OBJ_OBJS:
                if (a->u.lst.n != b->u.lst.n)
                        return false;
                for (size_t i = 0; i < a->u.lst.n; i++)
                        if (!hyb_obj_equal(a->u.lst.items[i], b->u.lst.items[i]))
                                return false;
                return true;
        case HYB_OBJ_REC:
                if (a->u.rec.n != b->u.rec.n)
                        return false;
                for (size_t i = 0; i < a->u.rec.n; i++) {
                        long j = obj_rec_find(b, a->u.rec.keys[i]);
                        if (j < 0 || !hyb_obj_equal(a->u.rec.values[i], b->u.rec.values[j]))
                                return false;
                }
                return true;
        case HYB_OBJ_CODE:
                if (a->u.code.data == b->u.code.data)
                        return true;
                if (a->u.code.ops == b->u.code.ops && a->u.code.ops && a->u.code.ops->equal)
                        return a->u.code.ops->equal(a, b);
                /* code read back from its text (obj-code.c) equals the code that printed it */
                if (a->u.code.ops == b->u.code.ops || obj_code_is_source(a) ||
                    obj_code_is_source(b))
                        return code_text_equal(a, b);
                return false;
        default:
                return false;
        }
}

HYB_EXPORT bool hyb_obj_equal(const hyb_obj *a, const hyb_obj *b)
{
        if (a == b)
                return true;
        if (!a || !b)
                return hyb_obj_is_noobj(a) && hyb_obj_is_noobj(b);
        return a->kind == b->kind && values_equal(a, b) && obj_furi_equal(a->type_id, b->type_id);
}

/* Pair positions of a rec sorted by key. */
static int key_cmp(const void *x, const void *y, void *ud)
{
        const hyb_obj *rec = ud;

        return hyb_obj_compare(rec->u.rec.keys[*(const size_t *)x],
                               rec->u.rec.keys[*(const size_t *)y]);
}

static int rec_compare(const hyb_obj *a, const hyb_obj *b)
{
        size_t na = a->u.rec.n, nb = b->u.rec.n, n = na < nb ? na : nb;
        size_t sa_small[16], sb_small[16];
        size_t *sa = sa_small, *sb = sb_small;
        int r = 0;

        if (na > 16 || nb > 16) {
                sa = mallocarray(na, sizeof(size_t));
                sb = mallocarray(nb, sizeof(size_t));
                if (!sa || !sb) {
                        /* out of memory: an insertion-order comparison is the best we can do */
                        free(sa);
                        free(sb);
                        for (size_t i = 0; i < n && r == 0; i++) {
                                r = hyb_obj_compare(a->u.rec.keys[i], b->u.rec.keys[i]);
                                if (r == 0)
                                        r = hyb_obj_compare(a->u.rec.values[i],
                                                            b->u.rec.values[i]);
                        }
                        return r ? r : (na > nb) - (na < nb);
                }
        }
        for (size_t i = 0; i < na; i++)
                sa[i] = i;
        for (size_t i = 0; i < nb; i++)
                sb[i] = i;
        qsort_r(sa, na, sizeof(size_t), key_cmp, (void *)a);
        qsort_r(sb, nb, sizeof(size_t), key_cmp, (void *)b);
        for (size_t i = 0; i < n && r == 0; i++) {
                r = hyb_obj_compare(a->u.rec.keys[sa[i]], b->u.rec.keys[sb[i]]);
                if (r == 0)
                        r = hyb_obj_compare(a->u.rec.values[sa[i]], b->u.rec.values[sb[i]]);
        }
        if (r == 0)
                r = (na > nb) - (na < nb);
        if (sa != sa_small)
                free(sa);
        if (sb != sb_small)
                free(sb);
        return r;
}

static int code_compare(const hyb_obj *a, const hyb_obj *b)
{
        const obj_code_ops *oa = a->u.code.ops, *ob = b->u.code.ops;
        char *ta = NULL, *tb = NULL;
        int r;

        if (oa == ob && oa && oa->compare)
                return oa->compare(a, b);
        if (oa != ob && !obj_code_is_source(a) && !obj_code_is_source(b)) {
                r = strcmp_null(oa ? oa->name : NULL, ob ? ob->name : NULL);
                if (r)
                        return r;
        }
        if (hyb_obj_equal(a, b))
                return 0;
        if (hyb_obj_format(a, HYB_FORMAT_EXACT, &ta) < 0 ||
            hyb_obj_format(b, HYB_FORMAT_EXACT, &tb) < 0)
                r = (a > b) - (a < b); /* out of memory only */
        else
                r = strcmp(ta, tb);
        free(ta);
        free(tb);
        if (r == 0)
                r = (a > b) - (a < b);
        return r;
}

static int values_compare(const hyb_obj *a, const hyb_obj *b)
{
        switch (a->kind) {
        case HYB_OBJ_NOOBJ:
                return 0;
        case HYB_OBJ_BOOL:
                return (int)a->u.b - (int)b->u.b;
        case HYB_OBJ_INT:
                return (a->u.i > b->u.i) - (a->u.i < b->u.i);
        case HYB_OBJ_REAL:
                return real_compare(a->u.r, b->u.r);
        case HYB_OBJ_STR: {
                size_t n = a->u.str.len < b->u.str.len ? a->u.str.len : b->u.str.len;
                int r = memcmp(a->u.str.bytes, b->u.str.bytes, n);
                if (r)
                        return r < 0 ? -1 : 1;
                return (a->u.str.len > b->u.str.len) - (a->u.str.len < b->u.str.len);
        }
        case HYB_OBJ_URI:
                return obj_furi_compare(a->u.uri, b->u.uri);
        case HYB_OBJ_LST:
        case HYB_OBJ_OBJS: {
                size_t na = a->u.lst.n, nb = b->u.lst.n;
                for (size_t i = 0; i < na && i < nb; i++) {
                        int r = hyb_obj_compare(a->u.lst.items[i], b->u.lst.items[i]);
                        if (r)
                                return r;
                }
                return (na > nb) - (na < nb);
        }
        case HYB_OBJ_REC:
                return rec_compare(a, b);
        case HYB_OBJ_CODE:
                return code_compare(a, b);
        default:
                return 0;
        }
}

HYB_EXPORT int hyb_obj_compare(const hyb_obj *a, const hyb_obj *b)
{
        int ka = hyb_obj_get_kind(a), kb = hyb_obj_get_kind(b), r;

        if (a == b)
                return 0;
        if (ka != kb)
                return ka < kb ? -1 : 1;
        if (ka == HYB_OBJ_NOOBJ)
                return 0;
        r = values_compare(a, b);
        if (r)
                return r < 0 ? -1 : 1;
        return obj_furi_compare(a->type_id, b->type_id);
}

HYB_EXPORT uint64_t hyb_obj_hash(const hyb_obj *o)
{
        uint64_t h;

        if (!o)
                return mix(HYB_OBJ_NOOBJ);
        h = (uint64_t)o->kind * 0x9e3779b97f4a7c15ULL;
        switch (o->kind) {
        case HYB_OBJ_BOOL:
                h ^= o->u.b;
                break;
        case HYB_OBJ_INT:
                h ^= mix((uint64_t)o->u.i);
                break;
        case HYB_OBJ_REAL: {
                double r = o->u.r;
                uint64_t bits;

                if (r == 0.0)
                        r = 0.0; /* -0.0 hashes as 0.0 */
                if (isnan(r))
                        bits = 0x7ff8000000000000ULL;
                else
                        memcpy(&bits, &r, sizeof(bits));
                h ^= mix(bits);
                break;
        }
        case HYB_OBJ_STR:
                h ^= hash_bytes(o->u.str.bytes, o->u.str.len);
                break;
        case HYB_OBJ_URI:
                h ^= obj_furi_hash(o->u.uri);
                break;
        case HYB_OBJ_LST:
        case HYB_OBJ_OBJS:
                for (size_t i = 0; i < o->u.lst.n; i++)
                        h = mix(h + hyb_obj_hash(o->u.lst.items[i]));
                break;
        case HYB_OBJ_REC: {
                uint64_t sum = 0;
                /* order-independent, as equality is */
                for (size_t i = 0; i < o->u.rec.n; i++)
                        sum += mix(hyb_obj_hash(o->u.rec.keys[i]) * 31 +
                                   hyb_obj_hash(o->u.rec.values[i]));
                h ^= mix(sum + o->u.rec.n);
                break;
        }
        case HYB_OBJ_CODE:
                if (o->u.code.ops && o->u.code.ops->hash)
                        h ^= o->u.code.ops->hash(o);
                else
                        h ^= mix((uint64_t)(uintptr_t)o->u.code.data);
                break;
        default:
                break;
        }
        if (o->type_id)
                h ^= mix(obj_furi_hash(o->type_id) + 1);
        return mix(h);
}
