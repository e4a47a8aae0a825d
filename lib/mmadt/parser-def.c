/* SPDX-License-Identifier: MIT */
/*
 * Parser rules for uris and definitions: calls `f(args)`, typed values
 * `T[v]`, `res::name(args)`, instruction definitions with signatures
 * `name?range{c}<=domain{c}(params)[body]` (named, inline or anonymous), and
 * `{{code}}` splices in str and uri literals.
 */
#include <math.h>
#include <stdio.h>

#include "parser.h"

/* Builds the definition obj's code: name?range{c}<=domain{c}(params)[body]. */
static int make_def(mm_code **ret, hyb_obj *name, hyb_obj *range, hyb_obj *domain, mm_coef rc,
                    mm_coef dc, mm_arg *params, size_t np, mm_code *b)
{
        mm_code *d = code_new(MM_CODE_INST), *pc = code_new(MM_CODE_CHAIN);
        int r;

        if (!d || !pc) {
                code_unref(d);
                code_unref(pc);
                parse_args_free(params, np);
                hyb_obj_unref(name);
                hyb_obj_unref(range);
                hyb_obj_unref(domain);
                code_unref(b);
                return -ENOMEM;
        }
        d->name = name;
        d->range = range;
        d->domain = domain;
        d->rcoef = rc;
        d->dcoef = dc;
        if (inst_coef_gathers(&dc))
                atomic_fetch_add_explicit(&mm_gathering_defs, 1, memory_order_relaxed);
        d->body = b;
        d->params = pc;
        r = code_emit(pc, OP_REC, 0, params, np);
        free(params);
        if (r < 0) {
                code_unref(d);
                return r;
        }
        *ret = d;
        return 0;
}

/* Emits a definition: applied at once (OP_DEF) or as a value (OP_DEFVAL). */
static int emit_def(mm_code *c, mm_code *d, bool apply)
{
        mm_arg a = {.kind = MM_ARG_CODE, .code = d};

        return code_emit(c, apply ? OP_DEF : OP_DEFVAL, 0, &a, 1);
}

/* coef ::= '{' ( '?' | '*' | '+' | int [ ',' int ] ) '}'  (raw text right after a type) */
static bool try_coef(mm_parser *P, mm_coef *k)
{
        mm_lexer *ls = &P->ls;
        size_t p;
        const char *s = ls->src;
        long long a = 0, b;

        if (P->tk.t != TK_LBRACE || P->tk.space_before)
                return false;
        p = P->tk.off + 1;
        if (p + 1 < ls->len && strchr("?*+", s[p]) && s[p + 1] == '}') {
                *k = s[p] == '?'   ? (mm_coef){0, 1}
                     : s[p] == '*' ? (mm_coef){0, -1}
                                   : (mm_coef){1, -1};
                p += 2;
        } else {
                if (p >= ls->len || s[p] < '0' || s[p] > '9')
                        return false;
                while (p < ls->len && s[p] >= '0' && s[p] <= '9' && a < 1000000)
                        a = a * 10 + (s[p++] - '0');
                b = a;
                if (p < ls->len && s[p] == ',') {
                        p++;
                        b = 0;
                        if (p >= ls->len || s[p] < '0' || s[p] > '9')
                                return false;
                        while (p < ls->len && s[p] >= '0' && s[p] <= '9' && b < 1000000)
                                b = b * 10 + (s[p++] - '0');
                }
                if (p >= ls->len || s[p] != '}')
                        return false;
                p++;
                /* `{3,1}` reads as a coefficient that nothing satisfies: refused by sigdef */
                *k = (mm_coef){a, b};
        }
        /* the `{` was pushed as a bracket: leave it */
        ls->pos = p;
        ls->depth = P->tk.depth;
        return true;
}

/* Past a coefficient, refusing one that nothing satisfies (`{3,1}`). */
static int coef_next(mm_parser *P, const mm_coef *k)
{
        if (k->max >= 0 && k->max < k->min)
                return parse_error(P, "invalid %s (its maximum is below its minimum)",
                                   "coefficient");
        return parse_next(P);
}

/* A type name token as a uri obj (or NULL with an error). */
static int type_name(mm_parser *P, hyb_obj **ret)
{
        hyb_error e;
        int r;

        if (P->tk.t != TK_URI && P->tk.t != TK_BURI)
                return parse_error(P, "expected a type name, found %s", parse_tk_name(&P->tk));
        r = hyb_obj_new_uri_str(P->tk.s, ret, &e);
        if (r < 0)
                return lex_error(&P->ls, P->tk.off, "invalid type uri '%s'", P->tk.s);
        return parse_next(P);
}

/*
 * sigdef ::= name '?' range [coef] '<=' domain [coef] args body
 * (called with the current token after the name?range uri)
 */
static int sigdef(mm_parser *P, mm_code *c, hyb_furi *f, bool apply)
{
        hyb_obj *name = NULL, *range = NULL, *domain = NULL;
        mm_coef rc = {1, 1}, dc = {1, 1};
        mm_arg *params = NULL;
        size_t np = 0;
        mm_code *b = NULL, *d;
        hyb_furi *bare = NULL;
        int r;

        r = hyb_furi_strip_query(f, &bare);
        if (r >= 0 && hyb_furi_get_n_segments(bare) > 0)
                r = hyb_obj_new_uri(bare, &name);
        hyb_furi_unref(bare);
        if (r >= 0)
                r = hyb_obj_new_uri_str(hyb_furi_get_query(f), &range, NULL);
        if (r < 0)
                goto fail;
        if (try_coef(P, &rc))
                r = coef_next(P, &rc);
        if (r >= 0 && P->tk.t == TK_SIG) {
                r = parse_next(P);
                if (r >= 0)
                        r = type_name(P, &domain);
                if (r >= 0 && try_coef(P, &dc))
                        r = coef_next(P, &dc);
        }
        if (r < 0)
                goto fail;
        if (P->tk.t != TK_LPAREN) {
                r = parse_error(P, "expected '(' after an instruction signature, found %s",
                                parse_tk_name(&P->tk));
                goto fail;
        }
        r = parse_arglist(P, &params, &np);
        if (r < 0)
                goto fail;
        if (P->tk.t != TK_LBRACK || P->tk.space_before) {
                parse_args_free(params, np);
                r = parse_error(P, "expected '[' body after an instruction signature, found %s",
                                parse_tk_name(&P->tk));
                goto fail;
        }
        r = parse_body(P, &b);
        if (r < 0) {
                parse_args_free(params, np);
                goto fail;
        }
        r = make_def(&d, name, range, domain, rc, dc, params, np, b);
        if (r < 0)
                return r;
        return emit_def(c, d, apply);
fail:
        hyb_obj_unref(name);
        hyb_obj_unref(range);
        hyb_obj_unref(domain);
        return r;
}

/* Splits a text with {{code}} splices into constant and code parts (SPLICE). */
int parse_splice(mm_parser *P, mm_code *c, const char *s, size_t n, size_t src_off, bool uri)
{
        mm_arg *parts = NULL, a;
        size_t np = 0, alloc = 0, i = 0, lit = 0;
        int r = 0;

        while (r >= 0 && i <= n) {
                if (i == n || (s[i] == '{' && i + 1 < n && s[i + 1] == '{')) {
                        if (i > lit) {
                                hyb_obj *o = NULL;
                                r = hyb_obj_new_str(s + lit, i - lit, &o);
                                if (r < 0)
                                        break;
                                a = (mm_arg){.kind = MM_ARG_K, .k = mv_obj(o)};
                                r = parse_args_push(&parts, &np, &alloc, &a);
                        }
                        if (i == n || r < 0)
                                break;
                        {
                                size_t j = i + 2, depth = 1;
                                mm_parser sub = {.vm = P->vm, .err = P->err, .nest = P->nest + 1,
                                                 .src_id = P->src_id};
                                mm_code *code;
                                while (j + 1 < n && depth) {
                                        if (s[j] == '{' && s[j + 1] == '{') {
                                                depth++;
                                                j += 2;
                                        } else if (s[j] == '}' && s[j + 1] == '}') {
                                                if (--depth == 0)
                                                        break;
                                                j += 2;
                                        } else {
                                                j++;
                                        }
                                }
                                if (depth) {
                                        r = lex_error(&P->ls, P->tk.off, "unterminated %s",
                                                      "{{ splice");
                                        break;
                                }
                                code = code_new(MM_CODE_CHAIN);
                                if (!code) {
                                        r = -ENOMEM;
                                        break;
                                }
                                lex_init(&sub.ls, s + i + 2, j - i - 2, P->ls.whole,
                                         src_off + i + 2, P->err);
                                r = parse_next(&sub);
                                if (r >= 0)
                                        r = parse_chain(&sub, code);
                                if (r >= 0 && sub.tk.t != TK_EOF)
                                        r = parse_error(&sub, "unexpected %s in {{ splice",
                                                        parse_tk_name(&sub.tk));
                                tok_clear(&sub.tk);
                                if (r < 0) {
                                        code_unref(code);
                                        break;
                                }
                                a = (mm_arg){.kind = MM_ARG_CODE, .code = code};
                                r = parse_args_push(&parts, &np, &alloc, &a);
                                i = lit = j + 2;
                        }
                } else {
                        i++;
                }
        }
        if (r < 0) {
                parse_args_free(parts, np);
                return r;
        }
        r = code_emit(c, OP_SPLICE, uri, parts, np);
        free(parts);
        return r;
}

/* Scans raw text from pos (just after a '(') to its ')'; returns the offset after it. */
static size_t scan_close(const mm_lexer *ls, size_t pos)
{
        int depth = 1;
        char q = 0;

        for (; pos < ls->len; pos++) {
                char ch = ls->src[pos];
                if (q) {
                        if (ch == '\\')
                                pos++;
                        else if (ch == q)
                                q = 0;
                } else if (ch == '\'') {
                        q = ch;
                } else if (ch == '(' || ch == '[' || ch == '{') {
                        depth++;
                } else if (ch == ')' || ch == ']' || ch == '}') {
                        if (--depth == 0)
                                return pos + 1;
                }
        }
        return ls->len;
}

/*
 * uristep ::= uri                           index / constant
 *           | uri args [ body ]             call, or inline definition
 *           | uri '[' chain ']'             typed value T[v]
 *           | uri '?' range sig args body   definition with a signature
 *           | res '::' name args            instruction of a resource
 */
int parse_uristep(mm_parser *P, mm_code *c)
{
        hyb_furi *f = NULL;
        hyb_obj *uo = NULL;
        hyb_error e;
        char *text = P->tk.s;
        size_t off = P->tk.off;
        bool bracketed = P->tk.t == TK_BURI;
        const char *dc;
        int r;

        P->tk.s = NULL;
        if (!bracketed && (strcmp(text, "true") == 0 || strcmp(text, "false") == 0)) {
                bool b = text[0] == 't';
                free(text);
                r = parse_next(P);
                return r < 0 ? r : compile_const(c, mv_bool(b), false);
        }
        if (!bracketed && (strcmp(text, "nan") == 0 || strcmp(text, "inf") == 0)) {
                /* reals print `nan`, `inf`, `-inf`: read them back (`-inf` is lexed whole) */
                double d = text[0] == 'n' ? NAN : INFINITY;
                free(text);
                r = parse_next(P);
                return r < 0 ? r : compile_const(c, mv_real(d), false);
        }
        if (!bracketed && strcmp(text, "noobj") == 0) {
                free(text);
                r = parse_next(P);
                return r < 0 ? r : compile_const(c, MV_NONE, false);
        }
        if (strstr(text, "{{")) {
                r = parse_splice(P, c, text, strlen(text), off + (bracketed ? 1 : 0), true);
                free(text);
                return r < 0 ? r : parse_next(P);
        }
        dc = bracketed ? NULL : strstr(text, "::");
        if (dc) {
                mm_arg head[2] = {0}, *args = NULL, *all;
                size_t n = 0;
                hyb_obj *res = NULL, *nm = NULL;
                r = dc == text ? -EINVAL
                               : hyb_obj_new_uri_str(strndupa(text, dc - text), &res, NULL);
                if (r >= 0)
                        r = hyb_obj_new_str(dc + 2, (size_t)-1, &nm);
                free(text);
                if (r < 0) {
                        hyb_obj_unref(res);
                        return lex_error(&P->ls, off, "invalid resource %s", "before '::'");
                }
                head[0] = (mm_arg){.kind = MM_ARG_K, .k = mv_obj(res)};
                head[1] = (mm_arg){.kind = MM_ARG_K, .k = mv_obj(nm)};
                r = parse_next(P);
                if (r >= 0 && P->tk.t == TK_LPAREN && !P->tk.space_before)
                        r = parse_arglist(P, &args, &n);
                if (r < 0) {
                        arg_clear(&head[0]);
                        arg_clear(&head[1]);
                        return r;
                }
                all = calloc(n + 2, sizeof(mm_arg));
                if (!all) {
                        arg_clear(&head[0]);
                        arg_clear(&head[1]);
                        parse_args_free(args, n);
                        return -ENOMEM;
                }
                all[0] = head[0];
                all[1] = head[1];
                if (n)
                        memcpy(all + 2, args, n * sizeof(mm_arg));
                free(args);
                r = code_emit(c, OP_RES, 0, all, n + 2);
                free(all);
                return r;
        }
        r = hyb_furi_parse(text, (size_t)-1, NULL, &f, &e);
        if (r < 0) {
                r = lex_error(&P->ls, off, "invalid uri '%s'", text);
                free(text);
                return r;
        }
        free(text);
        r = parse_next(P);
        if (r < 0)
                goto out;
        if (hyb_furi_get_query(f) &&
            (P->tk.t == TK_SIG || (P->tk.t == TK_LBRACE && !P->tk.space_before))) {
                r = sigdef(P, c, f, true);
                goto out;
        }
        r = hyb_obj_new_uri(f, &uo);
        if (r < 0)
                goto out;
        if (P->tk.t == TK_LPAREN && !P->tk.space_before) {
                mm_arg *args = NULL, *all;
                size_t n = 0;
                const mm_builtin *bi = NULL;
                const char *name = hyb_furi_get_str(f);

                if (!hyb_furi_get_query(f))
                        bi = compile_builtin(name, strlen(name));
                r = parse_arglist(P, &args, &n);
                if (r < 0)
                        goto out;
                if (P->tk.t == TK_LBRACK && !P->tk.space_before) {
                        /* name(params)[body]: an inline definition, applied at once */
                        mm_code *b, *d;
                        r = parse_body(P, &b);
                        if (r < 0) {
                                parse_args_free(args, n);
                                goto out;
                        }
                        r = make_def(&d, TAKE_PTR(uo), NULL, NULL, (mm_coef){1, 1}, (mm_coef){1, 1},
                                     args, n, b);
                        if (r >= 0)
                                r = emit_def(c, d, true);
                        goto out;
                }
                if (bi) {
                        int aux = bi->aux;
                        if (bi->op == OP_MERGE && n == 1 && compile_arg_is_plain(&args[0]) &&
                            mv_kind(&args[0].k) == HYB_OBJ_INT) {
                                int64_t m = mv_int_of(&args[0].k);
                                aux = m >= 0 && m < 250 ? (int)m + 1 : 0;
                                parse_args_free(args, n);
                                args = NULL;
                                n = 0;
                        }
                        r = code_emit(c, bi->op, aux, args, n);
                        free(args);
                        goto out;
                }
                all = calloc(n + 1, sizeof(mm_arg));
                if (!all) {
                        parse_args_free(args, n);
                        r = -ENOMEM;
                        goto out;
                }
                all[0] = (mm_arg){.kind = MM_ARG_K, .k = mv_obj(TAKE_PTR(uo))};
                if (n)
                        memcpy(all + 1, args, n * sizeof(mm_arg));
                free(args);
                r = code_emit(c, OP_CALL, 0, all, n + 1);
                free(all);
                goto out;
        }
        if (P->tk.t == TK_LBRACK && !P->tk.space_before) {
                /* T[v] */
                mm_arg a[2] = {{.kind = MM_ARG_K, .k = mv_obj(TAKE_PTR(uo))}};
                r = parse_next(P);
                if (r >= 0)
                        r = parse_chain_arg(P, &a[1]);
                if (r >= 0)
                        r = parse_expect(P, TK_RBRACK, "']' after a typed value");
                if (r < 0) {
                        arg_clear(&a[0]);
                        arg_clear(&a[1]);
                        goto out;
                }
                r = code_emit(c, OP_TYPED, 0, a, 2);
                goto out;
        }
        r = compile_const(c, mv_obj(TAKE_PTR(uo)), true);
out:
        hyb_obj_unref(uo);
        hyb_furi_unref(f);
        return r;
}

/* group ::= '(' chain ')' | '(' args ')' body   (an anonymous definition) */
int parse_group(mm_parser *P, mm_code *c)
{
        size_t after = scan_close(&P->ls, P->ls.pos);
        mm_code *sub;
        int r;

        if (after < P->ls.len && P->ls.src[after] == '[') {
                mm_arg *params = NULL;
                size_t np = 0;
                mm_code *b, *d;
                r = parse_arglist(P, &params, &np);
                if (r < 0)
                        return r;
                if (P->tk.t != TK_LBRACK) {
                        parse_args_free(params, np);
                        return parse_error(P, "expected '[' body, found %s", parse_tk_name(&P->tk));
                }
                r = parse_body(P, &b);
                if (r < 0) {
                        parse_args_free(params, np);
                        return r;
                }
                r = make_def(&d, NULL, NULL, NULL, (mm_coef){1, 1}, (mm_coef){1, 1}, params, np, b);
                return r < 0 ? r : emit_def(c, d, true);
        }
        sub = code_new(MM_CODE_CHAIN);
        if (!sub)
                return -ENOMEM;
        r = parse_next(P);
        if (r >= 0)
                r = parse_chain(P, sub);
        if (r >= 0)
                r = parse_expect(P, TK_RPAREN, "')'");
        if (r >= 0 && sub->n_ins == 0)
                r = code_emit(sub, OP_ID, 0, NULL, 0);
        if (r >= 0)
                r = compile_append(c, sub);
        code_unref(sub);
        return r;
}

/* Does a signature (`{coef}` then `<=`) follow the current token in the raw text? */
static bool sig_follows(const mm_parser *P)
{
        const char *s = P->ls.src;
        size_t p = P->tk.end, n = P->ls.len;

        if (p < n && s[p] == '{') {
                while (p < n && s[p] != '}')
                        p++;
                p++;
        }
        return p + 1 < n && s[p] == '<' && s[p + 1] == '=';
}

/* '?' step (isa), or '?' range [coef] '<=' domain args body: an anonymous definition */
int parse_isa_or_sig(mm_parser *P, mm_code *c)
{
        mm_arg a;
        int r = parse_next(P);

        if (r >= 0 && P->tk.t == TK_URI && !strchr(P->tk.s, '?') && sig_follows(P)) {
                hyb_furi *f = NULL;
                char *q = NULL;
                if (asprintf(&q, "?%s", P->tk.s) < 0)
                        return -ENOMEM;
                r = hyb_furi_parse(q, (size_t)-1, NULL, &f, NULL);
                free(q);
                if (r < 0)
                        return parse_error(P, "invalid range type %s", P->tk.s);
                r = parse_next(P);
                if (r >= 0)
                        r = sigdef(P, c, f, true);
                hyb_furi_unref(f);
                return r;
        }
        if (r >= 0 && parse_chain_end(P->tk.t))
                return parse_error(P, "expected a type after '?', found %s", parse_tk_name(&P->tk));
        if (r >= 0)
                r = parse_operand(P, &a);
        return r < 0 ? r : code_emit(c, OP_ISA, 0, &a, 1);
}
