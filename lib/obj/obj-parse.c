/* SPDX-License-Identifier: MIT */
/*
 * The literal parser: a lexer and one recursive-descent function per rule.
 *
 *   obj     := value ( '@' uri )?
 *   value   := 'noobj' | 'true' | 'false' | INT | REAL | STR
 *            | typed | uri | poly | stream
 *   typed   := uri '[' value ']'            -- no space before '['; bare T is /type/T
 *   uri     := BARE | '<' furi-text? '>'
 *   poly    := '[' ']' | '[' '=>' ']'
 *            | '[' obj ( ',' obj )* ']'                  -- lst
 *            | '[' obj '=>' obj ( ',' obj '=>' obj )* ']'  -- rec
 *   stream  := '{' ( obj ( ',' obj )* )? '}'
 *
 *   INT     := '-'? DIGIT+                                (64-bit, else HYB_E_OVERFLOW)
 *   REAL    := '-'? DIGIT+ ( '.' DIGIT+ )? ( [eE] [+-]? DIGIT+ )?   (needs '.' or exponent)
 *            | 'nan' | 'inf' | '-inf'
 *   STR     := "'" ( [^'\\] | '\' [nrt'\\] | '\x' HEX HEX )* "'"
 *   BARE    := first ( char | '?' query-char* )?   first: a letter, '_' '/' ':' '%' '#' '~'
 *              (not `_/`); char: a letter, a digit, '_' '/' ':' '%' '+' '#' '~';
 *              query-char: char, '&', '=' not before '>' or '='
 *   space   := ' ' | '\t' | '\r' | '\n' | '---' to end of line | '===' ... '==='
 */
#include <assert.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>

#include "common/util.h"
#include "obj-parse.h"

/* --- lexer --- */

void obj_lexer_init(obj_lexer *lx, const char *text, size_t len, hyb_error *err)
{
        *lx = (obj_lexer){ .text = text, .len = len, .err = err };
}

void obj_token_clear(obj_token *tok)
{
        free(tok->s);
        *tok = (obj_token){ .kind = OBJ_TOK_EOF };
}

int obj_lex_error(const obj_lexer *lx, int code, size_t offset, const char *fmt, ...)
{
        char msg[200];
        int line = 1, col = 1;
        va_list ap;

        if (offset > lx->len)
                offset = lx->len;
        for (size_t i = 0; i < offset; i++) {
                if (lx->text[i] == '\n') {
                        line++;
                        col = 1;
                } else
                        col++;
        }
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return err_set_at(lx->err, code, (long)offset, line, col, "%s at line %d, column %d",
                          msg, line, col);
}

static int peek(const obj_lexer *lx, size_t ahead)
{
        size_t i = lx->pos + ahead;

        return i < lx->len ? (unsigned char)lx->text[i] : -1;
}

static bool looking_at(const obj_lexer *lx, const char *s)
{
        size_t n = strlen(s);

        return lx->len - lx->pos >= n && memcmp(lx->text + lx->pos, s, n) == 0;
}

int obj_lex_skip_space(obj_lexer *lx)
{
        for (;;) {
                int c = peek(lx, 0);

                if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
                        lx->pos++;
                else if (looking_at(lx, "---")) {
                        while (lx->pos < lx->len && lx->text[lx->pos] != '\n')
                                lx->pos++;
                } else if (looking_at(lx, "===")) {
                        size_t open = lx->pos;

                        lx->pos += 3;
                        while (lx->pos < lx->len && !looking_at(lx, "==="))
                                lx->pos++;
                        if (lx->pos >= lx->len)
                                return obj_lex_error(lx, HYB_E_PARSE, open,
                                                     "unterminated === comment");
                        lx->pos += 3;
                } else
                        return 0;
        }
}

bool obj_lex_is_bare_char(unsigned char c)
{
        return isalnum(c) || c == '_' || c == '/' || c == ':' || c == '%' || c == '+' ||
               c == '#' || c == '~';
}

static bool bare_first(const obj_lexer *lx)
{
        int c = peek(lx, 0);

        if (c < 0 || isdigit(c) || c == '+' || !obj_lex_is_bare_char((unsigned char)c))
                return false;
        return !(c == '_' && (peek(lx, 1) == '/' || peek(lx, 1) == ']'));
}

static size_t bare_end(const obj_lexer *lx, size_t i)
{
        bool query = false;

        for (; i < lx->len; i++) {
                unsigned char c = (unsigned char)lx->text[i];
                int next = i + 1 < lx->len ? (unsigned char)lx->text[i + 1] : -1;

                if (obj_lex_is_bare_char(c))
                        continue;
                if (c == '?' && !query) {
                        query = true;
                        continue;
                }
                if (query && (c == '&' || (c == '=' && next != '>' && next != '=')))
                        continue;
                break;
        }
        return i;
}

static bool word_is(const obj_lexer *lx, size_t start, size_t end, const char *w)
{
        return end - start == strlen(w) && memcmp(lx->text + start, w, end - start) == 0;
}

static bool is_digit(int c)
{
        return (unsigned)c - '0' < 10u;
}

/*
 * INT or REAL at lx->pos (a digit, or '-' before one).  The common texts are read in the one
 * scan that finds their end, without strtoll/strtod:
 *   - an INT of at most 18 digits (below 10^18, so no overflow): its digits accumulated;
 *   - a REAL written `-?D+.D+` with at most 15 digits in all: its digits N < 10^15 and 10^k
 *     (k <= 15 fraction digits) are exact doubles, so one division rounds the quotient
 *     N / 10^k once, to the nearest: what strtod returns (Clinger's fast path).  Such texts
 *     are the common case (sensor values, and every real the EXACT form prints from a short
 *     decimal).
 * Any other number (longer, or with an exponent) goes to strtoll/strtod.
 */
static int lex_number(obj_lexer *lx, obj_token *tok)
{
        static const double pow10[] = { 1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                        1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15 };
        const char *t = lx->text;
        size_t i = lx->pos;
        bool real = false, neg = t[i] == '-', exp = false;
        uint64_t v = 0;
        size_t digits = 0, k = 0;
        char buf[512];
        size_t n;

        if (neg)
                i++;
        for (; i < lx->len && is_digit(t[i]); i++, digits++)
                v = v * 10 + (uint64_t)(t[i] - '0');
        /* `1.` and `1..2` keep the dot for the caller: a fraction needs a digit */
        if (i + 1 < lx->len && t[i] == '.' && is_digit(t[i + 1])) {
                real = true;
                for (i++; i < lx->len && is_digit(t[i]); i++, k++, digits++)
                        v = v * 10 + (uint64_t)(t[i] - '0');
        }
        if (i < lx->len && (t[i] == 'e' || t[i] == 'E')) {
                size_t j = i + 1;
                if (j < lx->len && (t[j] == '+' || t[j] == '-'))
                        j++;
                if (j < lx->len && is_digit(t[j])) {
                        real = exp = true;
                        for (i = j; i < lx->len && is_digit(t[i]); i++)
                                ;
                }
        }
        /* (v wrapped past 19 digits: only read where digits says it did not) */
        if (!real && digits <= 18) {
                tok->kind = OBJ_TOK_INT;
                tok->i = neg ? -(int64_t)v : (int64_t)v;
                lx->pos = i;
                return 0;
        }
        if (real && !exp && digits <= 15) {
                tok->kind = OBJ_TOK_REAL;
                tok->r = (double)v / pow10[k];
                if (neg)
                        tok->r = -tok->r;
                lx->pos = i;
                return 0;
        }
        n = i - lx->pos;
        if (n >= sizeof(buf))
                return obj_lex_error(lx, HYB_E_PARSE, lx->pos, "number too long");
        memcpy(buf, t + lx->pos, n);
        buf[n] = '\0';
        errno = 0;
        if (real) {
                tok->kind = OBJ_TOK_REAL;
                tok->r = strtod(buf, NULL);
                if (errno == ERANGE && isinf(tok->r))
                        return obj_lex_error(lx, HYB_E_OVERFLOW, lx->pos,
                                             "real %s out of range", buf);
        } else {
                tok->kind = OBJ_TOK_INT;
                tok->i = strtoll(buf, NULL, 10);
                if (errno == ERANGE)
                        return obj_lex_error(lx, HYB_E_OVERFLOW, lx->pos,
                                             "int %s does not fit in 64 bits", buf);
        }
        lx->pos = i;
        return 0;
}

static int lex_str(obj_lexer *lx, obj_token *tok)
{
        size_t open = lx->pos, alloc = 0;
        char *s = NULL;
        size_t n = 0;

        for (lx->pos++;; lx->pos++) {
                int c = peek(lx, 0);

                if (c < 0) {
                        free(s);
                        return obj_lex_error(lx, HYB_E_PARSE, open, "unterminated str");
                }
                if (c == '\'')
                        break;
                if (c == '\\') {
                        int e = peek(lx, 1), h1, h2;

                        switch (e) {
                        case 'n': c = '\n'; break;
                        case 't': c = '\t'; break;
                        case 'r': c = '\r'; break;
                        case '\'': c = '\''; break;
                        case '\\': c = '\\'; break;
                        case 'x':
                                h1 = hex_digit(peek(lx, 2));
                                h2 = hex_digit(peek(lx, 3));
                                if (h1 >= 0 && h2 >= 0) {
                                        c = h1 * 16 + h2;
                                        lx->pos += 2;
                                        break;
                                }
                                /* fall through */
                        default:
                                free(s);
                                return obj_lex_error(lx, HYB_E_PARSE, lx->pos,
                                                     "unknown escape in str (\\' \\\\ \\n \\t "
                                                     "\\r \\xHH)");
                        }
                        lx->pos++;
                }
                if (grow_array((void **)&s, &alloc, n + 2, 1) < 0) {
                        free(s);
                        return -ENOMEM;
                }
                s[n++] = (char)c;
        }
        lx->pos++;
        if (!s && !(s = strdup("")))
                return -ENOMEM;
        s[n] = '\0';
        tok->kind = OBJ_TOK_STR;
        tok->s = s;
        tok->slen = n;
        return 0;
}

int obj_lex_next(obj_lexer *lx, obj_token *tok)
{
        int c, r;

        obj_token_clear(tok);
        r = obj_lex_skip_space(lx);
        if (r < 0)
                return r;
        tok->start = lx->pos;
        c = peek(lx, 0);
        if (c < 0) {
                tok->kind = OBJ_TOK_EOF;
        } else if (isdigit(c) || (c == '-' && isdigit(peek(lx, 1)))) {
                r = lex_number(lx, tok);
                if (r < 0)
                        return r;
        } else if (c == '-' && word_is(lx, lx->pos + 1, bare_end(lx, lx->pos + 1), "inf")) {
                tok->kind = OBJ_TOK_REAL;
                tok->r = -INFINITY;
                lx->pos += 4;
        } else if (c == '\'') {
                r = lex_str(lx, tok);
                if (r < 0)
                        return r;
        } else if (c == '<' && peek(lx, 1) != '<' && peek(lx, 1) != '-' && peek(lx, 1) != '=') {
                const char *close = memchr(lx->text + lx->pos, '>', lx->len - lx->pos);

                if (!close)
                        return obj_lex_error(lx, HYB_E_PARSE, lx->pos,
                                             "unterminated <uri> (missing '>')");
                tok->kind = OBJ_TOK_BURI;
                lx->pos = (size_t)(close - lx->text) + 1;
        } else if (bare_first(lx)) {
                size_t end = bare_end(lx, lx->pos);

                tok->kind = OBJ_TOK_URI;
                if (word_is(lx, lx->pos, end, "true"))
                        tok->kind = OBJ_TOK_TRUE;
                else if (word_is(lx, lx->pos, end, "false"))
                        tok->kind = OBJ_TOK_FALSE;
                else if (word_is(lx, lx->pos, end, "noobj"))
                        tok->kind = OBJ_TOK_NOOBJ;
                else if (word_is(lx, lx->pos, end, "nan") || word_is(lx, lx->pos, end, "inf")) {
                        tok->kind = OBJ_TOK_REAL;
                        tok->r = lx->text[lx->pos] == 'n' ? NAN : INFINITY;
                }
                lx->pos = end;
        } else if (looking_at(lx, "=>")) {
                tok->kind = OBJ_TOK_ARROW;
                lx->pos += 2;
        } else if (looking_at(lx, "..")) {
                tok->kind = OBJ_TOK_DOTDOT;
                lx->pos += 2;
        } else {
                static const char single[] = "[]{},@";
                static const obj_tok kinds[] = { OBJ_TOK_LBRACK, OBJ_TOK_RBRACK, OBJ_TOK_LBRACE,
                                                 OBJ_TOK_RBRACE, OBJ_TOK_COMMA,  OBJ_TOK_AT };
                const char *p = c ? strchr(single, c) : NULL;

                tok->kind = p ? kinds[p - single] : OBJ_TOK_PUNCT;
                lx->pos++;
        }
        tok->end = lx->pos;
        return 0;
}

/* --- parser plumbing --- */

int obj_parser_init(obj_parser *p, const char *text, size_t len, hyb_error *err)
{
        *p = (obj_parser){ 0 };
        obj_lexer_init(&p->lx, text, len, err);
        return obj_lex_next(&p->lx, &p->tok);
}

void obj_parser_done(obj_parser *p)
{
        obj_token_clear(&p->tok);
}

int obj_parser_advance(obj_parser *p)
{
        return obj_lex_next(&p->lx, &p->tok);
}

int obj_parser_unexpected(obj_parser *p, const char *what)
{
        const obj_token *t = &p->tok;
        int n = (int)(t->end - t->start);

        if (t->kind == OBJ_TOK_EOF)
                return obj_lex_error(&p->lx, HYB_E_PARSE, t->start,
                                     "unexpected end of input, expected %s", what);
        if (t->kind == OBJ_TOK_PUNCT && !isprint((unsigned char)p->lx.text[t->start]))
                return obj_lex_error(&p->lx, HYB_E_PARSE, t->start,
                                     "unexpected byte 0x%02X, expected %s",
                                     (unsigned char)p->lx.text[t->start], what);
        return obj_lex_error(&p->lx, HYB_E_PARSE, t->start, "unexpected '%.*s%s', expected %s",
                             n > 24 ? 24 : n, p->lx.text + t->start, n > 24 ? "..." : "", what);
}

int obj_parser_expect(obj_parser *p, obj_tok kind, const char *what)
{
        if (p->tok.kind != kind)
                return obj_parser_unexpected(p, what);
        return obj_parser_advance(p);
}

int obj_parser_enter(obj_parser *p)
{
        if (p->depth >= HYB_OBJ_MAX_DEPTH)
                return obj_lex_error(&p->lx, HYB_E_DEPTH, p->tok.start,
                                     "nesting deeper than %d", HYB_OBJ_MAX_DEPTH);
        p->depth++;
        return 0;
}

void obj_parser_leave(obj_parser *p)
{
        assert(p->depth > 0);
        p->depth--;
}

bool obj_parser_at_typed(const obj_parser *p)
{
        return (p->tok.kind == OBJ_TOK_URI || p->tok.kind == OBJ_TOK_BURI) &&
               p->tok.end < p->lx.len && p->lx.text[p->tok.end] == '[';
}

int obj_parser_uri(obj_parser *p, hyb_furi **ret)
{
        size_t start = p->tok.start, end = p->tok.end;
        hyb_error e;
        int r;

        assert(p->tok.kind == OBJ_TOK_URI || p->tok.kind == OBJ_TOK_BURI);
        if (p->tok.kind == OBJ_TOK_BURI) {
                start++;
                end--;
        }
        hyb_error_clear(&e);
        r = hyb_furi_parse(p->lx.text + start, end - start, NULL, ret, &e);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return obj_lex_error(&p->lx, r, start + (e.offset > 0 ? (size_t)e.offset : 0),
                                     "bad uri '%.*s': %s", (int)(end - start > 40 ? 40 : end - start),
                                     p->lx.text + start, e.message);
        return 0;
}

/* --- rules --- */

/* obj := value ( '@' uri )? */
int obj_parse_obj(obj_parser *p, hyb_obj **ret)
{
        hyb_obj *o = NULL;
        hyb_furi *id = NULL;
        size_t at;
        int r;

        r = obj_parse_value(p, &o);
        if (r < 0)
                return r;
        if (p->tok.kind != OBJ_TOK_AT) {
                *ret = o;
                return 0;
        }
        at = p->tok.start;
        r = obj_parser_advance(p);
        if (r >= 0 && p->tok.kind != OBJ_TOK_URI && p->tok.kind != OBJ_TOK_BURI)
                r = obj_parser_unexpected(p, "a uri (value id) after '@'");
        if (r >= 0)
                r = obj_parser_uri(p, &id);
        if (r >= 0 && o->kind == HYB_OBJ_NOOBJ)
                r = obj_lex_error(&p->lx, HYB_E_PARSE, at, "noobj cannot have a value id");
        if (r >= 0)
                r = obj_parser_advance(p);
        if (r < 0) {
                hyb_furi_unref(id);
                hyb_obj_unref(o);
                return r;
        }
        r = obj_with_id_steal(o, id, &o);
        hyb_furi_unref(id);
        if (r < 0)
                return r;
        if (p->tok.kind == OBJ_TOK_AT) {
                hyb_obj_unref(o);
                return obj_lex_error(&p->lx, HYB_E_PARSE, p->tok.start, "an obj has one value id");
        }
        *ret = o;
        return 0;
}

/* code := '|(' source ')'   -- the EXACT form of a code obj; compiled by its language when
 * first applied (obj-code.c) */
static int parse_code(obj_parser *p, hyb_obj **ret)
{
        size_t open = p->tok.end, end = obj_code_span(p->lx.text, p->lx.len, open);
        hyb_obj *o = NULL;
        int r;

        if (!end)
                return obj_lex_error(&p->lx, HYB_E_PARSE, p->tok.start, "unterminated code");
        if (end == open + 2)
                return obj_lex_error(&p->lx, HYB_E_PARSE, p->tok.start, "empty code");
        if (memchr(p->lx.text + open, '\0', end - open))
                return obj_lex_error(&p->lx, HYB_E_PARSE, p->tok.start, "a NUL byte in code");
        r = obj_new_code_source(p->lx.text + open + 1, end - open - 2, &o);
        if (r < 0)
                return r;
        p->lx.pos = end;
        r = obj_parser_advance(p);
        if (r < 0) {
                hyb_obj_unref(o);
                return r;
        }
        *ret = o;
        return 0;
}

/* value := 'noobj' | 'true' | 'false' | INT | REAL | STR | typed | uri | poly | stream | code */
int obj_parse_value(obj_parser *p, hyb_obj **ret)
{
        hyb_furi *f = NULL;
        hyb_obj *o = NULL;
        int r;

        switch (p->tok.kind) {
        case OBJ_TOK_NOOBJ:
                o = hyb_obj_noobj();
                break;
        case OBJ_TOK_TRUE:
        case OBJ_TOK_FALSE:
                o = hyb_obj_bool(p->tok.kind == OBJ_TOK_TRUE);
                break;
        case OBJ_TOK_INT:
                r = hyb_obj_new_int(p->tok.i, &o);
                if (r < 0)
                        return r;
                break;
        case OBJ_TOK_REAL:
                r = hyb_obj_new_real(p->tok.r, &o);
                if (r < 0)
                        return r;
                break;
        case OBJ_TOK_STR:
                r = obj_new_str_steal(TAKE_PTR(p->tok.s), p->tok.slen, &o);
                if (r < 0)
                        return r;
                break;
        case OBJ_TOK_URI:
        case OBJ_TOK_BURI:
                if (obj_parser_at_typed(p))
                        return obj_parse_typed(p, ret);
                r = obj_parser_uri(p, &f);
                if (r < 0)
                        return r;
                r = obj_new_uri_steal(f, &o);
                if (r < 0)
                        return r;
                break;
        case OBJ_TOK_LBRACK:
                return obj_parse_poly(p, ret);
        case OBJ_TOK_LBRACE:
                return obj_parse_stream(p, ret);
        case OBJ_TOK_PUNCT:
                if (p->lx.text[p->tok.start] == '|' && p->tok.end < p->lx.len &&
                    p->lx.text[p->tok.end] == '(')
                        return parse_code(p, ret);
                /* fall through */
        default:
                if (p->ext)
                        return p->ext(p, ret);
                return obj_parser_unexpected(p, "an obj");
        }
        r = obj_parser_advance(p);
        if (r < 0) {
                hyb_obj_unref(o);
                return r;
        }
        *ret = o;
        return 0;
}

/* typed := uri '[' value ']'   -- the value's type is the uri; bare T is /type/T */
int obj_parse_typed(obj_parser *p, hyb_obj **ret)
{
        hyb_furi *t = NULL;
        hyb_obj *v = NULL;
        size_t start = p->tok.start;
        int r;

        r = obj_parser_uri(p, &t);
        if (r < 0)
                return r;
        r = obj_parser_advance(p); /* the uri */
        if (r >= 0)
                r = obj_parser_advance(p); /* '[' */
        if (r >= 0 && obj_parser_at_typed(p))
                r = obj_lex_error(&p->lx, HYB_E_PARSE, p->tok.start,
                                  "a value has one type: write T[v], not T[U[v]]");
        if (r >= 0 && p->tok.kind == OBJ_TOK_NOOBJ)
                r = obj_lex_error(&p->lx, HYB_E_PARSE, p->tok.start, "noobj cannot have a type");
        if (r >= 0)
                r = obj_parse_value(p, &v);
        if (r >= 0)
                r = obj_parser_expect(p, OBJ_TOK_RBRACK, "']' closing the typed value");
        if (r < 0) {
                hyb_obj_unref(v);
                hyb_furi_unref(t);
                return r;
        }
        r = obj_with_type_steal(v, t, ret);
        hyb_furi_unref(t);
        if (r == -EINVAL)
                return obj_lex_error(&p->lx, HYB_E_PARSE, start, "not a type name");
        if (r == HYB_E_TYPE)
                return obj_lex_error(&p->lx, HYB_E_TYPE, start,
                                     "the value is not of the base type it is tagged with");
        return r;
}

/* poly := '[' ']' | '[' '=>' ']' | '[' obj (',' obj)* ']' | '[' pair (',' pair)* ']' */
int obj_parse_poly(obj_parser *p, hyb_obj **ret)
{
        hyb_obj *o = NULL, *k = NULL, *v = NULL;
        int r;

        r = obj_parser_enter(p);
        if (r < 0)
                return r;
        r = obj_parser_advance(p); /* '[' */
        if (r < 0)
                goto fail;
        if (p->tok.kind == OBJ_TOK_ARROW) {
                /* [=>] */
                r = obj_parser_advance(p);
                if (r >= 0)
                        r = obj_parser_expect(p, OBJ_TOK_RBRACK, "']' after '[=>'");
                if (r >= 0)
                        r = obj_rec_builder(0, &o);
                goto done;
        }
        if (p->tok.kind == OBJ_TOK_RBRACK) {
                r = obj_parser_advance(p);
                if (r >= 0)
                        r = obj_lst_builder(HYB_OBJ_LST, 0, &o);
                goto done;
        }
        r = obj_parse_obj(p, &k);
        if (r < 0)
                goto fail;
        if (p->tok.kind == OBJ_TOK_ARROW) {
                /* pair := obj '=>' obj */
                r = obj_rec_builder(4, &o);
                while (r >= 0) {
                        r = obj_parser_advance(p); /* '=>' */
                        if (r >= 0)
                                r = obj_parse_obj(p, &v);
                        if (r < 0)
                                break;
                        r = obj_rec_set(o, TAKE_PTR(k), TAKE_PTR(v));
                        if (r < 0 || p->tok.kind != OBJ_TOK_COMMA)
                                break;
                        r = obj_parser_advance(p);
                        if (r >= 0)
                                r = obj_parse_obj(p, &k);
                        if (r >= 0 && p->tok.kind != OBJ_TOK_ARROW)
                                r = obj_parser_unexpected(p, "'=>' (a rec holds key=>value pairs)");
                }
        } else {
                r = obj_lst_builder(HYB_OBJ_LST, 4, &o);
                if (r >= 0)
                        r = obj_lst_append(o, TAKE_PTR(k));
                while (r >= 0 && p->tok.kind == OBJ_TOK_COMMA) {
                        r = obj_parser_advance(p);
                        if (r >= 0)
                                r = obj_parse_obj(p, &k);
                        if (r >= 0 && p->tok.kind == OBJ_TOK_ARROW)
                                r = obj_parser_unexpected(p, "',' or ']' (a lst holds no pairs)");
                        if (r >= 0)
                                r = obj_lst_append(o, TAKE_PTR(k));
                }
        }
        if (r >= 0)
                r = obj_parser_expect(p, OBJ_TOK_RBRACK, "',' or ']'");
done:
        if (r < 0)
                goto fail;
        obj_parser_leave(p);
        *ret = o;
        return 0;
fail:
        hyb_obj_unref(k);
        hyb_obj_unref(v);
        hyb_obj_unref(o);
        obj_parser_leave(p);
        return r;
}

/* stream := '{' ( obj ( ',' obj )* )? '}' */
int obj_parse_stream(obj_parser *p, hyb_obj **ret)
{
        hyb_obj *o = NULL, *item = NULL;
        int r;

        r = obj_parser_enter(p);
        if (r < 0)
                return r;
        r = obj_parser_advance(p); /* '{' */
        if (r >= 0)
                r = obj_lst_builder(HYB_OBJ_OBJS, 4, &o);
        if (r >= 0 && p->tok.kind != OBJ_TOK_RBRACE) {
                for (;;) {
                        r = obj_parse_obj(p, &item);
                        if (r >= 0 && p->tok.kind == OBJ_TOK_DOTDOT)
                                r = obj_lex_error(&p->lx, HYB_E_PARSE, p->tok.start,
                                                  "a range {a..b} is an mm-ADT program, "
                                                  "not a literal obj");
                        if (r >= 0)
                                r = obj_lst_append(o, TAKE_PTR(item));
                        if (r < 0 || p->tok.kind != OBJ_TOK_COMMA)
                                break;
                        r = obj_parser_advance(p);
                        if (r < 0)
                                break;
                }
        }
        if (r >= 0)
                r = obj_parser_expect(p, OBJ_TOK_RBRACE, "',' or '}'");
        obj_parser_leave(p);
        if (r < 0) {
                hyb_obj_unref(item);
                hyb_obj_unref(o);
                return r;
        }
        *ret = o;
        return 0;
}

HYB_EXPORT int hyb_obj_parse(const char *text, size_t len, hyb_obj **ret, hyb_error *reterr)
{
        obj_parser p;
        hyb_obj *o = NULL;
        int r;

        hyb_assert_return(ret && (text || len == 0 || len == (size_t)-1), -EINVAL);
        if (len == (size_t)-1)
                len = text ? strlen(text) : 0;
        hyb_error_clear(reterr);
        /* A number alone (a sensor value, a counter: most values written to and read from a
         * store) is one INT or REAL token and then the end: read it and make the obj as
         * obj_parse_value does, without the parser around it.  Anything else, and a number
         * lex_number refuses (out of range), goes the whole way (and gets its error there). */
        if (len > 0 && (is_digit(text[0]) || (text[0] == '-' && len > 1 && is_digit(text[1])))) {
                obj_lexer lx;
                obj_token tok = { .kind = OBJ_TOK_EOF };

                obj_lexer_init(&lx, text, len, NULL);
                if (lex_number(&lx, &tok) == 0 && lx.pos == len) {
                        r = tok.kind == OBJ_TOK_INT ? hyb_obj_new_int(tok.i, &o)
                                                    : hyb_obj_new_real(tok.r, &o);
                        if (r < 0)
                                return err_set(reterr, r, -1, "out of memory");
                        *ret = o;
                        return 0;
                }
        }
        r = obj_parser_init(&p, text ? text : "", len, reterr);
        if (r >= 0)
                r = obj_parse_obj(&p, &o);
        if (r >= 0 && p.tok.kind != OBJ_TOK_EOF) {
                r = obj_parser_unexpected(&p, "the end after the obj");
                o = hyb_obj_unref(o);
        }
        obj_parser_done(&p);
        if (r == -ENOMEM)
                err_set(reterr, r, -1, "out of memory");
        if (r < 0)
                return r;
        *ret = o;
        return 0;
}
