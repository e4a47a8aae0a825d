/* SPDX-License-Identifier: MIT */
/*
 * Arithmetic: plus minus mult div mod neg, per base type (doc/mmadt.md).
 * Both operands must have the same base type; the result keeps the left
 * operand's type id and value id and is re-checked against that type; an
 * obj read by reference (`@a`) writes its new value through to the store.
 *
 *   kind  plus          minus                mult              div / mod
 *   int   +  (overflow) -  (overflow)        *  (overflow)     trunc / sign of left, /0 error
 *   real  +             -                    *                 / fmod, /0 error
 *   bool  or            a or not b           and               a and not b / error
 *   str   concat        remove occurrences   interleave        error
 *   uri   extend        remove the text      resolve (RFC3986) error
 *   lst   concat        remove matching      position-wise mult error
 *   rec   merge (right wins) drop keys       error             error
 */
#include <math.h>

#include "family.h"

static const char *names[] = {"plus", "minus", "mult", "div", "mod"};

static int type_error(hyb_mmadt *vm, int op, hyb_obj_kind a, hyb_obj_kind b)
{
        if (a == b)
                return vm_fail(vm, HYB_E_TYPE, "%s is not defined on %s", names[op],
                               hyb_obj_kind_name(a));
        return vm_fail(vm, HYB_E_TYPE, "%s needs operands of the same base type, not %s and %s",
                       names[op], hyb_obj_kind_name(a), hyb_obj_kind_name(b));
}

static int arith_int(hyb_mmadt *vm, int op, int64_t x, int64_t y, mm_val *out)
{
        int64_t z = 0;
        bool ovf = false;

        switch (op) {
        case MM_PLUS:
                ovf = __builtin_add_overflow(x, y, &z);
                break;
        case MM_MINUS:
                ovf = __builtin_sub_overflow(x, y, &z);
                break;
        case MM_MULT:
                ovf = __builtin_mul_overflow(x, y, &z);
                break;
        case MM_DIV:
        case MM_MOD:
                if (y == 0)
                        return vm_fail(vm, HYB_E_DIV_ZERO, "%s by zero", names[op]);
                if (x == INT64_MIN && y == -1) {
                        if (op == MM_MOD) {
                                z = 0;
                                break;
                        }
                        ovf = true;
                        break;
                }
                z = op == MM_DIV ? x / y : x % y;
                break;
        }
        if (ovf)
                return vm_fail(vm, HYB_E_OVERFLOW, "integer overflow: %lld %s %lld", (long long)x,
                               names[op], (long long)y);
        *out = mv_int(z);
        return 0;
}

static int arith_real(hyb_mmadt *vm, int op, double x, double y, mm_val *out)
{
        if ((op == MM_DIV || op == MM_MOD) && y == 0.0)
                return vm_fail(vm, HYB_E_DIV_ZERO, "%s by zero", names[op]);
        switch (op) {
        case MM_PLUS:
                *out = mv_real(x + y);
                break;
        case MM_MINUS:
                *out = mv_real(x - y);
                break;
        case MM_MULT:
                *out = mv_real(x * y);
                break;
        case MM_DIV:
                *out = mv_real(x / y);
                break;
        default:
                *out = mv_real(fmod(x, y));
                break;
        }
        return 0;
}

static int new_str(hyb_mmadt *vm, char *buf, size_t n, mm_val *out)
{
        hyb_obj *o;
        int r = vm_charge(vm, n);

        if (r < 0) {
                free(buf);
                return r;
        }
        r = obj_new_str_steal(buf, n, &o);
        if (r < 0)
                return r;
        *out = mv_obj(o);
        return 0;
}

static int arith_str(hyb_mmadt *vm, int op, const char *a, size_t na, const char *b, size_t nb,
                     mm_val *out)
{
        char *buf;
        size_t n = 0;

        switch (op) {
        case MM_PLUS:
                buf = malloc(na + nb + 1);
                if (!buf)
                        return -ENOMEM;
                memcpy(buf, a, na);
                memcpy(buf + na, b, nb);
                n = na + nb;
                break;
        case MM_MINUS:
                buf = malloc(na + 1);
                if (!buf)
                        return -ENOMEM;
                for (size_t i = 0; i < na;) {
                        if (nb && i + nb <= na && memcmp(a + i, b, nb) == 0) {
                                i += nb;
                                continue;
                        }
                        buf[n++] = a[i++];
                }
                break;
        case MM_MULT:
                /* interleave: every character of a followed by b */
                if (nb && na > (SIZE_MAX / 2) / (nb + 1))
                        return vm_fail(vm, HYB_E_LIMIT, "string too long");
                buf = malloc(na * (nb + 1) + 1);
                if (!buf)
                        return -ENOMEM;
                for (size_t i = 0; i < na; i++) {
                        buf[n++] = a[i];
                        memcpy(buf + n, b, nb);
                        n += nb;
                }
                break;
        default:
                return type_error(vm, op, HYB_OBJ_STR, HYB_OBJ_STR);
        }
        buf[n] = '\0';
        return new_str(vm, buf, n, out);
}

static int arith_uri(hyb_mmadt *vm, int op, const hyb_furi *a, const hyb_furi *b, mm_val *out)
{
        hyb_furi *f = NULL;
        hyb_obj *o;
        hyb_error e = {0};
        int r;

        switch (op) {
        case MM_PLUS:
                r = hyb_furi_extend(a, b, &f, &e);
                break;
        case MM_MULT:
                r = hyb_furi_resolve(a, b, &f, &e);
                break;
        case MM_MINUS: {
                const char *sa = hyb_furi_get_str(a), *sb = hyb_furi_get_str(b);
                size_t na = strlen(sa), nb = strlen(sb), n = 0;
                char *buf = malloc(na + 1);
                if (!buf)
                        return -ENOMEM;
                for (size_t i = 0; i < na;) {
                        if (nb && i + nb <= na && memcmp(sa + i, sb, nb) == 0) {
                                i += nb;
                                continue;
                        }
                        buf[n++] = sa[i++];
                }
                buf[n] = '\0';
                r = hyb_furi_parse(buf, n, NULL, &f, &e);
                free(buf);
                break;
        }
        default:
                return type_error(vm, op, HYB_OBJ_URI, HYB_OBJ_URI);
        }
        if (r < 0)
                return vm_fail(vm, r, "uri %s: %s", names[op], e.message);
        r = obj_new_uri_steal(f, &o);
        if (r < 0)
                return r;
        *out = mv_obj(o);
        return 0;
}

static bool lst_has(const hyb_obj *l, const hyb_obj *x)
{
        for (size_t i = 0; i < hyb_obj_get_len(l); i++)
                if (hyb_obj_equal(hyb_obj_get_at(l, i), x))
                        return true;
        return false;
}

static int arith_lst(hyb_mmadt *vm, int op, const hyb_obj *a, const hyb_obj *b, mm_val *out)
{
        size_t na = hyb_obj_get_len(a), nb = hyb_obj_get_len(b);
        hyb_obj *o = NULL;
        int r;

        r = vm_charge(vm, (na + nb) * sizeof(void *));
        if (r < 0)
                return r;
        r = obj_lst_builder(HYB_OBJ_LST, na + nb, &o);
        switch (op) {
        case MM_PLUS:
                for (size_t i = 0; r >= 0 && i < na + nb; i++)
                        r = obj_lst_append(
                                o, hyb_obj_ref((i < na ? hyb_obj_get_at(a, i)
                                                                  : hyb_obj_get_at(b, i - na))));
                break;
        case MM_MINUS:
                for (size_t i = 0; r >= 0 && i < na; i++)
                        if (!lst_has(b, hyb_obj_get_at(a, i)))
                                r = obj_lst_append(o, hyb_obj_ref(hyb_obj_get_at(a, i)));
                break;
        case MM_MULT:
                if (na != nb) {
                        hyb_obj_unref(o);
                        return vm_fail(vm, HYB_E_TYPE,
                                       "mult of lsts of different lengths (%zu, %zu)", na, nb);
                }
                for (size_t i = 0; r >= 0 && i < na; i++) {
                        mm_val x = mv_from(hyb_obj_get_at(a, i)), y = mv_from(hyb_obj_get_at(b, i)), z;
                        hyb_obj *e = NULL;
                        r = arith_binary(vm, MM_MULT, &x, &y, &z);
                        if (r >= 0)
                                r = arith_keep_ids(vm, &x, &z);
                        if (r >= 0)
                                r = mv_box(&z, &e);
                        if (r >= 0)
                                r = obj_lst_append(o, e);
                        mv_clear(&x);
                        mv_clear(&y);
                        mv_clear(&z);
                }
                break;
        default:
                hyb_obj_unref(o);
                return type_error(vm, op, HYB_OBJ_LST, HYB_OBJ_LST);
        }
        if (r < 0) {
                hyb_obj_unref(o);
                return r;
        }
        *out = mv_obj(o);
        return 0;
}

static int arith_rec(hyb_mmadt *vm, int op, const hyb_obj *a, const hyb_obj *b, mm_val *out)
{
        size_t na = hyb_obj_get_len(a), nb = hyb_obj_get_len(b);
        hyb_obj *o = NULL;
        int r;

        if (op != MM_PLUS && op != MM_MINUS)
                return type_error(vm, op, HYB_OBJ_REC, HYB_OBJ_REC);
        r = vm_charge(vm, (na + nb) * 2 * sizeof(void *));
        if (r >= 0)
                r = obj_rec_builder(na + nb, &o);
        for (size_t i = 0; r >= 0 && i < na; i++) {
                const hyb_obj *k = hyb_obj_get_rec_key(a, i);
                if (op == MM_MINUS && hyb_obj_get_field(b, k))
                        continue;
                r = obj_rec_set(o, hyb_obj_ref(k),
                                hyb_obj_ref(hyb_obj_get_rec_value(a, i)));
        }
        for (size_t i = 0; op == MM_PLUS && r >= 0 && i < nb; i++)
                r = obj_rec_set(o, hyb_obj_ref(hyb_obj_get_rec_key(b, i)),
                                hyb_obj_ref(hyb_obj_get_rec_value(b, i)));
        if (r < 0) {
                hyb_obj_unref(o);
                return r;
        }
        *out = mv_obj(o);
        return 0;
}

int arith_binary(hyb_mmadt *vm, int op, const mm_val *a, const mm_val *b, mm_val *out)
{
        hyb_obj_kind ka, kb;

        /* plain (unboxed) numbers carry no ids: the common case goes straight to the maths */
        *out = MV_NONE;
        if (a->k == MV_INT && b->k == MV_INT)
                return arith_int(vm, op, a->u.i, b->u.i, out);
        if (a->k == MV_REAL && b->k == MV_REAL)
                return arith_real(vm, op, a->u.r, b->u.r, out);
        ka = mv_kind(a);
        kb = mv_kind(b);
        if (ka == HYB_OBJ_NOOBJ || kb == HYB_OBJ_NOOBJ)
                return 0;
        if (ka != kb) {
                return type_error(vm, op, ka, kb);
        }
        switch (ka) {
        case HYB_OBJ_INT:
                return arith_int(vm, op, mv_int_of(a), mv_int_of(b), out);
        case HYB_OBJ_REAL:
                return arith_real(vm, op, mv_real_of(a), mv_real_of(b), out);
        case HYB_OBJ_BOOL: {
                bool x = mv_bool_of(a), y = mv_bool_of(b);
                switch (op) {
                case MM_PLUS:
                        *out = mv_bool(x || y);
                        return 0;
                case MM_MULT:
                        *out = mv_bool(x && y);
                        return 0;
                case MM_MINUS:
                        *out = mv_bool(x || !y);
                        return 0;
                case MM_DIV:
                        *out = mv_bool(x && !y);
                        return 0;
                default:
                        return type_error(vm, op, ka, kb);
                }
        }
        case HYB_OBJ_STR: {
                size_t na, nb;
                const char *sa = hyb_obj_get_str(mv_o(a), &na), *sb = hyb_obj_get_str(mv_o(b), &nb);
                return arith_str(vm, op, sa, na, sb, nb, out);
        }
        case HYB_OBJ_URI:
                return arith_uri(vm, op, hyb_obj_get_uri(mv_o(a)), hyb_obj_get_uri(mv_o(b)), out);
        case HYB_OBJ_LST:
                return arith_lst(vm, op, mv_o(a), mv_o(b), out);
        case HYB_OBJ_REC:
                return arith_rec(vm, op, mv_o(a), mv_o(b), out);
        default:
                return type_error(vm, op, ka, kb);
        }
}

int arith_keep_ids(hyb_mmadt *vm, const mm_val *left, mm_val *res)
{
        const hyb_furi *tid, *vid;
        hyb_obj *o = NULL, *t = NULL;
        int r;

        if (left->k != MV_OBJ) {
                /* unboxed: never a type id nor a value id */
                res->flags = left->flags;
                return 0;
        }
        tid = mv_type_id(left);
        vid = mv_value_id(left);
        if ((!tid && !vid) || mv_is_noobj(res)) {
                res->flags = left->flags;
                return 0;
        }
        r = mv_box(res, &o);
        if (r >= 0 && tid)
                r = hyb_obj_with_type(o, (hyb_furi *)tid, &t);
        if (r >= 0 && tid) {
                hyb_obj_unref(o);
                o = TAKE_PTR(t);
        }
        if (r >= 0 && vid)
                r = hyb_obj_with_id(o, (hyb_furi *)vid, &t);
        if (r >= 0 && vid) {
                hyb_obj_unref(o);
                o = TAKE_PTR(t);
        }
        if (r < 0) {
                hyb_obj_unref(o);
                return r;
        }
        mv_clear(res);
        *res = mv_obj(o);
        res->flags = left->flags;
        if (tid) {
                /* typed values are re-checked after every operation */
                mm_val plain = MV_NONE;
                hyb_obj *u = NULL;
                r = hyb_obj_with_type(res->u.o, NULL, &u);
                if (r < 0)
                        return r;
                plain = mv_obj(u);
                r = type_check(vm, tid, &plain, NULL);
                if (r == 0) {
                        char *s = mv_text(&plain);
                        r = vm_fail(vm, HYB_E_TYPE, "%s is not a %s", s, type_short(tid));
                        free(s);
                }
                mv_clear(&plain);
                if (r < 0)
                        return r;
        }
        if (vid && (left->flags & MVF_REF)) {
                /* by reference: the new value goes back where it lives */
                r = st_write(vm, vid, res, 0);
                if (r < 0)
                        return r;
        }
        return 0;
}

int fam_arith(hyb_mmadt *vm, const mm_code *c, const mm_ins *ins, mm_val *cur)
{
        mm_val y, z;
        int r;

        if (mv_is_noobj(cur))
                return 0;
        r = vm_arg(vm, c, ins, 0, cur, &y);
        if (r < 0)
                return r;
        r = arith_binary(vm, ins->aux, cur, &y, &z);
        mv_clear(&y);
        if (r >= 0)
                r = arith_keep_ids(vm, cur, &z);
        if (r < 0) {
                mv_clear(&z);
                return r;
        }
        mv_clear(cur);
        *cur = z;
        return 0;
}

int arith_neg(hyb_mmadt *vm, const mm_val *a, mm_val *out)
{
        switch (mv_kind(a)) {
        case HYB_OBJ_NOOBJ:
                *out = MV_NONE;
                return 0;
        case HYB_OBJ_INT:
                if (mv_int_of(a) == INT64_MIN)
                        return vm_fail(vm, HYB_E_OVERFLOW, "integer overflow: neg of %lld",
                                       (long long)INT64_MIN);
                *out = mv_int(-mv_int_of(a));
                return 0;
        case HYB_OBJ_REAL:
                *out = mv_real(-mv_real_of(a));
                return 0;
        case HYB_OBJ_BOOL:
                *out = mv_bool(!mv_bool_of(a));
                return 0;
        default:
                return vm_fail(vm, HYB_E_TYPE, "neg is not defined on %s",
                               hyb_obj_kind_name(mv_kind(a)));
        }
}

MM_FAM(op_neg)
{
        mm_val z;
        int r = arith_neg(vm, cur, &z);

        if (r >= 0)
                r = arith_keep_ids(vm, cur, &z);
        if (r < 0)
                return r;
        mv_clear(cur);
        *cur = z;
        return 0;
}
