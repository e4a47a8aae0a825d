/* SPDX-License-Identifier: MIT */
/*
 * Comparison, logic and structural matching: eq neq gt gte lt lte, is, not,
 * and, or, `?= x` filters and `x ~ p`.  eq/neq compare any objs deeply; the
 * orderings need two ints, two reals, two strs (bytes) or two uris (text).
 */
#include "family.h"

static const char *names[] = {"eq", "neq", "gt", "gte", "lt", "lte"};

int cmp_op(hyb_mmadt *vm, int op, const mm_val *a, const mm_val *b, mm_val *out)
{
        hyb_obj_kind ka = mv_kind(a), kb = mv_kind(b);
        int c;

        *out = MV_NONE;
        if (op == MM_EQ || op == MM_NEQ) {
                bool eq = mv_equal(a, b);
                *out = mv_bool(op == MM_EQ ? eq : !eq);
                return 0;
        }
        if (ka == HYB_OBJ_NOOBJ || kb == HYB_OBJ_NOOBJ)
                return 0;
        if (ka != kb)
                return vm_fail(vm, HYB_E_TYPE,
                               "%s needs operands of the same base type, not %s and %s", names[op],
                               hyb_obj_kind_name(ka), hyb_obj_kind_name(kb));
        switch (ka) {
        case HYB_OBJ_INT: {
                int64_t x = mv_int_of(a), y = mv_int_of(b);
                c = x < y ? -1 : x > y;
                break;
        }
        case HYB_OBJ_REAL: {
                double x = mv_real_of(a), y = mv_real_of(b);
                if (x != x || y != y) {
                        *out = mv_bool(false);
                        return 0;
                }
                c = x < y ? -1 : x > y;
                break;
        }
        case HYB_OBJ_STR: {
                size_t na, nb;
                const char *x = hyb_obj_get_str(mv_o(a), &na), *y = hyb_obj_get_str(mv_o(b), &nb);
                c = memcmp(x, y, na < nb ? na : nb);
                if (c == 0)
                        c = na < nb ? -1 : na > nb;
                break;
        }
        case HYB_OBJ_URI:
                c = strcmp(hyb_furi_get_str(hyb_obj_get_uri(mv_o(a))),
                           hyb_furi_get_str(hyb_obj_get_uri(mv_o(b))));
                break;
        default:
                return vm_fail(vm, HYB_E_TYPE, "%s is not defined on %s", names[op],
                               hyb_obj_kind_name(ka));
        }
        switch (op) {
        case MM_GT:
                *out = mv_bool(c > 0);
                break;
        case MM_GTE:
                *out = mv_bool(c >= 0);
                break;
        case MM_LT:
                *out = mv_bool(c < 0);
                break;
        default:
                *out = mv_bool(c <= 0);
                break;
        }
        return 0;
}

/* Compares cur with the instruction's argument (applied to cur first): *out is the bool. */
static int cmp_with_arg(hyb_mmadt *vm, const mm_code *c, const mm_ins *ins, const mm_val *cur,
                        mm_val *out)
{
        mm_val y;
        int r;

        r = vm_arg(vm, c, ins, 0, cur, &y);
        if (r < 0)
                return r;
        r = cmp_op(vm, ins->aux, cur, &y, out);
        mv_clear(&y);
        return r;
}

MM_FAM(op_cmp)
{
        mm_val z;
        int r;

        if (mv_is_noobj(cur))
                return 0;
        r = cmp_with_arg(vm, c, ins, cur, &z);
        if (r < 0)
                return r;
        mv_clear(cur);
        *cur = z;
        return 0;
}

MM_FAM(op_iscmp)
{
        mm_val z;
        int r;

        if (mv_is_noobj(cur))
                return 0;
        r = cmp_with_arg(vm, c, ins, cur, &z);
        if (r < 0)
                return r;
        if (!(z.k == MV_BOOL && z.u.b))
                mv_clear(cur);
        return 0;
}

/* Is v true (a bool true)? */
static bool truthy(const mm_val *v)
{
        return mv_kind(v) == HYB_OBJ_BOOL && mv_bool_of(v);
}

MM_FAM(op_is)
{
        mm_val y;
        int r;

        if (mv_is_noobj(cur))
                return 0;
        r = vm_arg(vm, c, ins, 0, cur, &y);
        if (r < 0)
                return r;
        if (!truthy(&y))
                mv_clear(cur);
        mv_clear(&y);
        return 0;
}

MM_FAM(op_not)
{
        mm_val y;
        int r;

        if (mv_is_noobj(cur))
                return 0;
        r = vm_arg(vm, c, ins, 0, cur, &y);
        if (r < 0)
                return r;
        if (!(mv_is_noobj(&y) || (mv_kind(&y) == HYB_OBJ_BOOL && !mv_bool_of(&y))))
                mv_clear(cur);
        mv_clear(&y);
        return 0;
}

static int fold_bools(hyb_mmadt *vm, const mm_val *v, bool is_and, bool *acc)
{
        hyb_obj_kind k = mv_kind(v);

        if (k == HYB_OBJ_LST || k == HYB_OBJ_OBJS) {
                for (size_t i = 0; i < hyb_obj_get_len(mv_o(v)); i++) {
                        mm_val e = mv_from(hyb_obj_get_at(mv_o(v), i));
                        int r = fold_bools(vm, &e, is_and, acc);
                        mv_clear(&e);
                        if (r < 0)
                                return r;
                }
                return 0;
        }
        if (k == HYB_OBJ_NOOBJ) {
                if (is_and)
                        *acc = false;
                return 0;
        }
        if (k != HYB_OBJ_BOOL)
                return vm_fail(vm, HYB_E_TYPE, "%s needs bools, not %s", is_and ? "and" : "or",
                               hyb_obj_kind_name(k));
        *acc = is_and ? (*acc && mv_bool_of(v)) : (*acc || mv_bool_of(v));
        return 0;
}

static int and_or(hyb_mmadt *vm, const mm_code *c, const mm_ins *ins, mm_val *cur, bool is_and)
{
        bool acc = is_and;
        int r = 0;

        if (mv_is_noobj(cur))
                return 0;
        for (unsigned i = 0; r >= 0 && i < ins->nargs; i++) {
                mm_val y;
                r = vm_arg(vm, c, ins, i, cur, &y);
                if (r >= 0)
                        r = fold_bools(vm, &y, is_and, &acc);
                mv_clear(&y);
        }
        if (r < 0)
                return r;
        mv_clear(cur);
        *cur = mv_bool(acc);
        return 0;
}

MM_FAM(op_and)
{
        return and_or(vm, c, ins, cur, true);
}

MM_FAM(op_or)
{
        return and_or(vm, c, ins, cur, false);
}

bool mm_match(hyb_mmadt *vm, const mm_val *x, const hyb_obj *p, int *err)
{
        hyb_obj_kind kp = hyb_obj_get_kind(p), kx = mv_kind(x);
        const hyb_obj *xo = mv_o(x);

        if (*err < 0)
                return false;
        switch (kp) {
        case HYB_OBJ_NOOBJ:
                return true;
        case HYB_OBJ_CODE: {
                mm_code *c = code_unbox(p);
                mm_val y;
                bool ok;
                if (c && c->kind == MM_CODE_CHAIN && c->n_ins == 1 && c->ins[0].op == OP_ID)
                        return true;
                *err = vm_apply_obj1(vm, p, x, &y);
                if (*err < 0)
                        return false;
                ok = !mv_is_noobj(&y) && !(mv_kind(&y) == HYB_OBJ_BOOL && !mv_bool_of(&y));
                mv_clear(&y);
                return ok;
        }
        case HYB_OBJ_URI: {
                int r;
                if (hyb_obj_get_type_id(p))
                        break;
                if (kx == HYB_OBJ_URI && hyb_furi_match(hyb_obj_get_uri(xo), hyb_obj_get_uri(p)))
                        return true;
                if (hyb_furi_is_pattern(hyb_obj_get_uri(p)))
                        return false; /* a fURI pattern, never a type */
                r = type_isa(vm, p, x);
                if (r < 0) {
                        /* not a type: a uri pattern that did not match */
                        if (vm->err->code == HYB_E_NOT_FOUND || r == HYB_E_NOT_FOUND) {
                                hyb_error_clear(vm->err);
                                return false;
                        }
                        *err = r;
                        return false;
                }
                return r > 0;
        }
        case HYB_OBJ_LST:
                if (kx != HYB_OBJ_LST || hyb_obj_get_len(xo) != hyb_obj_get_len(p))
                        return false;
                for (size_t i = 0; i < hyb_obj_get_len(p); i++) {
                        mm_val e = mv_from(hyb_obj_get_at(xo, i));
                        bool ok = mm_match(vm, &e, hyb_obj_get_at(p, i), err);
                        mv_clear(&e);
                        if (!ok)
                                return false;
                }
                return true;
        case HYB_OBJ_REC:
                if (kx != HYB_OBJ_REC)
                        return false;
                for (size_t i = 0; i < hyb_obj_get_len(p); i++) {
                        const hyb_obj *pk = hyb_obj_get_rec_key(p, i);
                        bool found = false;
                        for (size_t j = 0; !found && j < hyb_obj_get_len(xo); j++) {
                                mm_val k = mv_from(hyb_obj_get_rec_key(xo, j));
                                mm_val v = mv_from(hyb_obj_get_rec_value(xo, j));
                                found = mm_match(vm, &k, pk, err) &&
                                        mm_match(vm, &v, hyb_obj_get_rec_value(p, i), err);
                                mv_clear(&k);
                                mv_clear(&v);
                        }
                        if (!found)
                                return false;
                }
                return true;
        default:
                break;
        }
        {
                mm_val pv = mv_from(p);
                bool eq = mv_equal(x, &pv);
                mv_clear(&pv);
                return eq;
        }
}

MM_FAM(op_match)
{
        hyb_obj *p = NULL;
        int r = poly_quote(vm, c, ins, 0, cur, &p), err = 0;
        bool ok;

        if (r < 0)
                return r;
        ok = mm_match(vm, cur, p, &err);
        hyb_obj_unref(p);
        if (err < 0)
                return err;
        mv_clear(cur);
        *cur = mv_bool(ok);
        return 0;
}
