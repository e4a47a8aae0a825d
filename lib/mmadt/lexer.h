/* SPDX-License-Identifier: MIT */
/* The mm-ADT lexer: tokens on demand for the recursive-descent parser. */
#ifndef HYB_MMADT_LEXER_H
#define HYB_MMADT_LEXER_H

#include "mmadt-internal.h"

enum {
        TK_EOF = 0,
        TK_INT,
        TK_REAL,
        TK_STR,
        TK_URI,
        TK_BURI, /* literals (BURI: `<...>`) */
        TK_ID,   /* _ */
        TK_MULT, /* x (followed by white space or a digit) */
        TK_PLUS,
        TK_STAR,
        TK_REF,
        TK_PASS,
        TK_REFOP,
        TK_AT,
        TK_BAR,
        TK_LIFT,
        TK_DROP,
        TK_SPLIT,
        TK_CHOOSE,
        TK_CHAIN,
        TK_MERGE,
        TK_EACH,
        TK_WOPEN,
        TK_WCLOSE,
        TK_BOPEN,
        TK_BCLOSE,
        TK_ISA,
        TK_ISCMP,
        TK_LSHIFT,
        TK_RSHIFT,
        TK_MATCH,
        TK_SIG,
        TK_DOTDOT,
        TK_ARROW,
        TK_DOT,
        TK_COMMA,
        TK_LPAREN,
        TK_RPAREN,
        TK_LBRACK,
        TK_RBRACK,
        TK_LBRACE,
        TK_RBRACE,
        TK_SEMI, /* `;` or a newline outside brackets */
};

typedef struct mm_token {
        int t;
        size_t off, end;   /* source span */
        bool space_before; /* white space (or a comment) right before it */
        int64_t i;         /* INT; ISCMP: the compare op; MERGE: n+1 or 0 */
        double r;
        char *s; /* STR/URI/BURI text (escapes done; splices kept), malloc'd */
        size_t slen;
        unsigned depth; /* bracket depth before the token */
} mm_token;

#define LEX_MAX_DEPTH 256

typedef struct mm_lexer {
        const char *src;
        size_t len, pos;
        size_t base;       /* offset of src inside the whole text (splices) */
        const char *whole; /* the whole text, for line/column */
        char stack[LEX_MAX_DEPTH];
        unsigned depth;
        hyb_error *err;
        bool incomplete; /* hit the end inside a string, comment or bracket */
} mm_lexer;

void lex_init(mm_lexer *ls, const char *src, size_t len, const char *whole, size_t base,
              hyb_error *err);
/* Next token into *t (t->s freed first). 0 or HYB_E_PARSE. */
int lex_next(mm_lexer *ls, mm_token *t);
/* Moves back to just before token t (re-lexing from there). */
void lex_reset(mm_lexer *ls, const mm_token *t);
int lex_error(mm_lexer *ls, size_t off, const char *fmt, ...) _printf_(3, 4);
void tok_clear(mm_token *t);
/* Is c a bare-uri character (after the first)? */
bool lex_uri_char(char c);

#endif
