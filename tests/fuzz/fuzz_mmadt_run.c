/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the mm-ADT VM: compiles the input and runs every statement, REPL
 * style (go on after an error, one scheduler turn between statements), on a fresh VM with a
 * fresh in-process memory store and small limits (budget, recursion depth, memory), then
 * halts every process and frees the VM.  Every result is printed in both forms.  No input
 * may crash, leak, hang or exhaust memory: a run that takes longer than RUN_LIMIT_NS of wall
 * time aborts (libFuzzer's -timeout catches a run that never returns).
 * Seeds: tests/fuzz/corpus/mmadt_run/ (programs from tests/mmadt/conformance).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hybrid/mmadt.h"

#define BUDGET 20000           /* instructions per statement */
#define MAX_DEPTH 64           /* nested code applications */
#define MAX_MEMORY (1u << 20)  /* bytes of values per statement */
#define STEPS 3                /* scheduler turns after the program */
#define RUN_LIMIT_NS 2000000000ull

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int print_result(const hyb_obj *o, void *userdata)
{
        char *repl = NULL, *exact = NULL;

        (void)userdata;
        if (hyb_obj_format(o, HYB_FORMAT_REPL, &repl) < 0 ||
            hyb_obj_format(o, HYB_FORMAT_EXACT, &exact) < 0)
                abort();
        hyb_free(repl);
        hyb_free(exact);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        hyb_mmadt_options opts;
        hyb_mmadt_program *p = NULL;
        hyb_mmadt *vm = NULL;
        hyb_error e;
        uint64_t t0;

        /* inputs larger than this only make the fuzzer slow, not the search wider */
        if (size > 4096)
                return 0;
        hyb_mmadt_options_init(&opts);
        opts.budget = BUDGET;
        opts.max_depth = MAX_DEPTH;
        opts.max_memory = MAX_MEMORY;
        if (hyb_mmadt_new(NULL, "fuzz", &opts, &vm) < 0)
                abort();
        t0 = now_ns();
        if (hyb_mmadt_compile(vm, (const char *)data, size, &p, &e) >= 0) {
                for (size_t i = 0; i < hyb_mmadt_program_get_n_statements(p); i++) {
                        (void)hyb_mmadt_run_statement(vm, p, i, NULL, print_result, NULL, &e);
                        (void)hyb_mmadt_step(vm, &e);
                }
                for (int k = 0; k < STEPS; k++)
                        (void)hyb_mmadt_step(vm, &e);
                hyb_mmadt_program_unref(p);
        }
        hyb_mmadt_halt_all(vm);
        hyb_mmadt_unref(vm);
        if (now_ns() - t0 > RUN_LIMIT_NS) {
                fprintf(stderr, "fuzz_mmadt_run: the run took %.2f s (limit 2 s)\n",
                        (now_ns() - t0) / 1e9);
                abort();
        }
        return 0;
}
