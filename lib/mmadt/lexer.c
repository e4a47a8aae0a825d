/* SPDX-License-Identifier: MIT */
/*
 * The mm-ADT lexer.  Context matters in three places, all decided here:
 *  - `x` followed by white space or a digit is mult (`3x2`, `[x 2]`), else a uri;
 *  - `_]` opens a barrier unless the innermost open bracket is `[` (`[1,_]`),
 *    and `[_` closes one only when a barrier is the innermost open bracket;
 *  - a newline outside every bracket ends a statement.
 * Bare uris: letters, digits (not first), `_ / : % + # ~`, never starting
 * with `+`, `_/` or `_]`; `?` starts the query; `{{code}}` splices are kept
 * in the text for the parser.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>

#include "lexer.h"

void lex_init(mm_lexer *ls, const char *src, size_t len, const char *whole, size_t base,
              hyb_error *err)
{
        *ls = (mm_lexer){.src = src, .len = len, .whole = whole, .base = base, .err = err};
}

void tok_clear(mm_token *t)
{
        free(t->s);
        *t = (mm_token){0};
}

int lex_error(mm_lexer *ls, size_t off, const char *fmt, ...)
{
        size_t abs = ls->base + off;
        int line = 1, col = 1;
        char msg[200];
        va_list ap;

        for (size_t i = 0; i < abs; i++) {
                if (ls->whole[i] == '\n') {
                        line++;
                        col = 1;
                } else {
                        col++;
                }
        }
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (ls->err && ls->err->code)
                return ls->err->code;
        return err_set_at(ls->err, HYB_E_PARSE, (long)abs, line, col, "%s at line %d column %d",
                          msg, line, col);
}

bool lex_uri_char(char c)
{
        return c && (isalnum((unsigned char)c) || strchr("_/:%+#~", c) || (unsigned char)c >= 0x80);
}

static bool uri_start(char c)
{
        return c && (isalpha((unsigned char)c) || strchr("_/:%#~", c) || (unsigned char)c >= 0x80);
}

static char peekc(const mm_lexer *ls, size_t k)
{
        return ls->pos + k < ls->len ? ls->src[ls->pos + k] : '\0';
}

static int push(mm_lexer *ls, char c)
{
        if (ls->depth >= LEX_MAX_DEPTH) {
                if (ls->err)
                        err_set(ls->err, HYB_E_DEPTH, (long)(ls->base + ls->pos),
                                "brackets nested deeper than %d", LEX_MAX_DEPTH);
                return HYB_E_DEPTH;
        }
        ls->stack[ls->depth++] = c;
        return 0;
}

static void pop(mm_lexer *ls)
{
        if (ls->depth)
                ls->depth--;
}

static char top(const mm_lexer *ls)
{
        return ls->depth ? ls->stack[ls->depth - 1] : 0;
}

/* Skips blanks and comments; returns 1 if a statement-ending newline was seen. */
static int skip_space(mm_lexer *ls, bool *space)
{
        for (;;) {
                char c = peekc(ls, 0);
                if (c == '\n' && ls->depth == 0) {
                        return 1;
                } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
                        ls->pos++;
                        *space = true;
                } else if (c == '-' && peekc(ls, 1) == '-' && peekc(ls, 2) == '-') {
                        while (ls->pos < ls->len && ls->src[ls->pos] != '\n')
                                ls->pos++;
                        *space = true;
                } else if (c == '=' && peekc(ls, 1) == '=' && peekc(ls, 2) == '=') {
                        size_t start = ls->pos;
                        ls->pos += 3;
                        for (;;) {
                                if (ls->pos + 3 > ls->len) {
                                        ls->incomplete = true;
                                        ls->pos = ls->len;
                                        return lex_error(ls, start, "unterminated === comment");
                                }
                                if (memcmp(ls->src + ls->pos, "===", 3) == 0) {
                                        ls->pos += 3;
                                        break;
                                }
                                ls->pos++;
                        }
                        *space = true;
                } else {
                        return 0;
                }
        }
}

/* Copies a quoted or bracketed span, keeping {{...}} splices raw. */
static int lex_string(mm_lexer *ls, mm_token *t)
{
        size_t start = ls->pos++, cap = 16, n = 0;
        char *s = malloc(cap);
        int splice = 0;

        if (!s)
                return -ENOMEM;
        for (;;) {
                char c = peekc(ls, 0), out;
                if (ls->pos >= ls->len) {
                        free(s);
                        ls->incomplete = true;
                        return lex_error(ls, start, "unterminated string");
                }
                if (splice == 0 && c == '\'') {
                        ls->pos++;
                        break;
                }
                if (c == '{' && peekc(ls, 1) == '{')
                        splice++;
                else if (c == '}' && peekc(ls, 1) == '}' && splice > 0)
                        splice--;
                out = c;
                if (c == '\\' && splice == 0) {
                        char e = peekc(ls, 1);
                        ls->pos++;
                        switch (e) {
                        case '\'':
                                out = '\'';
                                break;
                        case '\\':
                                out = '\\';
                                break;
                        case 'n':
                                out = '\n';
                                break;
                        case 't':
                                out = '\t';
                                break;
                        default:
                                free(s);
                                return lex_error(ls, ls->pos - 1, "invalid escape '\\%c'", e);
                        }
                }
                if (n + 2 > cap) {
                        char *ns = realloc(s, cap *= 2);
                        if (!ns) {
                                free(s);
                                return -ENOMEM;
                        }
                        s = ns;
                }
                s[n++] = out;
                ls->pos++;
        }
        s[n] = '\0';
        t->t = TK_STR;
        t->s = s;
        t->slen = n;
        return 0;
}

static int lex_span(mm_lexer *ls, mm_token *t, int kind, size_t from, size_t to)
{
        t->t = kind;
        t->s = strndup_safe(ls->src + from, to - from);
        t->slen = to - from;
        return t->s ? 0 : -ENOMEM;
}

static int lex_number(mm_lexer *ls, mm_token *t)
{
        size_t start = ls->pos;
        bool neg = false;
        uint64_t v = 0, lim;

        if (peekc(ls, 0) == '-') {
                neg = true;
                ls->pos++;
        }
        lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        {
                /* a real may have any integer part: look past the digits first */
                size_t q = ls->pos;
                while (q < ls->len && isdigit((unsigned char)ls->src[q]))
                        q++;
                if (q + 1 < ls->len && ls->src[q] == '.' &&
                    isdigit((unsigned char)ls->src[q + 1])) {
                        char buf[512];
                        size_t n;
                        q++;
                        while (q < ls->len && isdigit((unsigned char)ls->src[q]))
                                q++;
                        n = q - start;
                        if (n >= sizeof(buf))
                                return lex_error(ls, start, "real literal too long");
                        memcpy(buf, ls->src + start, n);
                        buf[n] = '\0';
                        ls->pos = q;
                        t->t = TK_REAL;
                        t->r = strtod(buf, NULL);
                        return 0;
                }
        }
        while (isdigit((unsigned char)peekc(ls, 0))) {
                unsigned d = peekc(ls, 0) - '0';
                if (v > (lim - d) / 10) {
                        if (ls->err)
                                err_set(ls->err, HYB_E_OVERFLOW, (long)(ls->base + start),
                                        "integer literal out of 64-bit range");
                        return HYB_E_OVERFLOW;
                }
                v = v * 10 + d;
                ls->pos++;
        }
        if (neg && v == 0 && peekc(ls, 0) != '.' && ls->pos == start + 1)
                return lex_error(ls, start, "unexpected '-'");
        if (peekc(ls, 0) == '.' && isdigit((unsigned char)peekc(ls, 1))) {
                char buf[128];
                size_t n;
                ls->pos++;
                while (isdigit((unsigned char)peekc(ls, 0)))
                        ls->pos++;
                n = ls->pos - start;
                if (n >= sizeof(buf))
                        return lex_error(ls, start, "real literal too long");
                memcpy(buf, ls->src + start, n);
                buf[n] = '\0';
                t->t = TK_REAL;
                t->r = strtod(buf, NULL);
                return 0;
        }
        t->t = TK_INT;
        t->i = neg ? (int64_t)(0 - v) : (int64_t)v;
        return 0;
}

/*
 * `x` followed by blanks is mult only when an operand follows: before a line end, a closing
 * bracket, `,` `;` `.` or a write (`->`, `-->`, `<-`, `=>`, `@`, ` ~ `) it is the uri `x`.
 */
static bool x_is_mult(const mm_lexer *ls)
{
        size_t p = ls->pos + 1;
        const char *s = ls->src;

        if (p < ls->len && isdigit((unsigned char)s[p]))
                return true;
        while (p < ls->len && (s[p] == ' ' || s[p] == '\t'))
                p++;
        if (p >= ls->len || strchr("\r\n;,.)]}@~", s[p]))
                return false;
        if (p + 1 < ls->len &&
            ((s[p] == '-' && (s[p + 1] == '>' || s[p + 1] == '-')) ||
             (s[p] == '<' && s[p + 1] == '-') || (s[p] == '=' && s[p + 1] == '>')))
                return false;
        return true;
}

/* true, false, noobj, nan and inf take no query: `true?bool` is isa */
static bool keyword(const char *s, size_t n)
{
        return (n == 4 && memcmp(s, "true", 4) == 0) || (n == 5 && memcmp(s, "false", 5) == 0) ||
               (n == 5 && memcmp(s, "noobj", 5) == 0) || (n == 3 && memcmp(s, "nan", 3) == 0) ||
               (n == 3 && memcmp(s, "inf", 3) == 0);
}

/* A bare uri from ls->pos: uri characters, `{{...}}` splices, and a query. */
static int lex_bare_uri(mm_lexer *ls, mm_token *t)
{
        size_t start = ls->pos;
        bool query = false;

        for (;;) {
                char c = peekc(ls, 0);
                if (c == '{' && peekc(ls, 1) == '{') {
                        int n = 0;
                        while (ls->pos < ls->len) {
                                if (peekc(ls, 0) == '{' && peekc(ls, 1) == '{') {
                                        n++;
                                        ls->pos += 2;
                                } else if (peekc(ls, 0) == '}' && peekc(ls, 1) == '}') {
                                        ls->pos += 2;
                                        if (--n == 0)
                                                break;
                                } else {
                                        ls->pos++;
                                }
                        }
                        if (n) {
                                ls->incomplete = true;
                                return lex_error(ls, start, "unterminated {{ splice");
                        }
                } else if (c == '?' && !query && lex_uri_char(peekc(ls, 1)) &&
                           !keyword(ls->src + start, ls->pos - start)) {
                        query = true;
                        ls->pos++;
                } else if (query && (c == '=' || c == '&') && peekc(ls, 1) != '>') {
                        ls->pos++;
                } else if (c && lex_uri_char(c)) {
                        ls->pos++;
                } else {
                        break;
                }
        }
        return lex_span(ls, t, TK_URI, start, ls->pos);
}

int lex_next(mm_lexer *ls, mm_token *t)
{
        bool space = false;
        int r;
        char c, d;

        free(t->s);
        *t = (mm_token){0};
        r = skip_space(ls, &space);
        t->space_before = space;
        t->off = ls->pos;
        t->depth = ls->depth;
        if (r < 0)
                return r;
        if (r == 1) {
                ls->pos++;
                t->t = TK_SEMI;
                goto done;
        }
        if (ls->pos >= ls->len) {
                t->t = TK_EOF;
                goto done;
        }
        c = peekc(ls, 0);
        d = peekc(ls, 1);

        if (isdigit((unsigned char)c) || (c == '-' && isdigit((unsigned char)d))) {
                r = lex_number(ls, t);
                goto out;
        }
        if (c == '\'') {
                r = lex_string(ls, t);
                goto out;
        }
        if (c == 'x' && (d == ' ' || d == '\t' || isdigit((unsigned char)d)) && x_is_mult(ls)) {
                ls->pos++;
                t->t = TK_MULT;
                goto done;
        }
        if (c == 'V' && (d == '(' || d == '^' || d == '|')) {
                ls->pos++;
                t->t = TK_DROP;
                goto done;
        }
        if (c == '_') {
                if (d == '/') {
                        ls->pos += 2;
                        t->t = TK_WOPEN;
                        r = push(ls, 'w');
                        goto out;
                }
                if (d == ']' && top(ls) != '[') {
                        ls->pos += 2;
                        t->t = TK_BOPEN;
                        r = push(ls, 'b');
                        goto out;
                }
                if (!lex_uri_char(d) || d == '+' || d == '#') {
                        ls->pos++;
                        t->t = TK_ID;
                        goto done;
                }
        }
        if (c == '~' && t->space_before && (d == ' ' || d == '\t' || d == '\n')) {
                ls->pos++;
                t->t = TK_MATCH;
                goto done;
        }
        if (uri_start(c)) {
                r = lex_bare_uri(ls, t);
                goto out;
        }
        switch (c) {
        case '<':
                if (d == '-') {
                        ls->pos += 2;
                        t->t = TK_REFOP;
                } else if (d == '=') {
                        ls->pos += 2;
                        t->t = TK_SIG;
                } else if (d == '<') {
                        ls->pos += 2;
                        t->t = TK_LSHIFT;
                } else {
                        size_t start = ++ls->pos;
                        bool nl = false;
                        /* `<...>` is a bracket: the REPL reads on past a newline until `>`
                         * (spec "REPL and scripts"), but a uri holds no newline */
                        while (ls->pos < ls->len && ls->src[ls->pos] != '>')
                                nl |= ls->src[ls->pos++] == '\n';
                        if (peekc(ls, 0) != '>' || nl) {
                                ls->incomplete = ls->pos >= ls->len;
                                return lex_error(ls, start - 1,
                                                 nl ? "unterminated %s (a newline before '>')"
                                                    : "unterminated %s",
                                                 "<uri>");
                        }
                        r = lex_span(ls, t, TK_BURI, start, ls->pos);
                        ls->pos++;
                        goto out;
                }
                goto done;
        case '-':
                if (d == '-' && peekc(ls, 2) == '>') {
                        ls->pos += 3;
                        t->t = TK_PASS;
                } else if (d == '>') {
                        ls->pos += 2;
                        t->t = TK_REF;
                } else if (d == '<') {
                        ls->pos += 2;
                        t->t = TK_SPLIT;
                } else if (d == '|') {
                        ls->pos += 2;
                        t->t = TK_CHOOSE;
                } else if (d == ':') {
                        ls->pos += 2;
                        t->t = TK_CHAIN;
                } else if (d == 'i' && peekc(ls, 2) == 'n' && peekc(ls, 3) == 'f' &&
                           !lex_uri_char(peekc(ls, 4)) && peekc(ls, 4) != '{') {
                        /* `-inf`, as reals print (lib/obj's literal parser reads it too) */
                        ls->pos += 4;
                        t->t = TK_REAL;
                        t->r = -INFINITY;
                } else {
                        return lex_error(ls, ls->pos, "unexpected '-'");
                }
                goto done;
        case '>':
                if (d == '>') {
                        ls->pos += 2;
                        t->t = TK_RSHIFT;
                        goto done;
                }
                if (d == '-') {
                        ls->pos += 2;
                        t->t = TK_MERGE;
                        goto done;
                }
                if (isdigit((unsigned char)d)) {
                        size_t p = ls->pos + 1;
                        int64_t n = 0;
                        while (p < ls->len && isdigit((unsigned char)ls->src[p]) && n < 1000000)
                                n = n * 10 + (ls->src[p++] - '0');
                        if (p < ls->len && ls->src[p] == '-' && n < 250) {
                                ls->pos = p + 1;
                                t->t = TK_MERGE;
                                t->i = n + 1;
                                goto done;
                        }
                }
                return lex_error(ls, ls->pos, "unexpected '>'");
        case '=':
                if (d == '>') {
                        ls->pos += 2;
                        t->t = TK_ARROW;
                } else if (d == '=') {
                        ls->pos += 2;
                        t->t = TK_EACH;
                } else {
                        ls->pos++;
                        t->t = TK_EACH;
                }
                goto done;
        case '?': {
                static const struct {
                        const char *s;
                        int op;
                } ops[] = {
                        {"?!=", MM_NEQ}, {"?>=", MM_GTE}, {"?<=", MM_LTE},
                        {"?=", MM_EQ},   {"?>", MM_GT},   {"?<", MM_LT},
                };
                for (size_t i = 0; i < ELEMENTSOF(ops); i++) {
                        size_t n = strlen(ops[i].s);
                        if (ls->pos + n <= ls->len && memcmp(ls->src + ls->pos, ops[i].s, n) == 0) {
                                ls->pos += n;
                                t->t = TK_ISCMP;
                                t->i = ops[i].op;
                                goto done;
                        }
                }
                ls->pos++;
                t->t = TK_ISA;
                goto done;
        }
        case '\\':
                if (d == '_') {
                        ls->pos += 2;
                        t->t = TK_WCLOSE;
                        pop(ls);
                        goto done;
                }
                return lex_error(ls, ls->pos, "unexpected '\\'");
        case '[':
                if (d == '_' && top(ls) == 'b') {
                        ls->pos += 2;
                        t->t = TK_BCLOSE;
                        pop(ls);
                        goto done;
                }
                ls->pos++;
                t->t = TK_LBRACK;
                r = push(ls, '[');
                goto out;
        case '.':
                if (d == '.') {
                        ls->pos += 2;
                        t->t = TK_DOTDOT;
                } else {
                        ls->pos++;
                        t->t = TK_DOT;
                }
                goto done;
        case '(':
        case '{':
                ls->pos++;
                t->t = c == '(' ? TK_LPAREN : TK_LBRACE;
                r = push(ls, c);
                goto out;
        case ')':
        case ']':
        case '}':
                ls->pos++;
                t->t = c == ')' ? TK_RPAREN : c == ']' ? TK_RBRACK : TK_RBRACE;
                pop(ls);
                goto done;
        case ',':
                ls->pos++;
                t->t = TK_COMMA;
                goto done;
        case ';':
                ls->pos++;
                t->t = TK_SEMI;
                goto done;
        case '+':
                ls->pos++;
                t->t = TK_PLUS;
                goto done;
        case '*':
                ls->pos++;
                t->t = TK_STAR;
                goto done;
        case '@':
                ls->pos++;
                t->t = TK_AT;
                goto done;
        case '|':
                ls->pos++;
                t->t = TK_BAR;
                goto done;
        case '^':
                ls->pos++;
                t->t = TK_LIFT;
                goto done;
        default:
                return lex_error(ls, ls->pos, "unexpected character '%c'", c);
        }
out:
        if (r < 0)
                return r;
done:
        t->end = ls->pos;
        return 0;
}

void lex_reset(mm_lexer *ls, const mm_token *t)
{
        ls->pos = t->off;
        ls->depth = t->depth;
}
