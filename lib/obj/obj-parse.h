/* SPDX-License-Identifier: MIT */
/*
 * The literal lexer and parser of objs, as a base the mm-ADT parser extends.
 *
 * The lexer turns text into tokens, skipping white space and comments
 * (`--- to end of line`, `=== block ===`); the parser keeps one token of
 * lookahead (p->tok) and has one function per grammar rule (obj-parse.c).
 * An extension (mm-ADT) either calls the rule functions from its own rules or
 * sets p->ext, which the `value` rule calls for a token that starts no
 * literal (a `(`, `*`, `-<`, ...): it must consume what it parses and leave
 * p->tok on the next token.  Tokens the literal grammar does not use come out
 * as OBJ_TOK_PUNCT, one byte each, so an extension can read `<<`, `-<`, `_/`
 * from the text at tok.start.
 */
#ifndef HYB_OBJ_PARSE_H
#define HYB_OBJ_PARSE_H

#include "obj-internal.h"

typedef enum obj_tok {
        OBJ_TOK_EOF,
        OBJ_TOK_INT,        /* tok.i */
        OBJ_TOK_REAL,       /* tok.r (also nan, inf, -inf) */
        OBJ_TOK_STR,        /* tok.s / tok.slen: the decoded bytes, owned by the token */
        OBJ_TOK_URI,        /* a bare uri: the text [start, end) */
        OBJ_TOK_BURI,       /* a bracketed uri: its content [start + 1, end - 1) */
        OBJ_TOK_TRUE,
        OBJ_TOK_FALSE,
        OBJ_TOK_NOOBJ,
        OBJ_TOK_LBRACK,     /* [ */
        OBJ_TOK_RBRACK,     /* ] */
        OBJ_TOK_LBRACE,     /* { */
        OBJ_TOK_RBRACE,     /* } */
        OBJ_TOK_COMMA,      /* , */
        OBJ_TOK_ARROW,      /* => */
        OBJ_TOK_AT,         /* @ */
        OBJ_TOK_DOTDOT,     /* .. */
        OBJ_TOK_PUNCT,      /* any other single byte */
} obj_tok;

typedef struct obj_token {
        obj_tok kind;
        size_t start, end;  /* byte span in the text */
        int64_t i;
        double r;
        char *s;
        size_t slen;
} obj_token;

typedef struct obj_lexer {
        const char *text;
        size_t len;
        size_t pos;
        hyb_error *err;
} obj_lexer;

void obj_lexer_init(obj_lexer *lx, const char *text, size_t len, hyb_error *err);
/* Skips white space and comments; HYB_E_PARSE for an unterminated `===` block. */
int obj_lex_skip_space(obj_lexer *lx);
/* The next token (skipping space first); *tok is cleared first. */
int obj_lex_next(obj_lexer *lx, obj_token *tok);
void obj_token_clear(obj_token *tok);
/* Fills lx->err with code at offset (line and column computed) and returns code. */
int obj_lex_error(const obj_lexer *lx, int code, size_t offset, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* Is c a character of a bare uri (outside its query)? */
bool obj_lex_is_bare_char(unsigned char c);

typedef struct obj_parser obj_parser;
typedef int (*obj_parse_ext_fn)(obj_parser *p, hyb_obj **ret);

struct obj_parser {
        obj_lexer lx;
        obj_token tok;          /* the current token */
        unsigned depth;         /* open `[` / `{` */
        obj_parse_ext_fn ext;   /* NULL: only literals */
        void *userdata;
};

/* Sets p up and reads the first token. */
int obj_parser_init(obj_parser *p, const char *text, size_t len, hyb_error *err);
void obj_parser_done(obj_parser *p);
/* Moves to the next token. */
int obj_parser_advance(obj_parser *p);
/* HYB_E_PARSE "unexpected <tok>, expected <what>" at the current token. */
int obj_parser_unexpected(obj_parser *p, const char *what);
/* Consumes a token of the kind, or fails with "expected <what>". */
int obj_parser_expect(obj_parser *p, obj_tok kind, const char *what);
/* Depth accounting for a nested construct (HYB_E_DEPTH past HYB_OBJ_MAX_DEPTH). */
int obj_parser_enter(obj_parser *p);
void obj_parser_leave(obj_parser *p);
/* Is the current token a uri immediately followed by `[` (a typed value)? */
bool obj_parser_at_typed(const obj_parser *p);
/* The current token (URI or BURI) as a fURI; does not advance. */
int obj_parser_uri(obj_parser *p, hyb_furi **ret);

/* The rules. */
int obj_parse_obj(obj_parser *p, hyb_obj **ret);
int obj_parse_value(obj_parser *p, hyb_obj **ret);
int obj_parse_typed(obj_parser *p, hyb_obj **ret);
int obj_parse_poly(obj_parser *p, hyb_obj **ret);
int obj_parse_stream(obj_parser *p, hyb_obj **ret);

#endif
