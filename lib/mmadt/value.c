/* SPDX-License-Identifier: MIT */
/*
 * Register values and code objs.
 *
 *   mm_val  +---+-------+---------------------------+
 *           | k | flags | i / r / b   |  hyb_obj *o |
 *           +---+-------+---------------------------+
 *
 * Plain ints, reals and bools stay unboxed so arithmetic on the hot path
 * allocates nothing; anything with a type id or a value id, and every other
 * kind, is a referenced hyb_obj.  Compiled code becomes an obj through the
 * HYB_OBJ_CODE hook of lib/obj (obj_code_ops), which prints it desugared.
 */
#include <stdio.h>

#include "mmadt-internal.h"

mm_val mv_obj(hyb_obj *o)
{
        mm_val v = MV_NONE;

        if (!o)
                return v;
        if (!hyb_obj_get_type_id(o) && !hyb_obj_get_value_id(o)) {
                switch (hyb_obj_get_kind(o)) {
                case HYB_OBJ_NOOBJ:
                        hyb_obj_unref(o);
                        return v;
                case HYB_OBJ_BOOL:
                        v = mv_bool(hyb_obj_get_bool(o));
                        hyb_obj_unref(o);
                        return v;
                case HYB_OBJ_INT:
                        v = mv_int(hyb_obj_get_int(o));
                        hyb_obj_unref(o);
                        return v;
                case HYB_OBJ_REAL:
                        v = mv_real(hyb_obj_get_real(o));
                        hyb_obj_unref(o);
                        return v;
                default:
                        break;
                }
        }
        v.k = MV_OBJ;
        v.u.o = o;
        return v;
}

mm_val mv_from(const hyb_obj *o)
{
        return mv_obj(hyb_obj_ref(o));
}

mm_val mv_copy(const mm_val *v)
{
        mm_val c = *v;

        if (c.k == MV_OBJ)
                hyb_obj_ref(c.u.o);
        return c;
}

void mv_clear(mm_val *v)
{
        if (v->k == MV_OBJ)
                hyb_obj_unref(v->u.o);
        *v = MV_NONE;
}

int mv_box(const mm_val *v, hyb_obj **ret)
{
        switch (v->k) {
        case MV_NOOBJ:
                *ret = hyb_obj_noobj();
                return 0;
        case MV_BOOL:
                *ret = hyb_obj_bool(v->u.b);
                return 0;
        case MV_INT:
                return hyb_obj_new_int(v->u.i, ret);
        case MV_REAL:
                return hyb_obj_new_real(v->u.r, ret);
        default:
                *ret = hyb_obj_ref(v->u.o);
                return 0;
        }
}

hyb_obj_kind mv_kind(const mm_val *v)
{
        switch (v->k) {
        case MV_NOOBJ:
                return HYB_OBJ_NOOBJ;
        case MV_BOOL:
                return HYB_OBJ_BOOL;
        case MV_INT:
                return HYB_OBJ_INT;
        case MV_REAL:
                return HYB_OBJ_REAL;
        default:
                return hyb_obj_get_kind(v->u.o);
        }
}

int64_t mv_int_of(const mm_val *v)
{
        return v->k == MV_INT ? v->u.i : v->k == MV_OBJ ? hyb_obj_get_int(v->u.o) : 0;
}

double mv_real_of(const mm_val *v)
{
        return v->k == MV_REAL ? v->u.r : v->k == MV_OBJ ? hyb_obj_get_real(v->u.o) : 0.0;
}

bool mv_bool_of(const mm_val *v)
{
        return v->k == MV_BOOL ? v->u.b : v->k == MV_OBJ ? hyb_obj_get_bool(v->u.o) : false;
}

const hyb_furi *mv_type_id(const mm_val *v)
{
        return v->k == MV_OBJ ? hyb_obj_get_type_id(v->u.o) : NULL;
}

const hyb_furi *mv_value_id(const mm_val *v)
{
        return v->k == MV_OBJ ? hyb_obj_get_value_id(v->u.o) : NULL;
}

bool mv_equal(const mm_val *a, const mm_val *b)
{
        hyb_obj *x = NULL, *y = NULL;
        bool eq;

        if (a->k != MV_OBJ && a->k == b->k) {
                switch (a->k) {
                case MV_NOOBJ:
                        return true;
                case MV_BOOL:
                        return a->u.b == b->u.b;
                case MV_INT:
                        return a->u.i == b->u.i;
                default:
                        return a->u.r == b->u.r;
                }
        }
        if (mv_box(a, &x) < 0 || mv_box(b, &y) < 0) {
                hyb_obj_unref(x);
                return false;
        }
        eq = hyb_obj_equal(x, y);
        hyb_obj_unref(x);
        hyb_obj_unref(y);
        return eq;
}

char *mv_text(const mm_val *v)
{
        hyb_obj *o = NULL;
        char *s = NULL;

        if (mv_box(v, &o) < 0 || hyb_obj_format(o, HYB_FORMAT_REPL, &s) < 0)
                s = NULL;
        hyb_obj_unref(o);
        return s ? s : strdup("?");
}

/* ---- code ---- */

mm_code *code_new(int kind)
{
        mm_code *c = calloc(1, sizeof(*c));

        if (!c)
                return NULL;
        atomic_init(&c->n_ref, 1);
        c->kind = kind;
        c->rcoef = c->dcoef = (mm_coef){1, 1};
        return c;
}

mm_code *code_ref(mm_code *c)
{
        if (c)
                atomic_fetch_add(&c->n_ref, 1);
        return c;
}

void arg_clear(mm_arg *a)
{
        a->key = hyb_obj_unref(a->key);
        mv_clear(&a->k);
        a->code = code_unref(a->code);
        a->quoted = hyb_obj_unref(a->quoted);
}

mm_code *code_unref(mm_code *c)
{
        if (!c || atomic_fetch_sub(&c->n_ref, 1) != 1)
                return NULL;
        for (size_t i = 0; i < c->n_args; i++)
                arg_clear(&c->args[i]);
        free(c->args);
        free(c->ins);
        free(c->pos);
        hyb_obj_unref(c->name);
        hyb_obj_unref(c->range);
        hyb_obj_unref(c->domain);
        code_unref(c->params);
        code_unref(c->body);
        free(c);
        return NULL;
}

int code_emit(mm_code *c, int op, int aux, mm_arg *args, size_t n)
{
        mm_ins *ins;

        if (n > UINT16_MAX ||
            grow_array((void **)&c->ins, &c->alloc_ins, c->n_ins + 1, sizeof(mm_ins)) < 0 ||
            grow_array((void **)&c->args, &c->alloc_args, c->n_args + n, sizeof(mm_arg)) < 0) {
                for (size_t i = 0; i < n; i++)
                        arg_clear(&args[i]);
                return -ENOMEM;
        }
        ins = &c->ins[c->n_ins];
        ins->op = op;
        ins->aux = aux;
        ins->nargs = n;
        ins->arg = c->n_args;
        for (size_t i = 0; i < n; i++) {
                c->args[c->n_args++] = args[i];
                args[i] = (mm_arg){0};
        }
        if (mm_ops[op].barrier)
                c->has_barrier = true;
        /* an inline definition whose domain takes a stream is a barrier; a call by name is
         * resolved when the chain starts (inst_gathers) */
        if (op == OP_DEF && n && c->args[ins->arg].kind == MM_ARG_CODE &&
            inst_coef_gathers(&c->args[ins->arg].code->dcoef))
                c->has_barrier = true;
        if (op == OP_CALL)
                c->has_call = true;
        c->simple = (c->n_ins == 0 || c->simple) && c->kind == MM_CODE_CHAIN &&
                    ((n == 1 && (op == OP_ARITH || op == OP_CMP || op == OP_ISCMP)) ||
                     (n == 0 && op == OP_ID));
        return c->n_ins++;
}

/* ---- the HYB_OBJ_CODE hook ---- */

static int code_obj_format(const hyb_obj *o, unsigned flags, obj_buf *b)
{
        code_format(obj_code_data(o), flags, b);
        return 0;
}

static char *code_text(const hyb_obj *o)
{
        obj_buf b = {0};

        code_format(obj_code_data(o), HYB_FORMAT_EXACT | OBJ_FORMAT_IN_CODE, &b);
        obj_buf_putc(&b, '\0');
        if (b.err) {
                free(b.data);
                return NULL;
        }
        return b.data;
}

static bool code_obj_equal(const hyb_obj *a, const hyb_obj *b)
{
        char *x, *y;
        bool eq;

        if (obj_code_data(a) == obj_code_data(b))
                return true;
        x = code_text(a);
        y = code_text(b);
        eq = x && y && strcmp(x, y) == 0;
        free(x);
        free(y);
        return eq;
}

static uint64_t code_obj_hash(const hyb_obj *o)
{
        char *t = code_text(o);
        /* the hash of the text, as a source code obj read back from it hashes (obj-code.c) */
        uint64_t h = obj_code_text_hash(t ? t : "", t ? strlen(t) : 0);

        free(t);
        return h;
}

static void code_obj_free(void *data)
{
        code_unref(data);
}

static const obj_code_ops code_ops = {
        .name = "mmadt",
        .format = code_obj_format,
        .equal = code_obj_equal,
        .compare = NULL,
        .hash = code_obj_hash,
        .free = code_obj_free,
};

int code_box(mm_code *c, hyb_obj **ret)
{
        return obj_new_code(&code_ops, code_ref(c), ret);
}

/*
 * Code read back from its text (a store file, hyb_obj_parse of `|(source)`): lib/obj keeps
 * the source, and the first use here compiles it the way the code was printed, one
 * statement, where an instruction definition stands for the instruction it defines (as
 * quote_code in mmadt-poly.c boxes it).  The result is cached in the source obj.
 */
int code_build(const char *text, size_t len, hyb_obj **ret)
{
        mm_code **stmts = NULL, *c;
        size_t n = 0;
        int r = mm_parse(NULL, text, len, &stmts, &n, NULL);

        if (r < 0)
                return r;
        if (n != 1) {
                r = HYB_E_PARSE;
                goto out;
        }
        c = stmts[0];
        if (c->kind == MM_CODE_CHAIN && c->n_ins == 1 &&
            (c->ins[0].op == OP_DEF || c->ins[0].op == OP_DEFVAL) &&
            c->args[c->ins[0].arg].kind == MM_ARG_CODE)
                c = c->args[c->ins[0].arg].code;
        r = code_box(c, ret);
out:
        for (size_t i = 0; i < n; i++)
                code_unref(stmts[i]);
        free(stmts);
        return r;
}

mm_code *code_unbox(const hyb_obj *o)
{
        const hyb_obj *built;
        const char *text;
        size_t len;

        if (!o || hyb_obj_get_kind(o) != HYB_OBJ_CODE)
                return NULL;
        if (obj_code_get_ops(o) == &code_ops)
                return obj_code_data(o);
        text = obj_code_source(o, &len);
        if (!text)
                return NULL;
        built = obj_code_source_built(o);
        if (!built) {
                hyb_obj *b = NULL;
                if (code_build(text, len, &b) < 0)
                        return NULL;
                built = obj_code_source_set_built(o, b);
        }
        return code_unbox(built);
}
