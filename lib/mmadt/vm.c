/* SPDX-License-Identifier: MIT */
/*
 * The VM: objs flow one at a time, depth first, through a chain of
 * instructions.  A one-to-one instruction rewrites the register `cur` and
 * the loop goes on; a fan-out instruction (streams, ranges, `+` indexes,
 * merge) hands each result to a continuation sink that runs the rest of the
 * chain.  A barrier (count, sum, prod, `_] [_`, a user instruction whose domain
 * coefficient takes more than one obj) splits a chain into segments: vm_exec
 * collects the whole stream of a segment before the barrier runs.
 *
 *   vm_exec  ----segment 0----> [barrier] ----segment 1----> sink
 *              vm_run per obj    whole       vm_run per obj
 *
 * Every instruction costs one unit of the statement's budget; nested code
 * applications count against the depth limit; built values against memory.
 */
#include <stdio.h>

#include "mmadt-internal.h"
#include "family.h"

#define vmdispatch(o) switch (o)
#define vmcase(l) case l:
#define vmbreak break

int vm_fail(hyb_mmadt *vm, int code, const char *fmt, ...)
{
        va_list ap;

        if (vm->err->code)
                return vm->err->code; /* the first error wins */
        va_start(ap, fmt);
        err_setv(vm->err, code, -1, fmt, ap);
        va_end(ap);
        return code;
}

void vm_place(hyb_mmadt *vm, const mm_code *c, size_t pc)
{
        if (vm->err_placed || !vm->src_id || c->src_id != vm->src_id || pc >= c->n_pos ||
            c->pos[pc] == UINT32_MAX)
                return;
        vm->err_placed = true;
        vm->err_off = c->pos[pc];
}

int vm_charge(hyb_mmadt *vm, size_t bytes)
{
        vm->mem_used += bytes;
        if (_unlikely_(vm->mem_used > vm->opts.max_memory))
                return vm_fail(vm, HYB_E_LIMIT, "memory limit of %zu bytes exceeded",
                               vm->opts.max_memory);
        return 0;
}

static int depth_enter(hyb_mmadt *vm)
{
        if (_unlikely_(++vm->depth > vm->opts.max_depth))
                return vm_fail(vm, HYB_E_DEPTH, "recursion deeper than %u", vm->opts.max_depth);
        return 0;
}

int vm_emit(hyb_mmadt *vm, mm_val *v, mm_sink *s)
{
        const hyb_obj *o = mv_o(v);
        int r = 0;

        if (!o || hyb_obj_get_kind(o) != HYB_OBJ_OBJS || hyb_obj_get_type_id(o))
                return s->fn(vm, v, s);
        for (size_t i = 0; r >= 0 && i < hyb_obj_get_len(o); i++) {
                mm_val e = mv_from(hyb_obj_get_at(o, i));
                r = vm_emit(vm, &e, s);
                mv_clear(&e);
        }
        mv_clear(v);
        return r;
}

/* ---- continuation and collecting sinks ---- */

typedef struct cont_sink {
        mm_sink s;
        const mm_code *c;
        size_t pc, end;
        mm_sink *out;
} cont_sink;

static int cont_fn(hyb_mmadt *vm, mm_val *v, mm_sink *s)
{
        cont_sink *k = (cont_sink *)s;
        mm_val x = *v;

        *v = MV_NONE;
        return vm_run(vm, k->c, k->pc, k->end, x, k->out);
}

int vec_push(hyb_mmadt *vm, mm_vec *vec, mm_val *v)
{
        int r;

        if (mv_is_noobj(v))
                return 0;
        r = vm_charge(vm, sizeof(mm_val));
        if (r < 0)
                return r;
        if (grow_array((void **)&vec->v, &vec->alloc, vec->n + 1, sizeof(mm_val)) < 0)
                return -ENOMEM;
        vec->v[vec->n++] = *v;
        *v = MV_NONE;
        return 0;
}

void vec_clear(mm_vec *vec)
{
        for (size_t i = 0; i < vec->n; i++)
                mv_clear(&vec->v[i]);
        free(vec->v);
        *vec = (mm_vec){0};
}

static int collect_fn(hyb_mmadt *vm, mm_val *v, mm_sink *s)
{
        const hyb_obj *o = mv_o(v);

        if (o && hyb_obj_get_kind(o) == HYB_OBJ_OBJS && !hyb_obj_get_type_id(o))
                return vm_emit(vm, v, s); /* a stream result is its objs */
        return vec_push(vm, s->ud, v);
}

int vec_to_objs(mm_vec *vec, bool lst, hyb_obj **ret)
{
        hyb_obj *o = NULL;
        int r = obj_lst_builder(lst ? HYB_OBJ_LST : HYB_OBJ_OBJS, vec->n, &o);

        for (size_t i = 0; r >= 0 && i < vec->n; i++) {
                hyb_obj *e = NULL;
                r = mv_box(&vec->v[i], &e);
                if (r >= 0)
                        r = obj_lst_append(o, e);
        }
        if (r < 0) {
                hyb_obj_unref(o);
                return r;
        }
        *ret = o;
        return 0;
}

/* Runs code on in (borrowed) and collects the results. */
int vm_collect(hyb_mmadt *vm, const mm_code *c, const mm_val *in, mm_vec *out)
{
        mm_sink s = {collect_fn, out};

        return vm_exec(vm, c, mv_copy(in), &s);
}

static int pack(mm_vec *vec, mm_val *out)
{
        hyb_obj *o;
        int r;

        if (vec->n == 0) {
                *out = MV_NONE;
                return 0;
        }
        if (vec->n == 1) {
                *out = vec->v[0];
                vec->v[0] = MV_NONE;
                return 0;
        }
        r = vec_to_objs(vec, false, &o);
        if (r < 0)
                return r;
        *out = mv_obj(o);
        return 0;
}

/* Collects into one slot on the stack; a second result spills both into a vector. */
typedef struct one_sink {
        mm_sink s;
        mm_val one;
        mm_vec vec;
} one_sink;

static int one_fn(hyb_mmadt *vm, mm_val *v, mm_sink *s)
{
        one_sink *o = (one_sink *)s;
        const hyb_obj *x = mv_o(v);
        int r;

        if (x && hyb_obj_get_kind(x) == HYB_OBJ_OBJS && !hyb_obj_get_type_id(x))
                return vm_emit(vm, v, s); /* a stream result is its objs */
        if (mv_is_noobj(v))
                return 0;
        if (o->vec.n == 0 && mv_is_noobj(&o->one)) {
                r = vm_charge(vm, sizeof(mm_val));
                if (r < 0)
                        return r;
                o->one = *v;
                *v = MV_NONE;
                return 0;
        }
        if (!mv_is_noobj(&o->one)) {
                /* already charged when it took the slot */
                if (grow_array((void **)&o->vec.v, &o->vec.alloc, 2, sizeof(mm_val)) < 0)
                        return -ENOMEM;
                o->vec.v[o->vec.n++] = o->one;
                o->one = MV_NONE;
        }
        return vec_push(vm, &o->vec, v);
}

/* cur cmp y for ints, as cmp_op() */
static inline bool int_cmp(int op, int64_t x, int64_t y)
{
        switch (op) {
        case MM_EQ:
                return x == y;
        case MM_NEQ:
                return x != y;
        case MM_GT:
                return x > y;
        case MM_GTE:
                return x >= y;
        case MM_LT:
                return x < y;
        default:
                return x <= y;
        }
}

/*
 * A simple code (`_`, arith/cmp/iscmp steps with constant int arguments, e.g.
 * `mod(3).eq(0)`) on a plain int, computed in locals without a nested
 * dispatch loop.  1: *out is the result (budget charged as vm_run would);
 * 0: anything unusual (another kind, an overflow, a division by zero, the
 * budget or depth running out), nothing changed: the caller runs the code
 * normally, which reports the error.
 */
static int simple_eval(hyb_mmadt *vm, const mm_code *c, const mm_val *in, mm_val *out)
{
        int64_t x, y;
        uint8_t k = MV_INT;
        bool b = false;

        if (!c->simple || in->k != MV_INT || in->flags || vm->budget_left < c->n_ins ||
            vm->depth >= vm->opts.max_depth)
                return 0;
        x = in->u.i;
        for (size_t pc = 0; pc < c->n_ins; pc++) {
                const mm_ins *ins = &c->ins[pc];
                const mm_arg *a;
                if (ins->op == OP_ID)
                        continue;
                a = &c->args[ins->arg]; /* simple steps other than _ have exactly one arg */
                if (a->kind != MM_ARG_K || a->k.k != MV_INT)
                        return 0;
                if (k == MV_NOOBJ)
                        continue; /* every simple step passes noobj on */
                if (k != MV_INT)
                        return 0;
                y = a->k.u.i;
                switch (ins->op) {
                case OP_ARITH: {
                        bool ovf;
                        switch (ins->aux) {
                        case MM_PLUS:
                                ovf = __builtin_add_overflow(x, y, &x);
                                break;
                        case MM_MINUS:
                                ovf = __builtin_sub_overflow(x, y, &x);
                                break;
                        case MM_MULT:
                                ovf = __builtin_mul_overflow(x, y, &x);
                                break;
                        case MM_DIV:
                        case MM_MOD:
                                if (y == 0 || y == -1)
                                        return 0;
                                x = ins->aux == MM_DIV ? x / y : x % y;
                                ovf = false;
                                break;
                        default:
                                return 0;
                        }
                        if (ovf)
                                return 0;
                        break;
                }
                case OP_CMP:
                        b = int_cmp(ins->aux, x, y);
                        k = MV_BOOL;
                        break;
                default: /* OP_ISCMP */
                        if (!int_cmp(ins->aux, x, y))
                                k = MV_NOOBJ;
                        break;
                }
        }
        if (k != MV_NOOBJ && vm_charge(vm, sizeof(mm_val)) < 0)
                return 0; /* the general path fails the same way */
        vm->budget_left -= c->n_ins;
        *out = k == MV_INT ? mv_int(x) : k == MV_BOOL ? mv_bool(b) : MV_NONE;
        return 1;
}

int vm_apply1(hyb_mmadt *vm, const mm_code *c, const mm_val *in, mm_val *out)
{
        one_sink o;
        int r;

        /* callers clear *out on every path, failures included */
        *out = MV_NONE;
        if (simple_eval(vm, c, in, out))
                return 0;
        o = (one_sink){{one_fn, NULL}, MV_NONE, {0}};
        r = vm_exec(vm, c, mv_copy(in), &o.s);
        if (r >= 0 && o.vec.n == 0) {
                *out = o.one;
                o.one = MV_NONE;
        } else if (r >= 0) {
                r = pack(&o.vec, out);
        }
        mv_clear(&o.one);
        vec_clear(&o.vec);
        return r;
}

int vm_arg(hyb_mmadt *vm, const mm_code *c, const mm_ins *ins, unsigned i, const mm_val *cur,
           mm_val *out)
{
        const mm_arg *a = &c->args[ins->arg + i];

        if (i >= ins->nargs) {
                *out = MV_NONE;
                return 0;
        }
        if (a->kind == MM_ARG_K) {
                *out = mv_copy(&a->k);
                return 0;
        }
        return vm_apply1(vm, a->code, cur, out);
}

/* An argument applied to in, as a step (a constant arg is used as is). */
int vm_arg_apply(hyb_mmadt *vm, const mm_arg *a, const mm_val *in, mm_val *out)
{
        if (a->kind == MM_ARG_K) {
                *out = mv_copy(&a->k);
                return 0;
        }
        return vm_apply1(vm, a->code, in, out);
}

int vm_apply_obj(hyb_mmadt *vm, const hyb_obj *o, const mm_val *in, mm_sink *s)
{
        mm_val v;
        int r;

        switch (hyb_obj_get_kind(o)) {
        case HYB_OBJ_URI:
                if (!hyb_obj_get_type_id(o))
                        return poly_index_uri(vm, in, hyb_obj_get_uri(o), s);
                break;
        case HYB_OBJ_LST:
        case HYB_OBJ_REC:
                r = poly_apply_obj(vm, o, in, &v);
                if (r < 0)
                        return r;
                return vm_emit(vm, &v, s);
        case HYB_OBJ_CODE: {
                mm_code *c = code_unbox(o);
                size_t n;
                const char *src = obj_code_source(o, &n);
                if (!c && src) /* read back from its text (a store file), which is not code */
                        return vm_fail(vm, HYB_E_PARSE, "stored code '%.*s' cannot be compiled",
                                       n > 60 ? 60 : (int)n, src);
                if (!c)
                        break;
                if (c->kind == MM_CODE_INST)
                        return inst_call(vm, c, NULL, NULL, 0, in, s);
                if (c->n_ins == 1 && c->ins[0].op == OP_LIFT) {
                        /* a lifted obj is unwrapped by whoever applies it */
                        const mm_arg *a = &c->args[c->ins[0].arg];
                        if (a->kind == MM_ARG_K) {
                                v = mv_copy(&a->k);
                                return vm_emit(vm, &v, s);
                        }
                        c = a->code;
                }
                r = depth_enter(vm);
                if (r >= 0)
                        r = vm_exec(vm, c, mv_copy(in), s);
                vm->depth--;
                return r;
        }
        default:
                break;
        }
        v = mv_from(o);
        return vm_emit(vm, &v, s);
}

int vm_apply_obj1(hyb_mmadt *vm, const hyb_obj *o, const mm_val *in, mm_val *out)
{
        mm_vec vec = {0};
        mm_sink s = {collect_fn, &vec};
        int r = vm_apply_obj(vm, o, in, &s);

        if (r >= 0)
                r = pack(&vec, out);
        vec_clear(&vec);
        return r;
}

/* ---- barriers ---- */

static int barrier(hyb_mmadt *vm, const mm_code *c, const mm_ins *ins, mm_vec *buf)
{
        mm_vec out = {0};
        mm_val acc = MV_NONE;
        int r = 0;

        switch (ins->op) {
        case OP_COUNT:
                acc = mv_int((int64_t)buf->n);
                vec_clear(buf);
                return vec_push(vm, buf, &acc);
        case OP_SUM:
        case OP_PROD:
                for (size_t i = 0; r >= 0 && i < buf->n; i++) {
                        mm_val nx;
                        if (i == 0) {
                                acc = mv_copy(&buf->v[0]);
                                continue;
                        }
                        r = arith_binary(vm, ins->op == OP_SUM ? MM_PLUS : MM_MULT, &acc,
                                         &buf->v[i], &nx);
                        if (r >= 0)
                                r = arith_keep_ids(vm, &acc, &nx);
                        mv_clear(&acc);
                        acc = nx;
                }
                vec_clear(buf);
                if (r >= 0)
                        r = vec_push(vm, buf, &acc);
                mv_clear(&acc);
                return r;
        default: {
                /* barrier(code): the code runs over the whole stream at once (its own
                 * barriers see every obj) */
                const mm_arg *a = ins->nargs ? &c->args[ins->arg] : NULL;
                if (!a || a->kind != MM_ARG_CODE)
                        return 0;
                r = vm_exec_vec(vm, a->code, buf, &out);
                vec_clear(buf);
                if (r < 0) {
                        vec_clear(&out);
                        return r;
                }
                *buf = out;
                return 0;
        }
        }
}

/*
 * count/sum/prod fold the stream as it passes (a streaming reduce): the
 * same left fold, in stream order, as barrier() over a collected vector,
 * without holding a million objs in between.
 */
typedef struct fold_sink {
        mm_sink s;
        int op;
        uint64_t n; /* objs folded so far */
        mm_val acc;
} fold_sink;

static int fold_fn(hyb_mmadt *vm, mm_val *v, mm_sink *s)
{
        fold_sink *f = (fold_sink *)s;
        const hyb_obj *o = mv_o(v);
        mm_val nx;
        int r;

        if (o && hyb_obj_get_kind(o) == HYB_OBJ_OBJS && !hyb_obj_get_type_id(o))
                return vm_emit(vm, v, s); /* a stream result is its objs */
        if (mv_is_noobj(v))
                return 0;
        if (f->op == OP_COUNT) {
                f->n++;
                mv_clear(v);
                return 0;
        }
        if (f->n++ == 0) {
                f->acc = *v;
                *v = MV_NONE;
                return 0;
        }
        if (f->acc.k == MV_INT && v->k == MV_INT) {
                /* plain ints: no ids to keep; an overflow takes the slow path's error */
                int64_t z;
                bool ovf = f->op == OP_SUM ? __builtin_add_overflow(f->acc.u.i, v->u.i, &z)
                                           : __builtin_mul_overflow(f->acc.u.i, v->u.i, &z);
                if (!ovf) {
                        f->acc.u.i = z;
                        return 0;
                }
        }
        r = arith_binary(vm, f->op == OP_SUM ? MM_PLUS : MM_MULT, &f->acc, v, &nx);
        if (r >= 0)
                r = arith_keep_ids(vm, &f->acc, &nx);
        mv_clear(&f->acc);
        mv_clear(v);
        f->acc = nx;
        return r;
}

/* Runs c over the stream in (moved out), barriers included. */
static int exec_buf(hyb_mmadt *vm, const mm_code *c, mm_vec *in, mm_sink *s)
{
        mm_vec buf = *in;
        size_t start = 0;
        int r = 0;

        *in = (mm_vec){0};
        for (size_t pc = 0; r >= 0 && pc < c->n_ins; pc++) {
                mm_vec next = {0};
                mm_sink col = {collect_fn, &next};
                int op = c->ins[pc].op;
                const mm_code *def = NULL;
                hyb_obj *hold = NULL;
                if (!mm_ops[op].barrier &&
                    !((op == OP_CALL || op == OP_DEF) &&
                      inst_gathers(vm, c, &c->ins[pc], &def, &hold)))
                        continue;
                if (op == OP_COUNT || op == OP_SUM || op == OP_PROD) {
                        fold_sink f = {{fold_fn, NULL}, op, 0, MV_NONE};
                        for (size_t i = 0; r >= 0 && i < buf.n; i++) {
                                mm_val v = buf.v[i];
                                buf.v[i] = MV_NONE;
                                r = vm_run(vm, c, start, pc, v, &f.s);
                        }
                        vec_clear(&buf);
                        if (op == OP_COUNT)
                                f.acc = mv_int((int64_t)f.n);
                        if (r >= 0)
                                r = vec_push(vm, &buf, &f.acc);
                        mv_clear(&f.acc);
                        start = pc + 1;
                        continue;
                }
                for (size_t i = 0; r >= 0 && i < buf.n; i++) {
                        mm_val v = buf.v[i];
                        buf.v[i] = MV_NONE;
                        r = vm_run(vm, c, start, pc, v, &col);
                }
                vec_clear(&buf);
                buf = next;
                if (r >= 0 && def) {
                        /* a user instruction whose domain coefficient takes a stream */
                        r = inst_call_many(vm, def, c, &c->ins[pc], &buf);
                        if (r < 0)
                                vm_place(vm, c, pc);
                } else if (r >= 0) {
                        r = barrier(vm, c, &c->ins[pc], &buf);
                }
                hyb_obj_unref(hold);
                start = pc + 1;
        }
        for (size_t i = 0; r >= 0 && i < buf.n; i++) {
                mm_val v = buf.v[i];
                buf.v[i] = MV_NONE;
                r = vm_run(vm, c, start, c->n_ins, v, s);
        }
        vec_clear(&buf);
        return r;
}

int vm_exec(hyb_mmadt *vm, const mm_code *c, mm_val in, mm_sink *s)
{
        mm_vec buf = {0};

        /* calls by name are looked at only once some definition takes a stream */
        if (!c->has_barrier &&
            !(c->has_call && atomic_load_explicit(&mm_gathering_defs, memory_order_relaxed)))
                return vm_run(vm, c, 0, c->n_ins, in, s);
        if (grow_array((void **)&buf.v, &buf.alloc, 1, sizeof(mm_val)) < 0) {
                mv_clear(&in);
                return -ENOMEM;
        }
        /* a noobj input still starts the chain (statements start from noobj) */
        buf.v[buf.n++] = in;
        return exec_buf(vm, c, &buf, s);
}

int vm_exec_vec(hyb_mmadt *vm, const mm_code *c, mm_vec *in, mm_vec *out)
{
        mm_sink col = {collect_fn, out};

        return exec_buf(vm, c, in, &col);
}

/* ---- the dispatch loop ---- */

static MM_FAM(op_arith)
{
        return fam_arith(vm, c, ins, cur);
}

static MM_FAM(op_barrier_inline)
{
        /* barriers are run by vm_exec between segments; never reached */
        return vm_fail(vm, HYB_E_INTERNAL, "barrier outside vm_exec");
}

static const mm_fam_fn fam_table[OP__MAX] = {
        [OP_ARITH] = op_arith,
        [OP_NEG] = op_neg,
        [OP_CMP] = op_cmp,
        [OP_ISCMP] = op_iscmp,
        [OP_IS] = op_is,
        [OP_NOT] = op_not,
        [OP_AND] = op_and,
        [OP_OR] = op_or,
        [OP_ISA] = op_isa,
        [OP_MATCH] = op_match,
        [OP_TYPE] = op_type,
        [OP_AS] = op_as,
        [OP_TYPED] = op_typed,
        [OP_COUNT] = op_barrier_inline,
        [OP_SUM] = op_barrier_inline,
        [OP_PROD] = op_barrier_inline,
        [OP_BARRIER] = op_barrier_inline,
        [OP_MERGE] = op_merge,
        [OP_START] = op_start,
        [OP_MAP] = op_map,
        [OP_END] = op_end,
        [OP_ELSE] = op_else,
        [OP_OPTION] = op_option,
        [OP_REPEAT] = op_repeat,
        [OP_GET] = op_get,
        [OP_PRINT] = op_print,
        [OP_SHIFT] = op_shift,
        [OP_SPLICE] = op_splice,
        [OP_FROM] = op_from,
        [OP_TO] = op_to,
        [OP_REF] = op_ref,
        [OP_REFOP] = op_refop,
        [OP_AT] = op_at,
        [OP_BLOCK] = op_block,
        [OP_LIFT] = op_lift,
        [OP_DROP] = op_drop,
        [OP_SPLIT] = op_split,
        [OP_CHOOSE] = op_choose,
        [OP_CHAIN] = op_chain,
        [OP_EACH] = op_each,
        [OP_WITHIN] = op_within,
        [OP_CALL] = op_call,
        [OP_DEF] = op_def,
        [OP_DEFVAL] = op_defval,
        [OP_RES] = op_res,
};

/* The loop reads like Lua's lvm.c, so the formatter leaves it alone. */
/* clang-format off */
int vm_run(hyb_mmadt *vm, const mm_code *c, size_t pc, size_t end, mm_val cur, mm_sink *s)
{
        cont_sink k = { { cont_fn, NULL }, c, 0, end, s };
        mm_val x = MV_NONE;
        int r;

        r = depth_enter(vm);
        for (; r >= 0 && pc < end; pc++) {
                const mm_ins *ins = &c->ins[pc];

                if (_unlikely_(vm->budget_left == 0)) {
                        r = vm_fail(vm, HYB_E_BUDGET, "instruction budget of %llu exhausted",
                                    (unsigned long long)vm->opts.budget);
                        break;
                }
                vm->budget_left--;
                k.pc = pc + 1;
                vmdispatch(ins->op) {
                vmcase(OP_K) {
                        mv_clear(&cur);
                        cur = mv_copy(&c->args[ins->arg].k);
                        vmbreak;
                }
                vmcase(OP_ID) {
                        vmbreak;
                }
                vmcase(OP_ARITH) {
                        /* the hot path: unboxed ints, no allocation */
                        /* plus() without an argument has no args at all: slow path */
                        const mm_arg *a = ins->nargs == 1 ? &c->args[ins->arg] : NULL;
                        if (a && cur.k == MV_INT && a->kind == MM_ARG_K && a->k.k == MV_INT &&
                            !cur.flags) {
                                int64_t y = a->k.u.i, z;
                                bool ovf = false;
                                switch (ins->aux) {
                                case MM_PLUS: ovf = __builtin_add_overflow(cur.u.i, y, &z); break;
                                case MM_MINUS: ovf = __builtin_sub_overflow(cur.u.i, y, &z); break;
                                case MM_MULT: ovf = __builtin_mul_overflow(cur.u.i, y, &z); break;
                                case MM_DIV:
                                case MM_MOD:
                                        if (y == 0 || y == -1)
                                                goto slow_arith;
                                        z = ins->aux == MM_DIV ? cur.u.i / y : cur.u.i % y;
                                        break;
                                default: goto slow_arith;
                                }
                                if (ovf) {
                                        r = vm_fail(vm, HYB_E_OVERFLOW, "integer overflow: %lld %s %lld",
                                                    (long long)cur.u.i,
                                                    ins->aux == MM_PLUS ? "plus" :
                                                    ins->aux == MM_MINUS ? "minus" : "mult",
                                                    (long long)y);
                                        break;
                                }
                                cur.u.i = z;
                                vmbreak;
                        }
slow_arith:
                        r = fam_arith(vm, c, ins, &cur);
                        vmbreak;
                }
                vmcase(OP_ISCMP) {
                        /* a filter on a plain int against an int constant (`?>250000`) */
                        const mm_arg *a = ins->nargs == 1 ? &c->args[ins->arg] : NULL;
                        if (a && cur.k == MV_INT && a->kind == MM_ARG_K &&
                            a->k.k == MV_INT) {
                                if (!int_cmp(ins->aux, cur.u.i, a->k.u.i))
                                        cur = MV_NONE;
                                vmbreak;
                        }
                        r = op_iscmp(vm, c, ins, &cur, &k.s);
                        vmbreak;
                }
                vmcase(OP_IS) {
                        /* `is(mod(3).eq(0))` on a plain int: the predicate without a nested run */
                        const mm_arg *a = ins->nargs == 1 ? &c->args[ins->arg] : NULL;
                        mm_val y;
                        if (a && cur.k == MV_INT && a->kind == MM_ARG_CODE &&
                            simple_eval(vm, a->code, &cur, &y)) {
                                if (!(y.k == MV_BOOL && y.u.b))
                                        cur = MV_NONE;
                                vmbreak;
                        }
                        r = op_is(vm, c, ins, &cur, &k.s);
                        vmbreak;
                }
                vmcase(OP_URI) {
                        const hyb_furi *f = hyb_obj_get_uri(c->args[ins->arg].k.u.o);
                        if (cur.k == MV_OBJ && hyb_obj_get_kind(cur.u.o) == HYB_OBJ_REC &&
                            hyb_furi_get_n_segments(f) == 1 && !hyb_furi_is_absolute(f) &&
                            hyb_furi_get_segment_kind(f, 0) == HYB_SEG_LITERAL) {
                                /* `.b` on a rec: one field or nothing, no continuation needed */
                                size_t len;
                                const char *seg = hyb_furi_get_segment(f, 0, &len);
                                const hyb_obj *v = poly_rec_field(cur.u.o, seg, len);
                                if (!v)
                                        goto done; /* no such field: the obj goes */
                                x = mv_from(v);
                                mv_clear(&cur);
                                cur = x;
                                x = MV_NONE;
                                vmbreak;
                        }
                        r = poly_index_uri(vm, &cur, hyb_obj_get_uri(c->args[ins->arg].k.u.o),
                                           &k.s);
                        goto done;
                }
                vmcase(OP_STREAM) {
                        for (unsigned i = 0; r >= 0 && i < ins->nargs; i++) {
                                const mm_arg *a = &c->args[ins->arg + i];
                                if (a->kind == MM_ARG_K) {
                                        x = mv_copy(&a->k);
                                        r = vm_emit(vm, &x, &k.s);
                                } else {
                                        r = vm_exec(vm, a->code, mv_copy(&cur), &k.s);
                                }
                                mv_clear(&x);
                        }
                        goto done;
                }
                vmcase(OP_RANGE) {
                        mm_val lo = MV_NONE, hi = MV_NONE;
                        int64_t last;
                        r = vm_arg(vm, c, ins, 0, &cur, &lo);
                        if (r >= 0)
                                r = vm_arg(vm, c, ins, 1, &cur, &hi);
                        if (r >= 0 && (mv_kind(&lo) != HYB_OBJ_INT || mv_kind(&hi) != HYB_OBJ_INT))
                                r = vm_fail(vm, HYB_E_TYPE, "a range needs int bounds");
                        last = mv_int_of(&hi);
                        for (int64_t i = mv_int_of(&lo); r >= 0 && i <= last; i++) {
                                if (vm->budget_left == 0) {
                                        r = vm_fail(vm, HYB_E_BUDGET,
                                                    "instruction budget of %llu exhausted",
                                                    (unsigned long long)vm->opts.budget);
                                        break;
                                }
                                vm->budget_left--;
                                x = mv_int(i);
                                r = k.s.fn(vm, &x, &k.s);
                                if (i == INT64_MAX)
                                        break;
                        }
                        mv_clear(&lo);
                        mv_clear(&hi);
                        goto done;
                }
                vmcase(OP_LST)
                vmcase(OP_REC) {
                        r = poly_apply_args(vm, c, ins, &cur, &x);
                        mv_clear(&cur);
                        cur = x;
                        x = MV_NONE;
                        vmbreak;
                }
                default:
                        r = fam_table[ins->op](vm, c, ins, &cur, &k.s);
                        if (r == MM_DONE) {
                                r = 0;
                                goto done;
                        }
                        vmbreak;
                }
                if (r >= 0 && _unlikely_(cur.k == MV_OBJ) &&
                    hyb_obj_get_kind(cur.u.o) == HYB_OBJ_OBJS && !hyb_obj_get_type_id(cur.u.o)) {
                        /* a stream result flows on as separate objs */
                        r = vm_emit(vm, &cur, &k.s);
                        goto done;
                }
        }
        if (r >= 0)
                r = s->fn(vm, &cur, s);
        else if (pc > 0)
                pc--; /* the loop stepped past the failing instruction */
done:
        if (_unlikely_(r < 0) && r != MM_E_STOP)
                vm_place(vm, c, pc);
        mv_clear(&cur);
        vm->depth--;
        return r;
}
/* clang-format on */
