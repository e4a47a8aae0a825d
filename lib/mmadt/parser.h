/* SPDX-License-Identifier: MIT */
/*
 * The recursive-descent parser's shared rules (parser.c: chains, steps,
 * polys, streams, sugar; parser-def.c: uris, calls, definitions, splices).
 */
#ifndef HYB_MMADT_PARSER_H
#define HYB_MMADT_PARSER_H

#include "compile.h"
#include "lexer.h"

#define MAX_NEST 200

typedef struct mm_parser {
        hyb_mmadt *vm;
        mm_lexer ls;
        mm_token tk;
        unsigned nest;
        hyb_error *err;
        uint32_t src_id; /* stamped on the codes parsed, with instruction offsets */
} mm_parser;

int parse_next(mm_parser *P);
int parse_error(mm_parser *P, const char *fmt, const char *what);
const char *parse_tk_name(const mm_token *t);
int parse_expect(mm_parser *P, int t, const char *what);
bool parse_chain_end(int t);
int parse_operand(mm_parser *P, mm_arg *a);
int parse_chain_arg(mm_parser *P, mm_arg *a);
void parse_args_free(mm_arg *args, size_t n);
int parse_args_push(mm_arg **args, size_t *n, size_t *alloc, mm_arg *a);
int parse_arg_to_key(mm_arg *a, hyb_obj **ret);
int parse_arglist(mm_parser *P, mm_arg **ret, size_t *ret_n);
int parse_body(mm_parser *P, mm_code **ret);
int parse_step(mm_parser *P, mm_code *c);
int parse_chain(mm_parser *P, mm_code *c);
/* parser-def.c */
int parse_uristep(mm_parser *P, mm_code *c);
int parse_group(mm_parser *P, mm_code *c);
int parse_isa_or_sig(mm_parser *P, mm_code *c);
/* Splits text with {{code}} splices into a SPLICE instruction (uri: a uri literal). */
int parse_splice(mm_parser *P, mm_code *c, const char *s, size_t n, size_t src_off, bool uri);

#endif
