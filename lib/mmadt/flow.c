/* SPDX-License-Identifier: MIT */
/*
 * Flow and data instructions: start, map, end, else, option, repeat, get,
 * print, and `{{code}}` splices in str and uri literals.
 */
#include <stdio.h>

#include "family.h"

MM_FAM(op_start)
{
        int r = 0;

        for (unsigned i = 0; r >= 0 && i < ins->nargs; i++) {
                mm_val y;
                r = vm_arg(vm, c, ins, i, cur, &y);
                if (r >= 0)
                        r = vm_emit(vm, &y, rest);
                mv_clear(&y);
        }
        return r < 0 ? r : MM_DONE;
}

MM_FAM(op_map)
{
        mm_val y;
        int r = vm_arg(vm, c, ins, 0, cur, &y);

        if (r < 0)
                return r;
        mv_clear(cur);
        *cur = y;
        return 0;
}

MM_FAM(op_end)
{
        mv_clear(cur);
        return 0;
}

MM_FAM(op_else)
{
        mm_val y;
        int r;

        if (!mv_is_noobj(cur))
                return 0;
        r = vm_arg(vm, c, ins, 0, cur, &y);
        if (r < 0)
                return r;
        *cur = y;
        return 0;
}

MM_FAM(op_option)
{
        mm_val y;
        int r = vm_arg(vm, c, ins, 0, cur, &y);

        if (r < 0)
                return r;
        if (!mv_is_noobj(&y)) {
                mv_clear(cur);
                *cur = y;
        }
        return 0;
}

/* A condition holds when it yields something other than noobj or false. */
static bool truthy(const mm_val *v)
{
        return !mv_is_noobj(v) && !(mv_kind(v) == HYB_OBJ_BOOL && !mv_bool_of(v));
}

/* repeat(code, until): code again and again until `until` (code, or a count) holds. */
MM_FAM(op_repeat)
{
        const mm_arg *until = ins->nargs > 1 ? &c->args[ins->arg + 1] : NULL;
        int64_t times = -1;
        int r = 0;

        if (until && until->kind == MM_ARG_K && mv_kind(&until->k) == HYB_OBJ_INT)
                times = mv_int_of(&until->k);
        else if (!until)
                return vm_fail(vm, HYB_E_RUNTIME, "repeat needs an until condition or a count");
        for (int64_t n = 0; times < 0 || n < times; n++) {
                mm_val y;
                if (vm->budget_left == 0)
                        return vm_fail(vm, HYB_E_BUDGET, "instruction budget of %llu exhausted",
                                       (unsigned long long)vm->opts.budget);
                vm->budget_left--;
                r = vm_arg(vm, c, ins, 0, cur, &y);
                if (r < 0)
                        return r;
                mv_clear(cur);
                *cur = y;
                if (mv_is_noobj(cur))
                        break;
                if (times < 0) {
                        mm_val u;
                        bool stop;
                        r = vm_arg(vm, c, ins, 1, cur, &u);
                        if (r < 0)
                                return r;
                        stop = truthy(&u);
                        mv_clear(&u);
                        if (stop)
                                break;
                }
        }
        return 0;
}

MM_FAM(op_get)
{
        mm_val key;
        const hyb_obj *o = mv_o(cur), *v = NULL;
        hyb_obj *k = NULL;
        int r;

        if (mv_is_noobj(cur))
                return 0;
        r = vm_arg(vm, c, ins, 0, cur, &key);
        if (r < 0)
                return r;
        switch (mv_kind(cur)) {
        case HYB_OBJ_LST:
        case HYB_OBJ_OBJS:
                if (mv_kind(&key) == HYB_OBJ_INT && mv_int_of(&key) >= 0 &&
                    (uint64_t)mv_int_of(&key) < hyb_obj_get_len(o))
                        v = hyb_obj_get_at(o, mv_int_of(&key));
                break;
        case HYB_OBJ_REC:
                r = mv_box(&key, &k);
                if (r >= 0)
                        v = poly_rec_get(o, k);
                break;
        default:
                mv_clear(&key);
                return vm_fail(vm, HYB_E_TYPE, "get is not defined on %s",
                               hyb_obj_kind_name(mv_kind(cur)));
        }
        mv_clear(&key);
        if (r < 0) {
                hyb_obj_unref(k);
                return r;
        }
        {
                mm_val nv = v ? mv_from(v) : MV_NONE;
                hyb_obj_unref(k);
                mv_clear(cur);
                *cur = nv;
        }
        return 0;
}

MM_FAM(op_print)
{
        mm_val y = MV_NONE;
        char *s;
        int r = 0;

        if (ins->nargs)
                r = vm_arg(vm, c, ins, 0, cur, &y);
        else
                y = mv_copy(cur);
        if (r < 0)
                return r;
        s = mv_text(&y);
        mv_clear(&y);
        if (s) {
                printf("%s\n", s);
                fflush(stdout);
        }
        free(s);
        return 0;
}

/* The text a splice inserts: a str's bytes, anything else's printed form. */
static int splice_text(const mm_val *v, char **ret)
{
        if (mv_kind(v) == HYB_OBJ_STR) {
                *ret = strdup(hyb_obj_get_str(mv_o(v), NULL));
        } else if (mv_kind(v) == HYB_OBJ_URI) {
                *ret = strdup(hyb_furi_get_str(hyb_obj_get_uri(mv_o(v))));
        } else if (mv_is_noobj(v)) {
                *ret = strdup("");
        } else {
                *ret = mv_text(v);
        }
        return *ret ? 0 : -ENOMEM;
}

MM_FAM(op_splice)
{
        obj_buf b = {0};
        hyb_obj *o = NULL;
        hyb_error e = {0};
        int r = 0;

        /* room for the usual short splice (`k/12345`) in one allocation */
        if (grow_array((void **)&b.data, &b.alloc, 32, 1) < 0)
                return -ENOMEM;
        for (unsigned i = 0; r >= 0 && i < ins->nargs; i++) {
                const mm_arg *a = &c->args[ins->arg + i];
                mm_val y;
                char *t = NULL;
                if (a->kind == MM_ARG_K) {
                        obj_buf_puts(&b, hyb_obj_get_str(mv_o(&a->k), NULL));
                        continue;
                }
                r = vm_apply1(vm, a->code, cur, &y);
                if (r < 0)
                        break;
                if (y.k == MV_INT) {
                        /* a plain int prints as its decimal digits: no boxing, no printf */
                        char d[24], *p = d + sizeof(d);
                        uint64_t u = y.u.i < 0 ? -(uint64_t)y.u.i : (uint64_t)y.u.i;
                        do
                                *--p = (char)('0' + u % 10);
                        while ((u /= 10) != 0);
                        if (y.u.i < 0)
                                *--p = '-';
                        obj_buf_put(&b, p, (size_t)(d + sizeof(d) - p));
                        continue;
                }
                r = splice_text(&y, &t);
                mv_clear(&y);
                if (r >= 0)
                        obj_buf_puts(&b, t);
                free(t);
        }
        obj_buf_putc(&b, '\0');
        if (r >= 0 && b.err)
                r = b.err;
        if (r >= 0)
                r = vm_charge(vm, b.len);
        if (r < 0) {
                free(b.data);
                return r;
        }
        if (ins->aux == 0)
                r = obj_new_str_steal(b.data, b.len - 1, &o);
        else if (vm->splice_uri && vm->splice_len == b.len &&
                 memcmp(vm->splice_text, b.data, b.len) == 0) {
                /* the same text as the last splice: uris are immutable, share it */
                o = hyb_obj_ref(vm->splice_uri);
                free(b.data);
        } else {
                r = hyb_obj_new_uri_str(b.data, &o, &e);
                if (r < 0) {
                        free(b.data);
                        return vm_fail(vm, r, "spliced uri: %s", e.message);
                }
                free(vm->splice_text);
                hyb_obj_unref(vm->splice_uri);
                vm->splice_text = b.data;
                vm->splice_len = b.len;
                vm->splice_uri = hyb_obj_ref(o);
        }
        if (r < 0)
                return r;
        mv_clear(cur);
        *cur = mv_obj(o);
        return 0;
}
