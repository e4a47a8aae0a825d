/* SPDX-License-Identifier: MIT */
/* Code generation helpers the parser calls (compile.c). */
#ifndef HYB_MMADT_COMPILE_H
#define HYB_MMADT_COMPILE_H

#include "mmadt-internal.h"

typedef struct mm_builtin {
        const char *name;
        int op, aux;
} mm_builtin;

/* The builtin instruction called name, or NULL. */
const mm_builtin *compile_builtin(const char *name, size_t len);
/* Emits a constant (stolen) as K, or URI for a uri. */
int compile_const(mm_code *c, mm_val v, bool uri_step);
/* Turns sub (stolen) into an argument: a constant when sub is one K/URI, else code. */
void compile_to_arg(mm_code *sub, mm_arg *a);
/* Appends the instructions of sub (borrowed) to c. */
int compile_append(mm_code *c, const mm_code *sub);
/* Emits a lst/rec of args (moved): a K when every element is constant. */
int compile_poly(mm_code *c, bool rec, mm_arg *args, size_t n);
/* Is arg a constant (K) whose value is a plain noobj/bool/int/real/str (not a uri)? */
bool compile_arg_is_plain(const mm_arg *a);

#endif
