/* SPDX-License-Identifier: MIT */
/*
 * The mm-ADT parser: hand-written recursive descent, one function per rule,
 * emitting bytecode as it goes (compile.c).  `.` chains with no operator
 * precedence; every sugar binds one step unless parenthesised.
 */
#include <stdio.h>

#include "parser.h"

int parse_next(mm_parser *P)
{
        return lex_next(&P->ls, &P->tk);
}

int parse_error(mm_parser *P, const char *fmt, const char *what)
{
        return lex_error(&P->ls, P->tk.off, fmt, what);
}

const char *parse_tk_name(const mm_token *t)
{
        static const char *names[] = {
                [TK_EOF] = "end of input", [TK_RPAREN] = "')'",   [TK_RBRACK] = "']'",
                [TK_RBRACE] = "'}'",       [TK_COMMA] = "','",    [TK_ARROW] = "'=>'",
                [TK_DOTDOT] = "'..'",      [TK_WCLOSE] = "'\\_'", [TK_BCLOSE] = "'[_'",
                [TK_SEMI] = "';'",         [TK_DOT] = "'.'",      [TK_LPAREN] = "'('",
                [TK_LBRACK] = "'['",       [TK_LBRACE] = "'{'",   [TK_SIG] = "'<='",
        };
        return t->t < (int)ELEMENTSOF(names) && names[t->t] ? names[t->t] : "token";
}

int parse_expect(mm_parser *P, int t, const char *what)
{
        if (P->tk.t != t)
                return lex_error(&P->ls, P->tk.off, "expected %s, found %s", what,
                                 parse_tk_name(&P->tk));
        return parse_next(P);
}

/* Does the current token end a chain? */
bool parse_chain_end(int t)
{
        return t == TK_EOF || t == TK_SEMI || t == TK_RPAREN || t == TK_RBRACK || t == TK_RBRACE ||
               t == TK_COMMA || t == TK_ARROW || t == TK_DOTDOT || t == TK_WCLOSE ||
               t == TK_BCLOSE || t == TK_SIG;
}

/* Tokens that start a sugar step, so they chain without a `.`. */
static bool sugar_start(int t)
{
        switch (t) {
        case TK_PLUS:
        case TK_MULT:
        case TK_STAR:
        case TK_REF:
        case TK_PASS:
        case TK_REFOP:
        case TK_AT:
        case TK_BAR:
        case TK_LIFT:
        case TK_DROP:
        case TK_SPLIT:
        case TK_CHOOSE:
        case TK_CHAIN:
        case TK_MERGE:
        case TK_EACH:
        case TK_WOPEN:
        case TK_BOPEN:
        case TK_ISA:
        case TK_ISCMP:
        case TK_LSHIFT:
        case TK_RSHIFT:
        case TK_MATCH:
                return true;
        default:
                return false;
        }
}

/* operand ::= step   (compiled on its own, then a constant or nested code) */
int parse_operand(mm_parser *P, mm_arg *a)
{
        mm_code *sub = code_new(MM_CODE_CHAIN);
        int r;

        if (!sub)
                return -ENOMEM;
        r = parse_step(P, sub);
        if (r < 0) {
                code_unref(sub);
                return r;
        }
        compile_to_arg(sub, a);
        return 0;
}

/* chain_arg ::= chain   (as an argument) */
int parse_chain_arg(mm_parser *P, mm_arg *a)
{
        mm_code *sub = code_new(MM_CODE_CHAIN);
        int r;

        if (!sub)
                return -ENOMEM;
        r = parse_chain(P, sub);
        if (r < 0) {
                code_unref(sub);
                return r;
        }
        if (sub->n_ins == 0) {
                code_unref(sub);
                return parse_error(P, "expected an obj, found %s", parse_tk_name(&P->tk));
        }
        compile_to_arg(sub, a);
        return 0;
}

void parse_args_free(mm_arg *args, size_t n)
{
        for (size_t i = 0; i < n; i++)
                arg_clear(&args[i]);
        free(args);
}

int parse_args_push(mm_arg **args, size_t *n, size_t *alloc, mm_arg *a)
{
        if (grow_array((void **)args, alloc, *n + 1, sizeof(mm_arg)) < 0) {
                arg_clear(a);
                return -ENOMEM;
        }
        (*args)[(*n)++] = *a;
        return 0;
}

/* The key obj of a parsed `key =>`: a constant, or code (a pattern). */
int parse_arg_to_key(mm_arg *a, hyb_obj **ret)
{
        int r;

        if (a->kind == MM_ARG_K)
                r = mv_box(&a->k, ret);
        else
                r = code_box(a->code, ret);
        arg_clear(a);
        return r;
}

/*
 * keyed ::= chain [ '=>' chain ]
 * One argument or poly element; with `=>` the first chain becomes a->key.
 * On error nothing is left to free in *a.
 */
static int parse_keyed_arg(mm_parser *P, mm_arg *a)
{
        hyb_obj *key = NULL;
        int r;

        r = parse_chain_arg(P, a);
        if (r < 0 || P->tk.t != TK_ARROW)
                return r;
        r = parse_arg_to_key(a, &key);
        if (r >= 0)
                r = parse_next(P);
        if (r >= 0)
                r = parse_chain_arg(P, a);
        if (r < 0) {
                hyb_obj_unref(key);
                return r;
        }
        a->key = key;
        return 0;
}

/*
 * args ::= '(' [ arg { ',' arg } ] ')'
 * arg  ::= [ key '=>' ] chain
 * (the current token is the '(')
 */
int parse_arglist(mm_parser *P, mm_arg **ret, size_t *ret_n)
{
        mm_arg *args = NULL, a;
        size_t n = 0, alloc = 0;
        int r;

        r = parse_next(P);
        while (r >= 0 && P->tk.t != TK_RPAREN) {
                r = parse_keyed_arg(P, &a);
                if (r < 0)
                        break;
                r = parse_args_push(&args, &n, &alloc, &a);
                if (r >= 0 && P->tk.t == TK_COMMA)
                        r = parse_next(P);
                else if (r >= 0 && P->tk.t != TK_RPAREN)
                        r = parse_error(P, "expected ',' or ')' in arguments, found %s",
                                        parse_tk_name(&P->tk));
        }
        if (r >= 0)
                r = parse_next(P);
        if (r < 0) {
                parse_args_free(args, n);
                return r;
        }
        *ret = args;
        *ret_n = n;
        return 0;
}

/* body ::= '[' chain ']'  (the current token is the '[') */
int parse_body(mm_parser *P, mm_code **ret)
{
        mm_code *b = code_new(MM_CODE_CHAIN);
        int r;

        if (!b)
                return -ENOMEM;
        r = parse_next(P);
        if (r >= 0)
                r = parse_chain(P, b);
        if (r >= 0)
                r = parse_expect(P, TK_RBRACK, "']' after an instruction body");
        if (r < 0) {
                code_unref(b);
                return r;
        }
        *ret = b;
        return 0;
}

/*
 * poly ::= '[' ']' | '[' '=>' ']' | '[' elem { ',' elem } ']'
 * elem ::= chain [ '=>' chain ]
 */
static int poly(mm_parser *P, mm_code *c)
{
        mm_arg *elems = NULL, a;
        size_t n = 0, alloc = 0;
        int r, keyed = -1;

        r = parse_next(P);
        if (r >= 0 && P->tk.t == TK_ARROW) {
                r = parse_next(P);
                if (r >= 0)
                        r = parse_expect(P, TK_RBRACK, "']' after '[=>'");
                return r < 0 ? r : compile_poly(c, true, NULL, 0);
        }
        while (r >= 0 && P->tk.t != TK_RBRACK) {
                bool has_key;
                r = parse_keyed_arg(P, &a);
                if (r < 0)
                        break;
                has_key = a.key != NULL;
                if (keyed >= 0 && keyed != has_key) {
                        arg_clear(&a);
                        r = parse_error(P, "mixed lst and rec elements before %s",
                                        parse_tk_name(&P->tk));
                        break;
                }
                keyed = has_key;
                r = parse_args_push(&elems, &n, &alloc, &a);
                if (r >= 0 && P->tk.t == TK_COMMA)
                        r = parse_next(P);
                else if (r >= 0 && P->tk.t != TK_RBRACK)
                        r = parse_error(P, "expected ',' or ']' in a poly, found %s",
                                        parse_tk_name(&P->tk));
        }
        if (r >= 0)
                r = parse_next(P);
        if (r < 0) {
                parse_args_free(elems, n);
                return r;
        }
        r = compile_poly(c, keyed == 1, elems, n);
        free(elems);
        return r;
}

/* stream ::= '{' '}' | '{' chain '..' chain '}' | '{' chain { ',' chain } '}' */
static int stream(mm_parser *P, mm_code *c)
{
        mm_arg *elems = NULL, a;
        size_t n = 0, alloc = 0;
        int r;

        r = parse_next(P);
        while (r >= 0 && P->tk.t != TK_RBRACE) {
                r = parse_chain_arg(P, &a);
                if (r < 0)
                        break;
                r = parse_args_push(&elems, &n, &alloc, &a);
                if (r >= 0 && n == 1 && P->tk.t == TK_DOTDOT) {
                        r = parse_next(P);
                        if (r >= 0)
                                r = parse_chain_arg(P, &a);
                        if (r >= 0)
                                r = parse_args_push(&elems, &n, &alloc, &a);
                        if (r >= 0)
                                r = parse_expect(P, TK_RBRACE, "'}' after a range");
                        if (r < 0)
                                break;
                        r = code_emit(c, OP_RANGE, 0, elems, n);
                        free(elems);
                        return r;
                }
                if (r >= 0 && P->tk.t == TK_COMMA)
                        r = parse_next(P);
                else if (r >= 0 && P->tk.t != TK_RBRACE)
                        r = parse_error(P, "expected ',' or '}' in a stream, found %s",
                                        parse_tk_name(&P->tk));
        }
        if (r >= 0)
                r = parse_next(P);
        if (r < 0) {
                parse_args_free(elems, n);
                return r;
        }
        r = code_emit(c, OP_STREAM, 0, elems, n);
        free(elems);
        return r;
}

/* Emits op with one operand step. */
static int unary(mm_parser *P, mm_code *c, int op, int aux)
{
        mm_arg a;
        int r = parse_next(P);

        if (r >= 0 && parse_chain_end(P->tk.t))
                return parse_error(P, "expected an obj after a sugar, found %s",
                                   parse_tk_name(&P->tk));
        if (r >= 0)
                r = parse_operand(P, &a);
        return r < 0 ? r : code_emit(c, op, aux, &a, 1);
}

/* Emits op around a chain closed by the token close. */
static int bracketed(mm_parser *P, mm_code *c, int op, int close, const char *what)
{
        mm_code *sub = code_new(MM_CODE_CHAIN);
        mm_arg a;
        int r;

        if (!sub)
                return -ENOMEM;
        r = parse_next(P);
        if (r >= 0)
                r = parse_chain(P, sub);
        if (r >= 0)
                r = parse_expect(P, close, what);
        if (r >= 0 && sub->n_ins == 0)
                r = code_emit(sub, OP_ID, 0, NULL, 0);
        if (r < 0) {
                code_unref(sub);
                return r;
        }
        a = (mm_arg){.kind = MM_ARG_CODE, .code = sub};
        return code_emit(c, op, 0, &a, 1);
}

/*
 * step ::= INT | REAL | STR | '_' | uristep | group | poly | stream
 *        | '+' step | 'x' step | '*' ( step | '(' chain ',' chain ')' )
 *        | ( '->' | '-->' | '<-' | '@' ) step
 *        | ( '|' | '^' | 'V' ) step
 *        | ( '-<' | '-|' | '-:' | '==' | '=' ) step
 *        | '>-' | '>' INT '-'
 *        | '_/' chain '\_' | '_]' chain '[_'
 *        | '?' step | ( '?=' | '?!=' | '?>' | '?>=' | '?<' | '?<=' ) step
 *        | ( '<<' | '>>' | '~' ) step
 */
int parse_step(mm_parser *P, mm_code *c)
{
        int r;

        if (++P->nest > MAX_NEST) {
                if (P->err)
                        err_set(P->err, HYB_E_DEPTH, (long)(P->ls.base + P->tk.off),
                                "program nested deeper than %d", MAX_NEST);
                return HYB_E_DEPTH;
        }
        switch (P->tk.t) {
        case TK_INT:
                r = compile_const(c, mv_int(P->tk.i), false);
                if (r >= 0)
                        r = parse_next(P);
                break;
        case TK_REAL:
                r = compile_const(c, mv_real(P->tk.r), false);
                if (r >= 0)
                        r = parse_next(P);
                break;
        case TK_STR:
                if (strstr(P->tk.s, "{{")) {
                        r = parse_splice(P, c, P->tk.s, P->tk.slen, P->tk.off + 1, false);
                } else {
                        hyb_obj *o = NULL;
                        r = hyb_obj_new_str(P->tk.s, P->tk.slen, &o);
                        if (r >= 0)
                                r = compile_const(c, mv_obj(o), false);
                }
                if (r >= 0)
                        r = parse_next(P);
                break;
        case TK_URI:
        case TK_BURI:
                r = parse_uristep(P, c);
                break;
        case TK_ID:
                r = code_emit(c, OP_ID, 0, NULL, 0);
                if (r >= 0)
                        r = parse_next(P);
                break;
        case TK_LPAREN:
                r = parse_group(P, c);
                break;
        case TK_LBRACK:
                r = poly(P, c);
                break;
        case TK_LBRACE:
                r = stream(P, c);
                break;
        case TK_PLUS:
                r = unary(P, c, OP_ARITH, MM_PLUS);
                break;
        case TK_MULT:
                r = unary(P, c, OP_ARITH, MM_MULT);
                break;
        case TK_STAR:
                r = parse_next(P);
                if (r >= 0 && P->tk.t == TK_LPAREN && !P->tk.space_before) {
                        mm_arg a[2] = {0};
                        r = parse_next(P);
                        if (r >= 0)
                                r = parse_chain_arg(P, &a[0]);
                        if (r >= 0 && P->tk.t == TK_COMMA) {
                                r = parse_next(P);
                                if (r >= 0)
                                        r = parse_chain_arg(P, &a[1]);
                                if (r >= 0)
                                        r = parse_expect(P, TK_RPAREN, "')' after *(uri,default)");
                                if (r >= 0)
                                        r = code_emit(c, OP_FROM, 0, a, 2);
                                else {
                                        arg_clear(&a[0]);
                                        arg_clear(&a[1]);
                                }
                        } else if (r >= 0) {
                                r = parse_expect(P, TK_RPAREN, "')'");
                                if (r >= 0)
                                        r = code_emit(c, OP_FROM, 0, a, 1);
                                else
                                        arg_clear(&a[0]);
                        }
                } else if (r >= 0) {
                        mm_arg a;
                        if (parse_chain_end(P->tk.t))
                                r = parse_error(P, "expected a uri after '*', found %s",
                                                parse_tk_name(&P->tk));
                        if (r >= 0)
                                r = parse_operand(P, &a);
                        if (r >= 0)
                                r = code_emit(c, OP_FROM, 0, &a, 1);
                }
                break;
        case TK_REF:
                r = unary(P, c, OP_REF, 0);
                break;
        case TK_PASS:
                r = unary(P, c, OP_REF, 1);
                break;
        case TK_REFOP:
                r = unary(P, c, OP_REFOP, 0);
                break;
        case TK_AT:
                r = unary(P, c, OP_AT, 0);
                break;
        case TK_BAR:
                r = unary(P, c, OP_BLOCK, 0);
                break;
        case TK_LIFT:
                r = unary(P, c, OP_LIFT, 0);
                break;
        case TK_DROP:
                r = unary(P, c, OP_DROP, 0);
                break;
        case TK_SPLIT:
                r = unary(P, c, OP_SPLIT, 0);
                break;
        case TK_CHOOSE:
                r = unary(P, c, OP_CHOOSE, 0);
                break;
        case TK_CHAIN:
                r = unary(P, c, OP_CHAIN, 0);
                break;
        case TK_EACH:
                r = unary(P, c, OP_EACH, 0);
                break;
        case TK_ISA:
                r = parse_isa_or_sig(P, c);
                break;
        case TK_ISCMP:
                r = unary(P, c, OP_ISCMP, (int)P->tk.i);
                break;
        case TK_LSHIFT:
                r = unary(P, c, OP_SHIFT, 0);
                break;
        case TK_RSHIFT:
                r = unary(P, c, OP_SHIFT, 1);
                break;
        case TK_MATCH:
                r = unary(P, c, OP_MATCH, 0);
                break;
        case TK_MERGE:
                r = code_emit(c, OP_MERGE, (int)P->tk.i, NULL, 0);
                if (r >= 0)
                        r = parse_next(P);
                break;
        case TK_WOPEN:
                r = bracketed(P, c, OP_WITHIN, TK_WCLOSE, "'\\_' closing '_/'");
                break;
        case TK_BOPEN:
                r = bracketed(P, c, OP_BARRIER, TK_BCLOSE, "'[_' closing '_]'");
                break;
        default:
                r = parse_error(P, "unexpected %s", parse_tk_name(&P->tk));
                break;
        }
        P->nest--;
        return r;
}

/* A step, noting its source offset on the instructions it emitted (for runtime errors). */
static int step_at(mm_parser *P, mm_code *c)
{
        size_t before = c->n_ins;
        uint32_t off = (uint32_t)(P->ls.base + P->tk.off);
        int r = parse_step(P, c);

        if (r < 0 || !P->src_id || c->n_ins == before)
                return r;
        if (c->src_id != P->src_id) {
                /* a code takes offsets from one text only */
                if (c->src_id)
                        return r;
                c->src_id = P->src_id;
        }
        if (grow_array((void **)&c->pos, &c->alloc_pos, c->n_ins, sizeof(uint32_t)) < 0)
                return -ENOMEM;
        for (size_t i = c->n_pos; i < c->n_ins; i++)
                c->pos[i] = i < before ? UINT32_MAX : off;
        c->n_pos = c->n_ins;
        return r;
}

/* chain ::= [ step { '.' step | sugar } ] */
int parse_chain(mm_parser *P, mm_code *c)
{
        int r;

        if (parse_chain_end(P->tk.t))
                return 0;
        r = step_at(P, c);
        while (r >= 0) {
                if (P->tk.t == TK_DOT) {
                        r = parse_next(P);
                        if (r >= 0 && parse_chain_end(P->tk.t))
                                r = parse_error(P, "expected a step after '.', found %s",
                                                parse_tk_name(&P->tk));
                        if (r >= 0)
                                r = step_at(P, c);
                } else if (sugar_start(P->tk.t)) {
                        r = step_at(P, c);
                } else if (parse_chain_end(P->tk.t)) {
                        break;
                } else {
                        r = parse_error(P, "unexpected %s (missing '.'?)",
                                        P->tk.s ? P->tk.s : parse_tk_name(&P->tk));
                }
        }
        return r;
}

/* program ::= statement { ( ';' | NEWLINE ) statement } */
int mm_parse(hyb_mmadt *vm, const char *text, size_t len, mm_code ***ret_stmts, size_t *ret_n,
             hyb_error *reterr)
{
        static atomic_uint texts;
        mm_parser P = {.vm = vm, .err = reterr};
        mm_code **stmts = NULL, *c = NULL;
        size_t n = 0, alloc = 0;
        int r;

        lex_init(&P.ls, text, len, text, 0, reterr);
        /* offsets fit 32 bits; a longer text just reports statement lines without columns */
        if (len < UINT32_MAX)
                while (!(P.src_id = atomic_fetch_add(&texts, 1) + 1))
                        ;
        r = parse_next(&P);
        while (r >= 0 && P.tk.t != TK_EOF) {
                c = code_new(MM_CODE_CHAIN);
                if (!c) {
                        r = -ENOMEM;
                        break;
                }
                r = parse_chain(&P, c);
                if (r >= 0 && P.tk.t != TK_SEMI && P.tk.t != TK_EOF)
                        r = parse_error(&P, "unexpected %s", parse_tk_name(&P.tk));
                if (r >= 0 && P.tk.t == TK_SEMI) {
                        /* `;` (not a newline) ends a statement whose results are dropped */
                        c->silent = P.ls.src[P.tk.off] == ';';
                        r = parse_next(&P);
                }
                if (r < 0)
                        break;
                if (c->n_ins == 0) {
                        c = code_unref(c);
                        continue;
                }
                r = grow_array((void **)&stmts, &alloc, n + 1, sizeof(*stmts));
                if (r < 0)
                        break;
                stmts[n++] = TAKE_PTR(c);
        }
        code_unref(c);
        tok_clear(&P.tk);
        if (r < 0) {
                for (size_t i = 0; i < n; i++)
                        code_unref(stmts[i]);
                free(stmts);
                if (reterr && !reterr->code)
                        err_set(reterr, r, -1, "%s", hyb_strerror(r));
                return r;
        }
        *ret_stmts = stmts;
        *ret_n = n;
        return 0;
}
