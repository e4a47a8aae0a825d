/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the mm-ADT compiler (lib/mmadt lexer, parser, compiler): compiles the
 * input as a program on a fresh VM.  Compiling must never crash or leak, a refused program
 * must carry an error code and a message, and a compiled one must print every statement
 * (hyb_mmadt_program_format); the printed form is compiled again to exercise the parser on
 * desugared text (it need not be accepted: REPL form is not an exact form).  Nothing runs.
 * Seeds: tests/fuzz/corpus/mmadt_parse/ (programs from tests/mmadt/conformance).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hybrid/mmadt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static hyb_mmadt *vm;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        hyb_mmadt_program *p = NULL;
        hyb_error e;
        int r;

        /* compiling does not change the VM: one for the whole run is enough */
        if (!vm && hyb_mmadt_new(NULL, "fuzz", NULL, &vm) < 0)
                abort();
        (void)hyb_mmadt_is_complete((const char *)data, size);
        memset(&e, 0, sizeof(e));
        r = hyb_mmadt_compile(vm, (const char *)data, size, &p, &e);
        if (r < 0) {
                if (p || e.code != r || !e.message[0]) {
                        fprintf(stderr, "refused without an error: %d '%s'\n", r, e.message);
                        abort();
                }
                return 0;
        }
        if (!p)
                abort();
        for (size_t i = 0; i < hyb_mmadt_program_get_n_statements(p); i++) {
                hyb_mmadt_program *again = NULL;
                char *text = NULL;

                r = hyb_mmadt_program_format(p, i, &text);
                if (r < 0 || !text) {
                        fprintf(stderr, "statement %zu does not print: %d\n", i, r);
                        abort();
                }
                if (hyb_mmadt_compile(vm, text, strlen(text), &again, &e) >= 0)
                        hyb_mmadt_program_unref(again);
                hyb_free(text);
        }
        hyb_mmadt_program_unref(p);
        return 0;
}
