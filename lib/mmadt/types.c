/* SPDX-License-Identifier: MIT */
/*
 * Types: base types (/type/bool int real str uri lst rec), built-in derived
 * types (nat char int8 uint8 int16 int32 C ms sec secret), built-in rec
 * templates (thread fiber coroutine sub msg), types registered from C, and
 * user types stored at a fURI: code that accepts or rejects, a mono value,
 * an instruction, or a rec template with `?type` keys and defaults.
 * `T[v]` checks and tags; `?T` filters; `as(T)` converts; type() names.
 */
#include <math.h>
#include <stdio.h>

#include "family.h"

typedef struct builtin_type {
        const char *name;
        hyb_obj_kind kind; /* the base kind */
        int64_t lo, hi;    /* int range (derived ints) */
        int special;       /* 1 char, 2 C, 3 secret */
} builtin_type;

static const builtin_type builtins[] = {
        {"bool", HYB_OBJ_BOOL, 0, 0, 0},
        {"int", HYB_OBJ_INT, INT64_MIN, INT64_MAX, 0},
        {"real", HYB_OBJ_REAL, 0, 0, 0},
        {"str", HYB_OBJ_STR, 0, 0, 0},
        {"uri", HYB_OBJ_URI, 0, 0, 0},
        {"lst", HYB_OBJ_LST, 0, 0, 0},
        {"rec", HYB_OBJ_REC, 0, 0, 0},
        {"objs", HYB_OBJ_OBJS, 0, 0, 0},
        {"code", HYB_OBJ_CODE, 0, 0, 0},
        {"nat", HYB_OBJ_INT, 0, INT64_MAX, 0},
        {"int8", HYB_OBJ_INT, -128, 127, 0},
        {"uint8", HYB_OBJ_INT, 0, 255, 0},
        {"int16", HYB_OBJ_INT, -32768, 32767, 0},
        {"int32", HYB_OBJ_INT, INT32_MIN, INT32_MAX, 0},
        {"ms", HYB_OBJ_INT, 0, INT64_MAX, 0},
        {"sec", HYB_OBJ_INT, 0, INT64_MAX, 0},
        {"char", HYB_OBJ_STR, 0, 0, 1},
        {"C", HYB_OBJ_REAL, 0, 0, 2},
        {"secret", HYB_OBJ_STR, 0, 0, 3},
};

static const struct {
        const char *name;
        const char *src;
} templates[] = {
        /* the `?type` queries check the fields; built-in keys print without them */
        {"thread", "|[loop=>_,halt?bool=>else(true)]"},
        {"fiber", "|[loop=>_,halt?bool=>else(true)]"},
        {"coroutine", "|[init=>else(0),step=>_]"},
        {"sub", "|[source?uri=>_,pattern?uri=>_,on_recv=>_]"},
        {"msg", "|[target?uri=>_,payload=>_,retain?bool=>else(false)]"},
};

const char *type_short(const hyb_furi *tid)
{
        const char *s = hyb_furi_get_path_str(tid);

        return strncmp(s, "/type/", 6) == 0 ? s + 6 : s;
}

/* The last segment of a type uri that may name a built-in (`nat`, `/type/nat`), copied into
 * buf, or NULL. */
static const char *builtin_name_buf(const hyb_furi *f, char *buf, size_t size)
{
        size_t len;
        const char *seg;

        if (hyb_furi_get_scope(f) == HYB_SCOPE_PROGRAM && hyb_furi_get_n_segments(f) == 1) {
                seg = hyb_furi_get_segment(f, 0, &len);
        } else if (hyb_furi_get_scope(f) == HYB_SCOPE_HOST && hyb_furi_get_n_segments(f) == 2) {
                seg = hyb_furi_get_segment(f, 0, &len);
                if (len != 4 || memcmp(seg, "type", 4) != 0)
                        return NULL;
                seg = hyb_furi_get_segment(f, 1, &len);
        } else {
                return NULL;
        }
        if (hyb_furi_is_branch(f) || !seg || len >= size)
                return NULL;
        memcpy(buf, seg, len);
        buf[len] = '\0';
        return buf;
}

#define builtin_name(f) builtin_name_buf((f), (char[64]){0}, 64)

static const builtin_type *find_builtin(const char *name)
{
        for (size_t i = 0; name && i < ELEMENTSOF(builtins); i++)
                if (strcmp(builtins[i].name, name) == 0)
                        return &builtins[i];
        return NULL;
}

static int find_template(hyb_mmadt *vm, const char *name, hyb_obj **ret)
{
        for (size_t i = 0; name && i < ELEMENTSOF(templates); i++) {
                if (strcmp(templates[i].name, name) != 0)
                        continue;
                if (!vm->templates[i]) {
                        int r = mm_eval_nested(vm, templates[i].src, &vm->templates[i]);
                        if (r < 0)
                                return r;
                }
                *ret = hyb_obj_ref(vm->templates[i]);
                return 1;
        }
        return 0;
}

static mm_native *find_native(hyb_mmadt *vm, const hyb_furi *f, bool type)
{
        for (mm_native *n = vm->natives; n; n = n->next)
                if ((type ? n->type_fn != NULL : n->fn != NULL) && hyb_furi_equal(n->furi, f))
                        return n;
        return NULL;
}

/*
 * Resolves a type name: *ret_id the type id to tag with; *ret_def the stored
 * definition (NULL for built-ins).  HYB_E_NOT_FOUND (vm->err untouched) if unknown.
 */
int type_resolve(hyb_mmadt *vm, const hyb_furi *name, hyb_furi **ret_id, hyb_obj **ret_def)
{
        const char *bn = builtin_name(name);
        hyb_furi *noq = NULL, *alt = NULL;
        hyb_obj *o = NULL;
        hyb_error e = {0};
        char buf[300];
        int r;

        *ret_def = NULL;
        if (hyb_furi_is_pattern(name))
                return HYB_E_NOT_FOUND;
        r = hyb_furi_strip_query(name, &noq);
        if (r < 0)
                return r;
        if (find_native(vm, noq, true)) {
                *ret_id = noq;
                return 0;
        }
        if (bn && (find_builtin(bn) || find_template(vm, bn, &o) > 0)) {
                hyb_obj_unref(o);
                hyb_furi_unref(noq);
                snprintf(buf, sizeof(buf), "/type/%s", bn);
                return hyb_furi_parse(buf, (size_t)-1, NULL, ret_id, NULL);
        }
        /* a user type: stored at the name, or under /type/ for a bare name */
        r = hyb_scope_read(vm->scope, noq, &o, &e);
        if (r >= 0 && hyb_obj_is_noobj(o) && bn) {
                snprintf(buf, sizeof(buf), "/type/%s", bn);
                if (hyb_furi_parse(buf, (size_t)-1, NULL, &alt, NULL) >= 0) {
                        hyb_obj_unref(o);
                        o = NULL;
                        r = hyb_scope_read(vm->scope, alt, &o, &e);
                }
        } else if (r >= 0 && hyb_obj_is_noobj(o) && hyb_furi_get_scope(noq) == HYB_SCOPE_HOST &&
                   builtin_name(noq)) {
                /* /type/person for a type defined at the bare name person */
                if (hyb_furi_parse(builtin_name(noq), (size_t)-1, NULL, &alt, NULL) >= 0) {
                        hyb_obj_unref(o);
                        o = NULL;
                        r = hyb_scope_read(vm->scope, alt, &o, &e);
                }
        }
        hyb_furi_unref(alt);
        if (r < 0 || hyb_obj_is_noobj(o)) {
                hyb_obj_unref(o);
                hyb_furi_unref(noq);
                return HYB_E_NOT_FOUND;
        }
        *ret_id = noq;
        *ret_def = o;
        return 0;
}

static int unknown_type(hyb_mmadt *vm, const hyb_furi *name)
{
        return vm_fail(vm, HYB_E_NOT_FOUND, "unknown type %s", hyb_furi_get_path_str(name));
}

static int check_builtin(const builtin_type *b, const mm_val *v)
{
        hyb_obj_kind k = mv_kind(v);

        if (k != b->kind)
                return 0;
        if (b->kind == HYB_OBJ_INT)
                return mv_int_of(v) >= b->lo && mv_int_of(v) <= b->hi;
        switch (b->special) {
        case 1: {
                size_t len;
                const unsigned char *s = (const unsigned char *)hyb_obj_get_str(mv_o(v), &len);
                size_t want = !len ? 0 : s[0] < 0x80 ? 1 : s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : 2;
                return len && len == want;
        }
        case 2:
                return mv_real_of(v) >= -273.15;
        default:
                return 1;
        }
}

/* A rec template applied to v: the template's keys (with their ?type) then v's other fields. */
static int template_apply(hyb_mmadt *vm, const hyb_obj *tpl, const mm_val *v, const char *tname,
                          bool plain_keys, mm_val *out)
{
        const hyb_obj *in = mv_o(v);
        hyb_obj *o = NULL;
        int r;

        if (!mv_is_noobj(v) && mv_kind(v) != HYB_OBJ_REC)
                return 0;
        r = obj_rec_builder(hyb_obj_get_len(tpl) + (in ? hyb_obj_get_len(in) : 0), &o);
        for (size_t i = 0; r >= 0 && i < hyb_obj_get_len(tpl); i++) {
                const hyb_obj *key = hyb_obj_get_rec_key(tpl, i);
                const hyb_obj *f = in ? poly_rec_get(in, key) : NULL;
                mm_val fv = f ? mv_from(f) : MV_NONE, y = MV_NONE;
                hyb_obj *e = NULL;
                r = vm_apply_obj1(vm, hyb_obj_get_rec_value(tpl, i), &fv, &y);
                mv_clear(&fv);
                if (r >= 0 && hyb_obj_get_kind(key) == HYB_OBJ_URI &&
                    hyb_furi_get_query(hyb_obj_get_uri(key)) && !mv_is_noobj(&y)) {
                        hyb_furi *t = NULL;
                        r = hyb_furi_parse(hyb_furi_get_query(hyb_obj_get_uri(key)), (size_t)-1, NULL,
                                           &t, NULL);
                        if (r >= 0)
                                r = type_check(vm, t, &y, NULL);
                        if (r == 0) {
                                char *s = mv_text(&y);
                                r = vm_fail(vm, HYB_E_TYPE, "%s is not a %s (field %s of %s)", s,
                                            hyb_furi_get_query(hyb_obj_get_uri(key)),
                                            hyb_furi_get_path_str(hyb_obj_get_uri(key)), tname);
                                free(s);
                        }
                        hyb_furi_unref(t);
                }
                if (r >= 0)
                        r = mv_box(&y, &e);
                mv_clear(&y);
                if (r >= 0 && plain_keys && hyb_obj_get_kind(key) == HYB_OBJ_URI) {
                        hyb_furi *nq = NULL;
                        hyb_obj *k2 = NULL;
                        r = hyb_furi_strip_query(hyb_obj_get_uri(key), &nq);
                        if (r >= 0)
                                r = obj_new_uri_steal(nq, &k2);
                        if (r >= 0)
                                r = obj_rec_set(o, k2, e);
                        else
                                hyb_obj_unref(e);
                } else if (r >= 0) {
                        r = obj_rec_set(o, hyb_obj_ref(key), e);
                }
        }
        for (size_t i = 0; r >= 0 && in && i < hyb_obj_get_len(in); i++) {
                const hyb_obj *key = hyb_obj_get_rec_key(in, i);
                if (poly_rec_get(tpl, key))
                        continue;
                r = obj_rec_set(o, hyb_obj_ref(key),
                                hyb_obj_ref(hyb_obj_get_rec_value(in, i)));
        }
        if (r < 0) {
                hyb_obj_unref(o);
                return r;
        }
        if (out)
                *out = mv_obj(o);
        else
                hyb_obj_unref(o);
        return 1;
}

static int check_def(hyb_mmadt *vm, const hyb_furi *tid, const hyb_obj *def, const mm_val *v,
                     mm_val *out)
{
        hyb_obj_kind dk = hyb_obj_get_kind(def);
        mm_val y = MV_NONE;
        int r;

        if (++vm->depth > vm->opts.max_depth) {
                vm->depth--;
                return vm_fail(vm, HYB_E_DEPTH, "type %s nested too deep", hyb_furi_get_path_str(tid));
        }
        switch (dk) {
        case HYB_OBJ_REC:
                r = template_apply(vm, def, v, type_short(tid), false, out);
                break;
        case HYB_OBJ_CODE:
                r = vm_apply_obj1(vm, def, v, &y);
                if (r >= 0)
                        r = !mv_is_noobj(&y) && !(mv_kind(&y) == HYB_OBJ_BOOL && !mv_bool_of(&y));
                mv_clear(&y);
                break;
        case HYB_OBJ_URI: {
                /* an alias of another type */
                r = type_check(vm, hyb_obj_get_uri(def), v, out);
                break;
        }
        default: {
                mm_val dv = mv_from(def);
                r = mv_equal(&dv, v);
                mv_clear(&dv);
                break;
        }
        }
        vm->depth--;
        return r;
}

int type_check(hyb_mmadt *vm, const hyb_furi *tid, const mm_val *v, mm_val *out)
{
        const char *bn = builtin_name(tid);
        const builtin_type *b = find_builtin(bn);
        hyb_furi *id = NULL;
        hyb_obj *def = NULL;
        mm_native *nat;
        int r;

        if (out)
                *out = MV_NONE;
        if (b)
                return check_builtin(b, v);
        r = find_template(vm, bn, &def);
        if (r > 0) {
                r = template_apply(vm, def, v, bn, true, out);
                hyb_obj_unref(def);
                return r;
        }
        if (r < 0)
                return r;
        nat = find_native(vm, tid, true);
        if (nat) {
                hyb_obj *o = NULL;
                r = mv_box(v, &o);
                if (r >= 0)
                        r = nat->type_fn(vm, o, nat->slot.userdata);
                hyb_obj_unref(o);
                return r < 0 ? vm_fail(vm, r, "type %s failed", hyb_furi_get_path_str(tid)) : r > 0;
        }
        r = type_resolve(vm, tid, &id, &def);
        if (r == HYB_E_NOT_FOUND)
                return unknown_type(vm, tid);
        if (r < 0)
                return r;
        r = def ? check_def(vm, id, def, v, out) : 0;
        hyb_furi_unref(id);
        hyb_obj_unref(def);
        return r;
}

static int tag(const mm_val *v, const hyb_furi *tid, mm_val *out)
{
        hyb_obj *o = NULL, *t = NULL;
        int r = mv_box(v, &o);

        if (r >= 0)
                r = hyb_obj_with_type(o, (hyb_furi *)tid, &t);
        hyb_obj_unref(o);
        if (r < 0)
                return r;
        *out = mv_obj(t);
        return 0;
}

int type_apply(hyb_mmadt *vm, const hyb_furi *name, const mm_val *v, mm_val *out)
{
        hyb_furi *id = NULL;
        hyb_obj *def = NULL;
        mm_val done = MV_NONE;
        int r;

        r = type_resolve(vm, name, &id, &def);
        if (r == HYB_E_NOT_FOUND)
                return unknown_type(vm, name);
        if (r < 0)
                return r;
        hyb_obj_unref(def);
        r = type_check(vm, id, v, &done);
        if (r == 0) {
                char *s = mv_text(v);
                r = vm_fail(vm, HYB_E_TYPE, "%s is not a %s", s, type_short(id));
                free(s);
        }
        if (r > 0)
                r = tag(mv_is_noobj(&done) ? v : &done, id, out);
        mv_clear(&done);
        hyb_furi_unref(id);
        return r;
}

int type_isa(hyb_mmadt *vm, const hyb_obj *t, const mm_val *v)
{
        const hyb_furi *vt = mv_type_id(v);
        hyb_furi *id = NULL;
        hyb_obj *def = NULL;
        int r;

        if (hyb_obj_get_kind(t) != HYB_OBJ_URI) {
                int err = 0;
                bool ok = mm_match(vm, v, t, &err);
                return err < 0 ? err : ok;
        }
        r = type_resolve(vm, hyb_obj_get_uri(t), &id, &def);
        if (r < 0)
                return r;
        hyb_obj_unref(def);
        if (vt && hyb_furi_equal(vt, id))
                r = 1;
        else
                r = type_check(vm, id, v, NULL);
        hyb_furi_unref(id);
        return r;
}

MM_FAM(op_isa)
{
        hyb_obj *t = NULL;
        int r;

        if (mv_is_noobj(cur))
                return 0;
        r = poly_quote(vm, c, ins, 0, cur, &t);
        if (r < 0)
                return r;
        r = type_isa(vm, t, cur);
        if (r == HYB_E_NOT_FOUND)
                r = unknown_type(vm, hyb_obj_get_uri(t));
        hyb_obj_unref(t);
        if (r < 0)
                return r;
        if (r == 0)
                mv_clear(cur);
        return 0;
}

int type_of(hyb_mmadt *vm, const mm_val *v, mm_val *out)
{
        const hyb_furi *tid = mv_type_id(v);
        char buf[64];
        hyb_obj *o = NULL;
        int r;

        if (tid)
                r = obj_new_uri_steal(hyb_furi_ref(tid), &o);
        else {
                snprintf(buf, sizeof(buf), "/type/%s", hyb_obj_kind_name(mv_kind(v)));
                r = hyb_obj_new_uri_str(buf, &o, NULL);
        }
        if (r < 0)
                return r;
        *out = mv_obj(o);
        return 0;
}

MM_FAM(op_type)
{
        mm_val t;
        int r;

        if (mv_is_noobj(cur))
                return 0;
        r = type_of(vm, cur, &t);
        if (r < 0)
                return r;
        mv_clear(cur);
        *cur = t;
        return 0;
}

/* ---- as ---- */

static int conv_error(hyb_mmadt *vm, const mm_val *v, const char *to)
{
        char *s = mv_text(v);
        int r = vm_fail(vm, HYB_E_TYPE, "cannot convert %s to %s", s, to);

        free(s);
        return r;
}

/* Converts v to the base kind k. */
static int as_kind(hyb_mmadt *vm, const mm_val *v, hyb_obj_kind k, const char *to, mm_val *out)
{
        hyb_obj_kind vk = mv_kind(v);
        hyb_obj *o = NULL;
        int r;

        if (vk == k) {
                hyb_obj *u = NULL;
                if (!mv_type_id(v)) {
                        *out = mv_copy(v);
                        out->flags = 0;
                        return 0;
                }
                r = hyb_obj_with_type((hyb_obj *)mv_o(v), NULL, &u);
                if (r < 0)
                        return r;
                *out = mv_obj(u);
                return 0;
        }
        switch (k) {
        case HYB_OBJ_INT:
                if (vk == HYB_OBJ_REAL) {
                        double d = mv_real_of(v);
                        if (!(d > -9.3e18 && d < 9.3e18))
                                return vm_fail(vm, HYB_E_OVERFLOW, "%f does not fit an int", d);
                        *out = mv_int((int64_t)d);
                        return 0;
                }
                if (vk == HYB_OBJ_BOOL) {
                        *out = mv_int(mv_bool_of(v));
                        return 0;
                }
                if (vk == HYB_OBJ_STR) {
                        const char *s = hyb_obj_get_str(mv_o(v), NULL);
                        char *end;
                        long long n;
                        errno = 0;
                        n = strtoll(s, &end, 10);
                        if (!*s || *end || errno)
                                return conv_error(vm, v, to);
                        *out = mv_int(n);
                        return 0;
                }
                break;
        case HYB_OBJ_REAL:
                if (vk == HYB_OBJ_INT) {
                        *out = mv_real((double)mv_int_of(v));
                        return 0;
                }
                if (vk == HYB_OBJ_STR) {
                        const char *s = hyb_obj_get_str(mv_o(v), NULL);
                        char *end;
                        double d = strtod(s, &end);
                        if (!*s || *end)
                                return conv_error(vm, v, to);
                        *out = mv_real(d);
                        return 0;
                }
                break;
        case HYB_OBJ_BOOL:
                if (vk == HYB_OBJ_INT) {
                        *out = mv_bool(mv_int_of(v) > 0);
                        return 0;
                }
                if (vk == HYB_OBJ_STR) {
                        const char *s = hyb_obj_get_str(mv_o(v), NULL);
                        if (strcmp(s, "true") && strcmp(s, "false"))
                                return conv_error(vm, v, to);
                        *out = mv_bool(s[0] == 't');
                        return 0;
                }
                break;
        case HYB_OBJ_STR:
                if (vk == HYB_OBJ_URI) {
                        r = hyb_obj_new_str(hyb_furi_get_str(hyb_obj_get_uri(mv_o(v))), (size_t)-1, &o);
                } else if (vk == HYB_OBJ_INT || vk == HYB_OBJ_REAL || vk == HYB_OBJ_BOOL) {
                        char *s = mv_text(v);
                        if (!s)
                                return -ENOMEM;
                        r = obj_new_str_steal(s, strlen(s), &o);
                } else {
                        break;
                }
                if (r < 0)
                        return r;
                *out = mv_obj(o);
                return 0;
        case HYB_OBJ_URI:
                if (vk == HYB_OBJ_STR) {
                        hyb_error e = {0};
                        r = hyb_obj_new_uri_str(hyb_obj_get_str(mv_o(v), NULL), &o, &e);
                        if (r < 0)
                                return vm_fail(vm, HYB_E_TYPE, "cannot convert to uri: %s",
                                               e.message);
                        *out = mv_obj(o);
                        return 0;
                }
                break;
        default:
                break;
        }
        return conv_error(vm, v, to);
}

int type_as(hyb_mmadt *vm, const hyb_obj *t, const mm_val *v, mm_val *out)
{
        const char *bn;
        const builtin_type *b;
        mm_val base = MV_NONE;
        int r;

        *out = MV_NONE;
        if (hyb_obj_is_noobj(t) || mv_is_noobj(v))
                return 0;
        if (hyb_obj_get_kind(t) != HYB_OBJ_URI)
                return vm_fail(vm, HYB_E_TYPE, "as needs a type name");
        bn = builtin_name(hyb_obj_get_uri(t));
        b = find_builtin(bn);
        if (!b)
                return type_apply(vm, hyb_obj_get_uri(t), v, out);
        r = as_kind(vm, v, b->kind, bn, &base);
        if (r < 0)
                return r;
        if (b->kind == HYB_OBJ_OBJS || b->kind == HYB_OBJ_CODE ||
            strcmp(bn, hyb_obj_kind_name(b->kind)) == 0) {
                *out = base;
                return 0;
        }
        /* a derived type: retag with a check */
        r = type_apply(vm, hyb_obj_get_uri(t), &base, out);
        mv_clear(&base);
        return r;
}

MM_FAM(op_as)
{
        hyb_obj *t = NULL;
        mm_val y;
        int r = poly_quote(vm, c, ins, 0, cur, &t);

        if (r < 0)
                return r;
        r = type_as(vm, t, cur, &y);
        hyb_obj_unref(t);
        if (r < 0)
                return r;
        mv_clear(cur);
        *cur = y;
        return 0;
}

MM_FAM(op_typed)
{
        const mm_arg *a = &c->args[ins->arg];
        mm_val v, y;
        int r;

        r = vm_arg(vm, c, ins, 1, cur, &v);
        if (r < 0)
                return r;
        r = type_apply(vm, hyb_obj_get_uri(mv_o(&a->k)), &v, &y);
        mv_clear(&v);
        if (r < 0)
                return r;
        mv_clear(cur);
        *cur = y;
        return 0;
}

/* ---- /type/: the built-in types as read-only objs ---- */

static int describe_builtin(const builtin_type *b, hyb_obj **ret)
{
        static const char *const base_of[] = {
                [HYB_OBJ_BOOL] = "bool", [HYB_OBJ_INT] = "int", [HYB_OBJ_REAL] = "real",
                [HYB_OBJ_STR] = "str",   [HYB_OBJ_URI] = "uri", [HYB_OBJ_LST] = "lst",
                [HYB_OBJ_REC] = "rec",   [HYB_OBJ_OBJS] = "objs", [HYB_OBJ_CODE] = "code",
        };
        char buf[32];
        hyb_obj *k[3] = { NULL }, *v[3] = { NULL };
        size_t n = 1;
        int r;

        snprintf(buf, sizeof(buf), "/type/%s", base_of[b->kind]);
        r = hyb_obj_new_uri_str("base", &k[0], NULL);
        if (r >= 0)
                r = hyb_obj_new_uri_str(buf, &v[0], NULL);
        if (r >= 0 && b->kind == HYB_OBJ_INT && (b->lo != INT64_MIN || b->hi != INT64_MAX)) {
                n = 3;
                r = hyb_obj_new_uri_str("min", &k[1], NULL);
                if (r >= 0)
                        r = hyb_obj_new_int(b->lo, &v[1]);
                if (r >= 0)
                        r = hyb_obj_new_uri_str("max", &k[2], NULL);
                if (r >= 0)
                        r = hyb_obj_new_int(b->hi, &v[2]);
        } else if (r >= 0 && b->special) {
                static const char *const what[] = { NULL, "length", "min", "secret" };
                n = 2;
                r = hyb_obj_new_uri_str(what[b->special], &k[1], NULL);
                if (r >= 0 && b->special == 1)
                        r = hyb_obj_new_int(1, &v[1]);
                else if (r >= 0 && b->special == 2)
                        r = hyb_obj_new_real(-273.15, &v[1]);
                else if (r >= 0)
                        v[1] = hyb_obj_bool(true);
        }
        if (r >= 0)
                r = hyb_obj_new_rec(k, v, n, ret);
        for (size_t i = 0; i < 3; i++) {
                hyb_obj_unref(k[i]);
                hyb_obj_unref(v[i]);
        }
        return r;
}

int type_describe(hyb_mmadt *vm, const char *name, hyb_obj **ret)
{
        const builtin_type *b = find_builtin(name);

        if (b) {
                int r = describe_builtin(b, ret);
                return r < 0 ? r : 1;
        }
        return find_template(vm, name, ret);
}

int type_describe_all(hyb_mmadt *vm, hyb_obj **ret)
{
        size_t n = ELEMENTSOF(builtins) + ELEMENTSOF(templates), i = 0;
        hyb_obj *k[ELEMENTSOF(builtins) + ELEMENTSOF(templates)] = { NULL };
        hyb_obj *v[ELEMENTSOF(builtins) + ELEMENTSOF(templates)] = { NULL };
        char buf[32];
        int r = 0;

        for (size_t j = 0; r >= 0 && j < n; j++, i++) {
                size_t nb = ELEMENTSOF(builtins);
                const char *name = j < nb ? builtins[j].name : templates[j - nb].name;
                snprintf(buf, sizeof(buf), "/type/%s", name);
                r = hyb_obj_new_uri_str(buf, &k[i], NULL);
                if (r >= 0)
                        r = type_describe(vm, name, &v[i]);
        }
        if (r >= 0)
                r = hyb_obj_new_rec(k, v, n, ret);
        for (size_t j = 0; j < n; j++) {
                hyb_obj_unref(k[j]);
                hyb_obj_unref(v[j]);
        }
        return r;
}
