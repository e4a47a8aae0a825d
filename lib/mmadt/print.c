/* SPDX-License-Identifier: MIT */
/*
 * Code prints desugared: every instruction by its name and arguments, joined
 * by `.` (`|plus(1)` prints `plus(1)`, `^x` prints `lift(x)`, `*a` prints
 * `from(a)`), so what the REPL shows is also valid input.
 */
#include <inttypes.h>

#include "mmadt-internal.h"

static const char *arith_names[] = {"plus", "minus", "mult", "div", "mod"};
static const char *cmp_names[] = {"eq", "neq", "gt", "gte", "lt", "lte"};

static void val_format(const mm_val *v, unsigned flags, obj_buf *b)
{
        hyb_obj *o = NULL;

        if (mv_box(v, &o) < 0) {
                b->err = -ENOMEM;
                return;
        }
        obj_format_to(o, flags, b);
        hyb_obj_unref(o);
}

static void arg_format(const mm_arg *a, unsigned flags, obj_buf *b)
{
        if (a->key) {
                obj_format_to(a->key, flags, b);
                obj_buf_puts(b, "=>");
        }
        if (a->kind == MM_ARG_CODE)
                code_format(a->code, flags, b);
        else
                val_format(&a->k, flags, b);
}

static void args_format(const mm_code *c, const mm_ins *ins, unsigned from, unsigned flags,
                        obj_buf *b)
{
        for (unsigned i = from; i < ins->nargs; i++) {
                if (i > from)
                        obj_buf_putc(b, ',');
                arg_format(&c->args[ins->arg + i], flags, b);
        }
}

static void coef_format(const mm_coef *k, obj_buf *b)
{
        if (k->min == 1 && k->max == 1)
                return;
        if (k->min == 0 && k->max == 1)
                obj_buf_puts(b, "{?}");
        else if (k->min == 0 && k->max < 0)
                obj_buf_puts(b, "{*}");
        else if (k->min == 1 && k->max < 0)
                obj_buf_puts(b, "{+}");
        else if (k->min == k->max)
                obj_buf_printf(b, "{%" PRId64 "}", k->min);
        else
                obj_buf_printf(b, "{%" PRId64 ",%" PRId64 "}", k->min, k->max);
}

static void inst_format(const mm_code *d, unsigned flags, obj_buf *b)
{
        if (d->name)
                obj_format_to(d->name, flags, b);
        if (d->range || d->domain) {
                obj_buf_putc(b, '?');
                if (d->range)
                        obj_format_to(d->range, flags, b);
                coef_format(&d->rcoef, b);
                obj_buf_puts(b, "<=");
                if (d->domain)
                        obj_format_to(d->domain, flags, b);
                coef_format(&d->dcoef, b);
        }
        obj_buf_putc(b, '(');
        if (d->params && d->params->n_ins)
                args_format(d->params, &d->params->ins[0], 0, flags, b);
        obj_buf_puts(b, ")[");
        if (d->body)
                code_format(d->body, flags, b);
        obj_buf_putc(b, ']');
}

static void ins_format(const mm_code *c, const mm_ins *ins, unsigned flags, obj_buf *b)
{
        const mm_arg *a = ins->nargs ? &c->args[ins->arg] : NULL;

        switch (ins->op) {
        case OP_K:
        case OP_URI:
                arg_format(a, flags, b);
                return;
        case OP_ID:
                obj_buf_putc(b, '_');
                return;
        case OP_LST:
                obj_buf_putc(b, '[');
                args_format(c, ins, 0, flags, b);
                obj_buf_putc(b, ']');
                return;
        case OP_REC:
                obj_buf_putc(b, '[');
                if (!ins->nargs)
                        obj_buf_puts(b, "=>");
                args_format(c, ins, 0, flags, b);
                obj_buf_putc(b, ']');
                return;
        case OP_STREAM:
                obj_buf_putc(b, '{');
                args_format(c, ins, 0, flags, b);
                obj_buf_putc(b, '}');
                return;
        case OP_RANGE:
                obj_buf_putc(b, '{');
                arg_format(&a[0], flags, b);
                obj_buf_puts(b, "..");
                arg_format(&a[1], flags, b);
                obj_buf_putc(b, '}');
                return;
        case OP_SPLICE: {
                bool str = ins->aux == 0;
                obj_buf_puts(b, str ? "'" : "<");
                for (unsigned i = 0; i < ins->nargs; i++) {
                        if (a[i].kind == MM_ARG_CODE) {
                                obj_buf_puts(b, "{{");
                                code_format(a[i].code, flags, b);
                                obj_buf_puts(b, "}}");
                        } else {
                                obj_buf_puts(b, hyb_obj_get_str(a[i].k.u.o, NULL));
                        }
                }
                obj_buf_puts(b, str ? "'" : ">");
                return;
        }
        case OP_ARITH:
                obj_buf_puts(b, arith_names[ins->aux]);
                break;
        case OP_CMP:
                obj_buf_puts(b, cmp_names[ins->aux]);
                break;
        case OP_ISCMP:
                obj_buf_printf(b, "is(%s(", cmp_names[ins->aux]);
                args_format(c, ins, 0, flags, b);
                obj_buf_puts(b, "))");
                return;
        case OP_SHIFT:
                obj_buf_puts(b, ins->aux ? "rshift" : "lshift");
                break;
        case OP_REF:
                obj_buf_puts(b, ins->aux ? "pass" : "ref");
                break;
        case OP_MERGE:
                obj_buf_puts(b, "merge(");
                if (ins->aux)
                        obj_buf_printf(b, "%d", ins->aux - 1);
                obj_buf_putc(b, ')');
                return;
        case OP_TYPED:
                arg_format(&a[0], flags, b);
                obj_buf_putc(b, '[');
                arg_format(&a[1], flags, b);
                obj_buf_putc(b, ']');
                return;
        case OP_CALL:
                arg_format(&a[0], flags, b);
                obj_buf_putc(b, '(');
                args_format(c, ins, 1, flags, b);
                obj_buf_putc(b, ')');
                return;
        case OP_RES:
                arg_format(&a[0], flags, b);
                obj_buf_puts(b, "::");
                arg_format(&a[1], flags, b);
                obj_buf_putc(b, '(');
                args_format(c, ins, 2, flags, b);
                obj_buf_putc(b, ')');
                return;
        case OP_DEF:
        case OP_DEFVAL:
                inst_format(a[0].code, flags, b);
                return;
        default:
                obj_buf_puts(b, mm_ops[ins->op].name);
                break;
        }
        obj_buf_putc(b, '(');
        args_format(c, ins, 0, flags, b);
        obj_buf_putc(b, ')');
}

void code_format(const mm_code *c, unsigned flags, obj_buf *b)
{
        if (!c) {
                obj_buf_putc(b, '_');
                return;
        }
        if (c->kind == MM_CODE_INST) {
                inst_format(c, flags, b);
                return;
        }
        if (c->n_ins == 0)
                obj_buf_putc(b, '_');
        for (size_t i = 0; i < c->n_ins; i++) {
                if (i)
                        obj_buf_putc(b, '.');
                ins_format(c, &c->ins[i], flags, b);
        }
}
