/* SPDX-License-Identifier: MIT */
/*
 * Code generation: the parser (parser.c) calls these to emit instructions
 * straight into an mm_code, as Lua's lparser drives lcode.  Constant polys
 * fold into one K, constant arguments are stored inline (no nested code),
 * and builtin names bind to their opcode at compile time.
 */
#include "compile.h"

const mm_opinfo mm_ops[OP__MAX] = {
#define MM_X_INFO(op, nm, q, b) [OP_##op] = {.name = nm, .quoted = q, .barrier = b},
        MM_OPCODES(MM_X_INFO)
#undef MM_X_INFO
};

static const mm_builtin builtins[] = {
        {"plus", OP_ARITH, MM_PLUS},
        {"minus", OP_ARITH, MM_MINUS},
        {"mult", OP_ARITH, MM_MULT},
        {"div", OP_ARITH, MM_DIV},
        {"mod", OP_ARITH, MM_MOD},
        {"neg", OP_NEG, 0},
        {"eq", OP_CMP, MM_EQ},
        {"neq", OP_CMP, MM_NEQ},
        {"gt", OP_CMP, MM_GT},
        {"gte", OP_CMP, MM_GTE},
        {"lt", OP_CMP, MM_LT},
        {"lte", OP_CMP, MM_LTE},
        {"is", OP_IS, 0},
        {"not", OP_NOT, 0},
        {"and", OP_AND, 0},
        {"or", OP_OR, 0},
        {"isa", OP_ISA, 0},
        {"match", OP_MATCH, 0},
        {"type", OP_TYPE, 0},
        {"as", OP_AS, 0},
        {"count", OP_COUNT, 0},
        {"sum", OP_SUM, 0},
        {"prod", OP_PROD, 0},
        {"barrier", OP_BARRIER, 0},
        {"merge", OP_MERGE, 0},
        {"start", OP_START, 0},
        {"map", OP_MAP, 0},
        {"end", OP_END, 0},
        {"else", OP_ELSE, 0},
        {"option", OP_OPTION, 0},
        {"repeat", OP_REPEAT, 0},
        {"get", OP_GET, 0},
        {"print", OP_PRINT, 0},
        {"lshift", OP_SHIFT, 0},
        {"rshift", OP_SHIFT, 1},
        {"from", OP_FROM, 0},
        {"to", OP_TO, 0},
        {"ref", OP_REF, 0},
        {"pass", OP_REF, 1},
        {"ref_op", OP_REFOP, 0},
        {"at", OP_AT, 0},
        {"block", OP_BLOCK, 0},
        {"lift", OP_LIFT, 0},
        {"drop", OP_DROP, 0},
        {"split", OP_SPLIT, 0},
        {"choose", OP_CHOOSE, 0},
        {"chain", OP_CHAIN, 0},
        {"each", OP_EACH, 0},
        {"within", OP_WITHIN, 0},
};

const mm_builtin *compile_builtin(const char *name, size_t len)
{
        for (size_t i = 0; i < ELEMENTSOF(builtins); i++)
                if (strlen(builtins[i].name) == len && memcmp(builtins[i].name, name, len) == 0)
                        return &builtins[i];
        return NULL;
}

int compile_const(mm_code *c, mm_val v, bool uri_step)
{
        mm_arg a = {.kind = MM_ARG_K, .k = v};

        return code_emit(c, uri_step && mv_kind(&v) == HYB_OBJ_URI ? OP_URI : OP_K, 0, &a, 1);
}

void compile_to_arg(mm_code *sub, mm_arg *a)
{
        *a = (mm_arg){0};
        if (sub->n_ins == 1 && (sub->ins[0].op == OP_K || sub->ins[0].op == OP_URI) &&
            sub->ins[0].nargs == 1 && sub->args[sub->ins[0].arg].kind == MM_ARG_K) {
                mm_arg *k = &sub->args[sub->ins[0].arg];
                a->kind = MM_ARG_K;
                a->k = k->k;
                k->k = MV_NONE;
                code_unref(sub);
                return;
        }
        a->kind = MM_ARG_CODE;
        a->code = sub;
}

/* Carries sub's instruction offsets over to the copies appended to c at first.. */
static int append_pos(mm_code *c, const mm_code *sub, size_t first)
{
        if (!sub->src_id || (c->src_id && c->src_id != sub->src_id))
                return 0;
        if (grow_array((void **)&c->pos, &c->alloc_pos, c->n_ins, sizeof(uint32_t)) < 0)
                return -ENOMEM;
        c->src_id = sub->src_id;
        for (size_t i = c->n_pos; i < c->n_ins; i++)
                c->pos[i] = i >= first && i - first < sub->n_pos ? sub->pos[i - first]
                                                                 : UINT32_MAX;
        c->n_pos = c->n_ins;
        return 0;
}

int compile_append(mm_code *c, const mm_code *sub)
{
        size_t first = c->n_ins;

        for (size_t i = 0; i < sub->n_ins; i++) {
                const mm_ins *in = &sub->ins[i];
                mm_arg *args = calloc(in->nargs ? in->nargs : 1, sizeof(mm_arg));
                int r;

                if (!args)
                        return -ENOMEM;
                for (unsigned j = 0; j < in->nargs; j++) {
                        const mm_arg *s = &sub->args[in->arg + j];
                        args[j] = (mm_arg){.key = hyb_obj_ref(s->key),
                                           .kind = s->kind,
                                           .k = mv_copy(&s->k),
                                           .code = code_ref(s->code)};
                }
                r = code_emit(c, in->op, in->aux, args, in->nargs);
                free(args);
                if (r < 0)
                        return r;
        }
        return append_pos(c, sub, first);
}

bool compile_arg_is_plain(const mm_arg *a)
{
        hyb_obj_kind k;

        if (a->kind != MM_ARG_K)
                return false;
        k = mv_kind(&a->k);
        return k != HYB_OBJ_URI && k != HYB_OBJ_CODE;
}

/* Is a a constant that applies as itself to anything (so the poly can fold)? */
static bool foldable(const mm_arg *a)
{
        hyb_obj_kind k;

        if (a->kind != MM_ARG_K)
                return false;
        k = mv_kind(&a->k);
        /* a constant argument is used as is (a uri does not index), so a poly of
         * constants is itself a constant; code and streams are not */
        return k != HYB_OBJ_CODE && k != HYB_OBJ_OBJS;
}

int compile_poly(mm_code *c, bool rec, mm_arg *args, size_t n)
{
        hyb_obj *o = NULL;
        bool fold = true;
        int r;

        for (size_t i = 0; i < n && fold; i++)
                fold = foldable(&args[i]) && (!rec || args[i].key);
        if (!fold)
                return code_emit(c, rec ? OP_REC : OP_LST, 0, args, n);
        r = rec ? obj_rec_builder(n, &o) : obj_lst_builder(HYB_OBJ_LST, n, &o);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                hyb_obj *v = NULL;
                r = mv_box(&args[i].k, &v);
                if (r < 0)
                        break;
                r = rec ? obj_rec_set(o, hyb_obj_ref(args[i].key), v) : obj_lst_append(o, v);
        }
        for (size_t i = 0; i < n; i++)
                arg_clear(&args[i]);
        if (r < 0) {
                hyb_obj_unref(o);
                return r;
        }
        return compile_const(c, mv_obj(o), false);
}
