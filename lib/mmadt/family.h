/* SPDX-License-Identifier: MIT */
/*
 * The instruction families: one function per opcode, called from the
 * dispatch loop (vm.c) through fam_table.  Each gets the code, the
 * instruction, the register cur (rewritten in place) and the continuation
 * sink of the rest of the chain; it returns 0 (go on with cur), MM_DONE
 * (it emitted its results into rest itself) or an error.
 */
#ifndef HYB_MMADT_FAMILY_H
#define HYB_MMADT_FAMILY_H

#include "mmadt-internal.h"

#define MM_DONE 1
/* A callback asked to stop the run (its value is in vm->stop). */
#define MM_E_STOP (-(HYB_E_BASE + 1999))

typedef struct mm_vec {
        mm_val *v;
        size_t n, alloc;
} mm_vec;

int vec_push(hyb_mmadt *vm, mm_vec *vec, mm_val *v);
void vec_clear(mm_vec *vec);
int vec_to_objs(mm_vec *vec, bool lst, hyb_obj **ret);
int vm_collect(hyb_mmadt *vm, const mm_code *c, const mm_val *in, mm_vec *out);
/* Runs c over the stream in (moved out), collecting into out. */
int vm_exec_vec(hyb_mmadt *vm, const mm_code *c, mm_vec *in, mm_vec *out);
/* Whether instruction ins of c (OP_CALL or OP_DEF) calls a gathering definition: 1 and *def
 * (kept alive by *hold, which the caller unrefs), 0 (a per-obj call), never < 0: a lookup
 * failure is reported when the call runs. */
int inst_gathers(hyb_mmadt *vm, const mm_code *c, const mm_ins *ins, const mm_code **def,
                 hyb_obj **hold);
/* Calls the gathering def of ins once on the whole stream buf (noobjs already dropped);
 * buf is replaced by the results. */
int inst_call_many(hyb_mmadt *vm, const mm_code *def, const mm_code *c, const mm_ins *ins,
                   mm_vec *buf);
/* A rec value by key (uri keys by address, ignoring a `?type` query), or NULL. */
const hyb_obj *poly_rec_get(const hyb_obj *rec, const hyb_obj *key);
/* The value of rec o under the key a one-segment relative uri `seg` names (the first match of
 * a uri, str or int key), or NULL. */
const hyb_obj *poly_rec_field(const hyb_obj *o, const char *seg, size_t len);
/* Indexes cur with f, collecting every match. */
int poly_index_collect(hyb_mmadt *vm, const mm_val *cur, const hyb_furi *f, mm_vec *out);
int vm_arg_apply(hyb_mmadt *vm, const mm_arg *a, const mm_val *in, mm_val *out);

int poly_apply_args(hyb_mmadt *vm, const mm_code *c, const mm_ins *ins, const mm_val *cur,
                    mm_val *out);
int poly_apply_obj(hyb_mmadt *vm, const hyb_obj *poly, const mm_val *cur, mm_val *out);
/* The quoted form of argument i: a poly of code objs for a poly literal, a code obj, or the
 * constant. */
int poly_quote(hyb_mmadt *vm, const mm_code *c, const mm_ins *ins, unsigned i, const mm_val *cur,
               hyb_obj **ret);

typedef int (*mm_fam_fn)(hyb_mmadt *vm, const mm_code *c, const mm_ins *ins, mm_val *cur,
                         mm_sink *rest);
#define MM_FAM(name)                                                                               \
        int name(hyb_mmadt *vm, const mm_code *c, const mm_ins *ins, mm_val *cur, mm_sink *rest)

int fam_arith(hyb_mmadt *vm, const mm_code *c, const mm_ins *ins, mm_val *cur);
MM_FAM(op_neg);
MM_FAM(op_cmp);
MM_FAM(op_iscmp);
MM_FAM(op_is);
MM_FAM(op_not);
MM_FAM(op_and);
MM_FAM(op_or);
MM_FAM(op_match);
MM_FAM(op_isa);
MM_FAM(op_type);
MM_FAM(op_as);
MM_FAM(op_typed);
MM_FAM(op_merge);
MM_FAM(op_start);
MM_FAM(op_map);
MM_FAM(op_end);
MM_FAM(op_else);
MM_FAM(op_option);
MM_FAM(op_repeat);
MM_FAM(op_get);
MM_FAM(op_print);
MM_FAM(op_shift);
MM_FAM(op_splice);
MM_FAM(op_split);
MM_FAM(op_choose);
MM_FAM(op_chain);
MM_FAM(op_each);
MM_FAM(op_within);
MM_FAM(op_block);
MM_FAM(op_drop);
MM_FAM(op_lift);
MM_FAM(op_from);
MM_FAM(op_to);
MM_FAM(op_ref);
MM_FAM(op_refop);
MM_FAM(op_at);
MM_FAM(op_call);
MM_FAM(op_def);
MM_FAM(op_defval);
MM_FAM(op_res);

#endif
