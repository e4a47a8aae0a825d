/* SPDX-License-Identifier: MIT */
/*
 * Polys in programs: quoting (block `|`, lift `^`, drop `V`), building
 * lst/rec literals against the current obj, indexing with uris, and shifts
 * (`<<`, `>>`).  The branching instructions are in split.c.
 *
 *   `|[name?str=>_, age?int=>else(29)]` quotes to a rec whose values are code objs:
 *      name?str => code(_)        age?int => code(else(29))
 */
#include "family.h"

/* ---- quoting ---- */

static int quote_code(hyb_mmadt *vm, mm_code *code, hyb_obj **ret);

static int quote_arg(hyb_mmadt *vm, const mm_arg *a, hyb_obj **ret)
{
        if (a->kind == MM_ARG_K)
                return mv_box(&a->k, ret);
        return quote_code(vm, a->code, ret);
}

static int quote_code(hyb_mmadt *vm, mm_code *code, hyb_obj **ret)
{
        if (code->kind == MM_CODE_CHAIN && code->n_ins == 1) {
                const mm_ins *in = &code->ins[0];
                hyb_obj *o = NULL;
                int r;

                if (in->op == OP_LST || in->op == OP_REC) {
                        r = in->op == OP_LST ? obj_lst_builder(HYB_OBJ_LST, in->nargs, &o)
                                             : obj_rec_builder(in->nargs, &o);
                        for (unsigned i = 0; r >= 0 && i < in->nargs; i++) {
                                const mm_arg *a = &code->args[in->arg + i];
                                hyb_obj *e = NULL;
                                r = quote_arg(vm, a, &e);
                                if (r < 0)
                                        break;
                                r = in->op == OP_LST ? obj_lst_append(o, e)
                                                     : obj_rec_set(o, hyb_obj_ref(a->key), e);
                        }
                        if (r < 0) {
                                hyb_obj_unref(o);
                                return r;
                        }
                        *ret = o;
                        return 0;
                }
                if ((in->op == OP_K || in->op == OP_URI) && in->nargs == 1)
                        return quote_arg(vm, &code->args[in->arg], ret);
                if (in->op == OP_DEF || in->op == OP_DEFVAL)
                        return code_box(code->args[in->arg].code, ret);
        }
        return code_box(code, ret);
}

int poly_quote(hyb_mmadt *vm, const mm_code *c, const mm_ins *ins, unsigned i, const mm_val *cur,
               hyb_obj **ret)
{
        mm_arg *a;
        hyb_obj *q, *none = NULL;
        int r;

        if (i >= ins->nargs) {
                *ret = hyb_obj_noobj();
                return 0;
        }
        a = &c->args[ins->arg + i];
        if (a->kind != MM_ARG_CODE)
                return quote_arg(vm, a, ret);
        /* the quoted form depends only on the code: make it once (`-<[plus(1),mult(2)]` per obj
         * would otherwise box a poly of code objs every time); the arg is read-only otherwise,
         * so the cache is set with a compare-and-swap */
        q = __atomic_load_n(&a->quoted, __ATOMIC_ACQUIRE);
        if (!q) {
                r = quote_arg(vm, a, &q);
                if (r < 0)
                        return r;
                if (!__atomic_compare_exchange_n(&a->quoted, &none, q, false, __ATOMIC_ACQ_REL,
                                                 __ATOMIC_ACQUIRE)) {
                        hyb_obj_unref(q);
                        q = none; /* another thread's, the same form */
                }
        }
        *ret = hyb_obj_ref(q);
        return 0;
}

MM_FAM(op_block)
{
        hyb_obj *o = NULL;
        int r = poly_quote(vm, c, ins, 0, cur, &o);

        if (r < 0)
                return r;
        mv_clear(cur);
        *cur = mv_obj(o);
        return 0;
}

/* ^x: a code obj `lift(x)`; whoever applies it (drop, thread loops, subscriptions) unwraps it. */
MM_FAM(op_lift)
{
        const mm_arg *a = &c->args[ins->arg];
        mm_arg copy = {.kind = a->kind, .k = mv_copy(&a->k), .code = code_ref(a->code)};
        mm_code *l = code_new(MM_CODE_CHAIN);
        hyb_obj *o = NULL;
        int r;

        if (!l) {
                arg_clear(&copy);
                return -ENOMEM;
        }
        r = code_emit(l, OP_LIFT, 0, &copy, 1);
        if (r >= 0)
                r = code_box(l, &o);
        code_unref(l);
        if (r < 0)
                return r;
        mv_clear(cur);
        *cur = mv_obj(o);
        return 0;
}

MM_FAM(op_drop)
{
        mm_val f;
        hyb_obj *o = NULL;
        int r = vm_arg(vm, c, ins, 0, cur, &f);

        if (r < 0)
                return r;
        r = mv_box(&f, &o);
        mv_clear(&f);
        if (r >= 0)
                r = vm_apply_obj(vm, o, cur, rest);
        hyb_obj_unref(o);
        return r < 0 ? r : MM_DONE;
}

/* ---- literals applied to the current obj ---- */

/* A rec value by key; uri keys compare by address (a template key `name?str` is `name`). */
const hyb_obj *poly_rec_get(const hyb_obj *rec, const hyb_obj *key)
{
        const hyb_obj *v = hyb_obj_get_field(rec, key);

        if (v || hyb_obj_get_kind(key) != HYB_OBJ_URI)
                return v;
        for (size_t i = 0; i < hyb_obj_get_len(rec); i++) {
                const hyb_obj *k = hyb_obj_get_rec_key(rec, i);
                if (hyb_obj_get_kind(k) == HYB_OBJ_URI &&
                    hyb_furi_equal(hyb_obj_get_uri(k), hyb_obj_get_uri(key)))
                        return hyb_obj_get_rec_value(rec, i);
        }
        return NULL;
}

/* What element i of a poly (field key of a rec) applies to: the same element of a poly
 * of the same kind (noobj where it has none), else the whole incoming obj. */
static mm_val poly_elem_input(const mm_val *cur, bool rec, size_t i, const hyb_obj *key)
{
        hyb_obj_kind ck = mv_kind(cur);

        if (!rec && ck == HYB_OBJ_LST)
                return i < hyb_obj_get_len(mv_o(cur)) ? mv_from(hyb_obj_get_at(mv_o(cur), i))
                                                      : MV_NONE;
        if (rec && ck == HYB_OBJ_REC) {
                const hyb_obj *f = poly_rec_get(mv_o(cur), key);
                return f ? mv_from(f) : MV_NONE;
        }
        return mv_copy(cur);
}

/* Boxes what element i made into *e; y and in are cleared. */
static int poly_elem_box(int r, mm_val *in, mm_val *y, hyb_obj **e)
{
        mv_clear(in);
        if (r >= 0)
                r = mv_box(y, e);
        mv_clear(y);
        return r;
}

int poly_apply_args(hyb_mmadt *vm, const mm_code *c, const mm_ins *ins, const mm_val *cur,
                    mm_val *out)
{
        bool rec = ins->op == OP_REC;
        hyb_obj *o = NULL;
        int r;

        r = vm_charge(vm, ins->nargs * 2 * sizeof(void *));
        if (r >= 0)
                r = rec ? obj_rec_builder(ins->nargs, &o)
                        : obj_lst_builder(HYB_OBJ_LST, ins->nargs, &o);
        for (unsigned i = 0; r >= 0 && i < ins->nargs; i++) {
                const mm_arg *a = &c->args[ins->arg + i];
                mm_val in = poly_elem_input(cur, rec, i, a->key), y = MV_NONE;
                hyb_obj *e = NULL;
                r = poly_elem_box(vm_arg_apply(vm, a, &in, &y), &in, &y, &e);
                if (r >= 0)
                        r = rec ? obj_rec_set(o, hyb_obj_ref(a->key), e) : obj_lst_append(o, e);
        }
        if (r < 0) {
                hyb_obj_unref(o);
                return r;
        }
        *out = mv_obj(o);
        return 0;
}

int poly_apply_obj(hyb_mmadt *vm, const hyb_obj *p, const mm_val *cur, mm_val *out)
{
        bool rec = hyb_obj_get_kind(p) == HYB_OBJ_REC;
        size_t n = hyb_obj_get_len(p);
        hyb_obj *o = NULL;
        int r;

        r = vm_charge(vm, n * 2 * sizeof(void *));
        if (r >= 0)
                r = rec ? obj_rec_builder(n, &o) : obj_lst_builder(HYB_OBJ_LST, n, &o);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                const hyb_obj *el = rec ? hyb_obj_get_rec_value(p, i) : hyb_obj_get_at(p, i);
                mm_val in = poly_elem_input(cur, rec, i, rec ? hyb_obj_get_rec_key(p, i) : NULL);
                mm_val y = MV_NONE;
                hyb_obj *e = NULL;
                r = poly_elem_box(vm_apply_obj1(vm, el, &in, &y), &in, &y, &e);
                if (r >= 0)
                        r = rec ? obj_rec_set(o, hyb_obj_ref(hyb_obj_get_rec_key(p, i)), e)
                                : obj_lst_append(o, e);
        }
        if (r < 0) {
                hyb_obj_unref(o);
                return r;
        }
        *out = mv_obj(o);
        return 0;
}

/* ---- uri indexing ---- */

const hyb_obj *poly_rec_field(const hyb_obj *o, const char *seg, size_t len)
{
        for (size_t j = 0; j < hyb_obj_get_len(o); j++) {
                const hyb_obj *key = hyb_obj_get_rec_key(o, j);
                hyb_obj_kind kk = hyb_obj_get_kind(key);
                bool hit = false;
                if (kk == HYB_OBJ_URI) {
                        const hyb_furi *kf = hyb_obj_get_uri(key);
                        size_t kl;
                        const char *ks =
                                hyb_furi_get_n_segments(kf) == 1 ? hyb_furi_get_segment(kf, 0, &kl) : NULL;
                        hit = ks && kl == len && memcmp(ks, seg, len) == 0 &&
                              !hyb_furi_is_absolute(kf);
                } else if (kk == HYB_OBJ_STR) {
                        size_t kl;
                        const char *ks = hyb_obj_get_str(key, &kl);
                        hit = kl == len && memcmp(ks, seg, len) == 0;
                } else if (kk == HYB_OBJ_INT) {
                        char buf[32];
                        int m = snprintf(buf, sizeof(buf), "%lld", (long long)hyb_obj_get_int(key));
                        hit = (size_t)m == len && memcmp(buf, seg, len) == 0;
                }
                if (hit)
                        return hyb_obj_get_rec_value(o, j);
        }
        return NULL;
}

static int index_at(hyb_mmadt *vm, const hyb_obj *o, const hyb_furi *f, size_t i, mm_sink *s)
{
        size_t n = hyb_furi_get_n_segments(f), len;
        hyb_obj_kind k = hyb_obj_get_kind(o);
        const char *seg;
        mm_val v;

        if (i == n || (i == n - 1 && hyb_furi_get_segment_kind(f, i) == HYB_SEG_HASH &&
                       k != HYB_OBJ_LST && k != HYB_OBJ_REC)) {
                v = mv_from(o);
                return vm_emit(vm, &v, s);
        }
        if (k != HYB_OBJ_LST && k != HYB_OBJ_REC)
                return 0;
        if (hyb_furi_get_segment_kind(f, i) != HYB_SEG_LITERAL) {
                int r = 0;
                for (size_t j = 0; r >= 0 && j < hyb_obj_get_len(o); j++)
                        r = index_at(vm,
                                     k == HYB_OBJ_LST ? hyb_obj_get_at(o, j) : hyb_obj_get_rec_value(o, j),
                                     f, hyb_furi_get_segment_kind(f, i) == HYB_SEG_HASH ? n : i + 1, s);
                return r;
        }
        seg = hyb_furi_get_segment(f, i, &len);
        if (k == HYB_OBJ_LST) {
                char *end;
                unsigned long long idx;
                if (!len || len > 18 || seg[0] < '0' || seg[0] > '9')
                        return 0;
                idx = strtoull(strndupa(seg, len), &end, 10);
                if (*end || idx >= hyb_obj_get_len(o))
                        return 0;
                return index_at(vm, hyb_obj_get_at(o, idx), f, i + 1, s);
        }
        {
                const hyb_obj *field = poly_rec_field(o, seg, len);
                return field ? index_at(vm, field, f, i + 1, s) : 0;
        }
}

int poly_index_uri(hyb_mmadt *vm, const mm_val *cur, const hyb_furi *f, mm_sink *s)
{
        hyb_obj_kind k = mv_kind(cur);
        mm_val v;

        if ((k == HYB_OBJ_LST || k == HYB_OBJ_REC) && hyb_furi_get_n_segments(f) > 0 &&
            !hyb_furi_is_absolute(f)) {
                int r = index_at(vm, mv_o(cur), f, 0, s);
                return r;
        }
        {
                hyb_obj *o = NULL;
                int r = obj_new_uri_steal(hyb_furi_ref(f), &o);
                if (r < 0)
                        return r;
                v = mv_obj(o);
        }
        return vm_emit(vm, &v, s);
}

static int collect_fn(hyb_mmadt *vm, mm_val *v, mm_sink *s)
{
        return vec_push(vm, s->ud, v);
}

int poly_index_collect(hyb_mmadt *vm, const mm_val *cur, const hyb_furi *f, mm_vec *out)
{
        mm_sink s = {collect_fn, out};

        return poly_index_uri(vm, cur, f, &s);
}

/* ---- shifts ---- */

int poly_shift(hyb_mmadt *vm, const mm_val *cur, int64_t n, bool left, mm_val *out)
{
        hyb_obj_kind k = mv_kind(cur);
        const hyb_obj *o = mv_o(cur);
        hyb_obj *res = NULL;
        int r = 0;

        if (n < 0)
                return vm_fail(vm, HYB_E_RUNTIME, "shift by a negative count %lld", (long long)n);
        switch (k) {
        case HYB_OBJ_URI: {
                hyb_furi *f = NULL;
                r = hyb_furi_shift(hyb_obj_get_uri(o), left ? (long)n : -(long)n, &f);
                if (r >= 0)
                        r = obj_new_uri_steal(f, &res);
                break;
        }
        case HYB_OBJ_LST: {
                size_t len = hyb_obj_get_len(o), m = (uint64_t)n > len ? len : (size_t)n;
                r = obj_lst_builder(HYB_OBJ_LST, len - m, &res);
                for (size_t i = left ? m : 0; r >= 0 && i < (left ? len : len - m); i++)
                        r = obj_lst_append(res, hyb_obj_ref(hyb_obj_get_at(o, i)));
                break;
        }
        case HYB_OBJ_REC:
                r = obj_rec_builder(hyb_obj_get_len(o), &res);
                for (size_t i = 0; r >= 0 && i < hyb_obj_get_len(o); i++) {
                        const hyb_obj *key = hyb_obj_get_rec_key(o, i);
                        hyb_obj *nk = NULL;
                        if (hyb_obj_get_kind(key) == HYB_OBJ_URI) {
                                hyb_furi *f = NULL;
                                r = hyb_furi_shift(hyb_obj_get_uri(key), left ? (long)n : -(long)n,
                                                   &f);
                                if (r >= 0 && hyb_furi_get_n_segments(f) == 0) {
                                        /* a key shifted away entirely: the pair goes */
                                        hyb_furi_unref(f);
                                        continue;
                                }
                                if (r >= 0)
                                        r = obj_new_uri_steal(f, &nk);
                        } else {
                                nk = hyb_obj_ref(key);
                        }
                        if (r >= 0)
                                r = obj_rec_set(res, nk,
                                                hyb_obj_ref(hyb_obj_get_rec_value(o, i)));
                }
                break;
        case HYB_OBJ_NOOBJ:
                *out = MV_NONE;
                return 0;
        default:
                return vm_fail(vm, HYB_E_TYPE, "%s is not defined on %s",
                               left ? "lshift" : "rshift", hyb_obj_kind_name(k));
        }
        if (r < 0) {
                hyb_obj_unref(res);
                return vm_fail(vm, r, "%s failed", left ? "lshift" : "rshift");
        }
        *out = mv_obj(res);
        return 0;
}

MM_FAM(op_shift)
{
        mm_val y, z;
        int r = vm_arg(vm, c, ins, 0, cur, &y);

        if (r < 0)
                return r;
        if (mv_kind(&y) != HYB_OBJ_INT) {
                mv_clear(&y);
                return vm_fail(vm, HYB_E_TYPE, "%s needs an int count",
                               ins->aux ? "rshift" : "lshift");
        }
        r = poly_shift(vm, cur, mv_int_of(&y), ins->aux == 0, &z);
        if (r < 0)
                return r;
        mv_clear(cur);
        *cur = z;
        return 0;
}

