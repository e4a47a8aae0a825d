/* SPDX-License-Identifier: MIT */
/*
 * The branching poly instructions: split `-<`, choose `-|`, chain `-:`,
 * each `==`, within `_/ \_` and merge `>-`.  Branches are a quoted poly:
 *
 *   -<[int=>plus(1), str=>+'!']
 *      key (a pattern) => code obj, applied when the key matches the current obj
 */
#include "family.h"

/* ---- split, choose, chain, each ---- */

static int branches(hyb_mmadt *vm, const mm_code *c, const mm_ins *ins, const mm_val *cur,
                    hyb_obj **ret)
{
        hyb_obj *p = NULL;
        int r = poly_quote(vm, c, ins, 0, cur, &p);
        hyb_obj_kind k;

        if (r < 0)
                return r;
        k = hyb_obj_get_kind(p);
        if (k != HYB_OBJ_LST && k != HYB_OBJ_REC) {
                /* code that builds the poly: run it */
                mm_val v = MV_NONE;
                r = vm_arg(vm, c, ins, 0, cur, &v);
                hyb_obj_unref(p);
                p = NULL;
                if (r >= 0)
                        r = mv_box(&v, &p);
                mv_clear(&v);
                if (r < 0)
                        return r;
                k = hyb_obj_get_kind(p);
                if (k != HYB_OBJ_LST && k != HYB_OBJ_REC) {
                        hyb_obj_unref(p);
                        return vm_fail(vm, HYB_E_TYPE, "%s needs a lst or rec of branches",
                                       mm_ops[ins->op].name);
                }
        }
        *ret = p;
        return 0;
}

static int set_elem(hyb_obj *o, const hyb_obj *key, mm_val *v)
{
        hyb_obj *e = NULL;
        int r = mv_box(v, &e);

        mv_clear(v);
        if (r < 0)
                return r;
        return key ? obj_rec_set(o, hyb_obj_ref(key), e) : obj_lst_append(o, e);
}

static int split_like(hyb_mmadt *vm, const mm_code *c, const mm_ins *ins, mm_val *cur)
{
        hyb_obj *p = NULL, *o = NULL;
        bool rec, chosen = false;
        mm_val prev = MV_NONE;
        size_t n;
        int r = branches(vm, c, ins, cur, &p);

        if (r < 0)
                return r;
        rec = hyb_obj_get_kind(p) == HYB_OBJ_REC;
        n = hyb_obj_get_len(p);
        r = rec ? obj_rec_builder(n, &o) : obj_lst_builder(HYB_OBJ_LST, n, &o);
        if (ins->op == OP_CHAIN)
                prev = mv_copy(cur);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                const hyb_obj *key = rec ? hyb_obj_get_rec_key(p, i) : NULL;
                const hyb_obj *br = rec ? hyb_obj_get_rec_value(p, i) : hyb_obj_get_at(p, i);
                mm_val y = MV_NONE;
                int err = 0;

                if (ins->op == OP_CHAIN) {
                        r = vm_apply_obj1(vm, br, &prev, &y);
                        if (r >= 0) {
                                mv_clear(&prev);
                                prev = mv_copy(&y);
                        }
                } else if (!(ins->op == OP_CHOOSE && chosen)) {
                        bool take = !rec || mm_match(vm, cur, key, &err);
                        if (err < 0) {
                                r = err;
                                break;
                        }
                        if (take)
                                r = vm_apply_obj1(vm, br, cur, &y);
                        if (!mv_is_noobj(&y))
                                chosen = true;
                }
                if (r >= 0)
                        r = set_elem(o, key, &y);
                mv_clear(&y);
        }
        mv_clear(&prev);
        hyb_obj_unref(p);
        if (r < 0) {
                hyb_obj_unref(o);
                return r;
        }
        mv_clear(cur);
        *cur = mv_obj(o);
        return 0;
}

MM_FAM(op_split)
{
        return split_like(vm, c, ins, cur);
}

MM_FAM(op_choose)
{
        return split_like(vm, c, ins, cur);
}

MM_FAM(op_chain)
{
        return split_like(vm, c, ins, cur);
}

MM_FAM(op_each)
{
        hyb_obj *p = NULL, *o = NULL;
        hyb_obj_kind ck = mv_kind(cur);
        bool rec;
        size_t n;
        int r;

        if (mv_is_noobj(cur))
                return 0;
        r = branches(vm, c, ins, cur, &p);
        if (r < 0)
                return r;
        rec = hyb_obj_get_kind(p) == HYB_OBJ_REC;
        if ((rec && ck != HYB_OBJ_REC) || (!rec && ck != HYB_OBJ_LST)) {
                hyb_obj_unref(p);
                return vm_fail(vm, HYB_E_TYPE, "each of a %s needs a %s, not %s",
                               rec ? "rec" : "lst", rec ? "rec" : "lst", hyb_obj_kind_name(ck));
        }
        n = hyb_obj_get_len(p);
        r = rec ? obj_rec_builder(n, &o) : obj_lst_builder(HYB_OBJ_LST, n, &o);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                const hyb_obj *key = rec ? hyb_obj_get_rec_key(p, i) : NULL;
                const hyb_obj *br = rec ? hyb_obj_get_rec_value(p, i) : hyb_obj_get_at(p, i);
                const hyb_obj *src = rec                          ? poly_rec_get(mv_o(cur), key)
                                     : i < hyb_obj_get_len(mv_o(cur)) ? hyb_obj_get_at(mv_o(cur), i)
                                                                  : NULL;
                mm_val in = src ? mv_from(src) : MV_NONE, y = MV_NONE;
                if (src)
                        r = vm_apply_obj1(vm, br, &in, &y);
                mv_clear(&in);
                if (r >= 0)
                        r = set_elem(o, key, &y);
        }
        hyb_obj_unref(p);
        if (r < 0) {
                hyb_obj_unref(o);
                return r;
        }
        mv_clear(cur);
        *cur = mv_obj(o);
        return 0;
}

/* ---- within, merge ---- */

MM_FAM(op_within)
{
        const hyb_obj *o = mv_o(cur);
        hyb_obj_kind k = mv_kind(cur);
        const mm_arg *a = &c->args[ins->arg];
        mm_vec in = {0}, out = {0};
        hyb_obj *res = NULL;
        int r = 0;

        if (k != HYB_OBJ_LST && k != HYB_OBJ_STR && k != HYB_OBJ_REC)
                return k == HYB_OBJ_NOOBJ
                               ? 0
                               : vm_fail(vm, HYB_E_TYPE, "within needs a lst, str or rec, not %s",
                                         hyb_obj_kind_name(k));
        if (a->kind != MM_ARG_CODE)
                return vm_fail(vm, HYB_E_RUNTIME, "within needs code");
        if (k == HYB_OBJ_REC) {
                /* each value through the code, keys kept */
                r = obj_rec_builder(hyb_obj_get_len(o), &res);
                for (size_t i = 0; r >= 0 && i < hyb_obj_get_len(o); i++) {
                        mm_val v = mv_from(hyb_obj_get_rec_value(o, i)), y = MV_NONE;
                        r = vm_apply1(vm, a->code, &v, &y);
                        mv_clear(&v);
                        if (r >= 0 && !mv_is_noobj(&y))
                                r = set_elem(res, hyb_obj_get_rec_key(o, i), &y);
                        mv_clear(&y);
                }
                goto done;
        }
        if (k == HYB_OBJ_LST) {
                for (size_t i = 0; r >= 0 && i < hyb_obj_get_len(o); i++) {
                        mm_val v = mv_from(hyb_obj_get_at(o, i));
                        r = vec_push(vm, &in, &v);
                        mv_clear(&v);
                }
        } else {
                size_t len;
                const char *s = hyb_obj_get_str(o, &len);
                for (size_t i = 0; r >= 0 && i < len; i++) {
                        hyb_obj *ch = NULL;
                        mm_val v;
                        r = hyb_obj_new_str(s + i, 1, &ch);
                        if (r < 0)
                                break;
                        v = mv_obj(ch);
                        r = vec_push(vm, &in, &v);
                        mv_clear(&v);
                }
        }
        if (r >= 0)
                r = vm_exec_vec(vm, a->code, &in, &out);
        if (r >= 0 && k == HYB_OBJ_STR) {
                bool all_str = true;
                for (size_t i = 0; i < out.n; i++)
                        all_str = all_str && mv_kind(&out.v[i]) == HYB_OBJ_STR;
                if (all_str) {
                        size_t total = 0, at = 0;
                        char *buf;
                        for (size_t i = 0; i < out.n; i++)
                                total += hyb_obj_get_len(mv_o(&out.v[i])) + 0;
                        for (size_t i = 0; i < out.n; i++) {
                                size_t l;
                                hyb_obj_get_str(mv_o(&out.v[i]), &l);
                                at += l;
                        }
                        total = at;
                        buf = malloc(total + 1);
                        if (!buf) {
                                r = -ENOMEM;
                                goto done;
                        }
                        at = 0;
                        for (size_t i = 0; i < out.n; i++) {
                                size_t l;
                                const char *s = hyb_obj_get_str(mv_o(&out.v[i]), &l);
                                memcpy(buf + at, s, l);
                                at += l;
                        }
                        buf[at] = '\0';
                        r = obj_new_str_steal(buf, at, &res);
                        goto done;
                }
        }
        if (r >= 0)
                r = vec_to_objs(&out, true, &res);
done:
        vec_clear(&in);
        vec_clear(&out);
        if (r < 0) {
                hyb_obj_unref(res);
                return r;
        }
        mv_clear(cur);
        *cur = mv_obj(res);
        return 0;
}

MM_FAM(op_merge)
{
        const hyb_obj *o = mv_o(cur);
        hyb_obj_kind k = mv_kind(cur);
        size_t max = ins->aux ? (size_t)ins->aux - 1 : SIZE_MAX, emitted = 0;
        int r = 0;

        switch (k) {
        case HYB_OBJ_LST:
        case HYB_OBJ_OBJS:
        case HYB_OBJ_REC:
                for (size_t i = 0; r >= 0 && i < hyb_obj_get_len(o) && emitted < max; i++) {
                        const hyb_obj *e =
                                k == HYB_OBJ_REC ? hyb_obj_get_rec_value(o, i) : hyb_obj_get_at(o, i);
                        mm_val v;
                        if (hyb_obj_is_noobj(e))
                                continue;
                        v = mv_from(e);
                        emitted++;
                        r = vm_emit(vm, &v, rest);
                }
                break;
        case HYB_OBJ_STR: {
                size_t len;
                const char *s = hyb_obj_get_str(o, &len);
                for (size_t i = 0; r >= 0 && i < len && emitted < max; i++, emitted++) {
                        hyb_obj *ch = NULL;
                        mm_val v;
                        r = hyb_obj_new_str(s + i, 1, &ch);
                        if (r < 0)
                                break;
                        v = mv_obj(ch);
                        r = rest->fn(vm, &v, rest);
                }
                break;
        }
        case HYB_OBJ_URI: {
                const hyb_furi *f = hyb_obj_get_uri(o);
                for (size_t i = 0; r >= 0 && i < hyb_furi_get_n_segments(f) && emitted < max;
                     i++, emitted++) {
                        hyb_furi *s = NULL;
                        hyb_obj *u = NULL;
                        mm_val v;
                        size_t len;
                        const char *seg = hyb_furi_get_segment(f, i, &len);
                        r = hyb_furi_parse(seg, len, NULL, &s, NULL);
                        if (r < 0)
                                break;
                        r = obj_new_uri_steal(s, &u);
                        if (r < 0)
                                break;
                        v = mv_obj(u);
                        r = rest->fn(vm, &v, rest);
                }
                break;
        }
        case HYB_OBJ_NOOBJ:
                break;
        default: {
                mm_val v = mv_copy(cur);
                r = rest->fn(vm, &v, rest);
                break;
        }
        }
        return r < 0 ? r : MM_DONE;
}
