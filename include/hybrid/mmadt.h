/* SPDX-License-Identifier: MIT */
/*
 * hybrid/mmadt.h - the mm-ADT language (doc/mmadt.md): compile, run, extend.
 *
 * A hyb_mmadt is one running program: a VM bound to a hyb_scope (the program
 * scope of relative fURIs, `~/` home, the host store), with its limits
 * (instruction budget, recursion depth, memory), its subscriptions and its
 * processes.  Text compiles to a hyb_mmadt_program (a list of statements,
 * each compact bytecode); running a statement pushes a stream of objs
 * through its instructions and hands every result obj to a callback.
 *
 *   hyb_mmadt *vm;  hyb_mmadt_program *p;
 *   hyb_mmadt_new(NULL, "demo", NULL, &vm);
 *   hyb_mmadt_compile(vm, "3.plus(2).mult(2)", (size_t)-1, &p, &err);
 *   hyb_mmadt_run(vm, p, NULL, print_one, NULL, &err);   -> print_one(10)
 *
 * A handle is used from one thread at a time.  Runtime errors are
 * HYB_E_RUNTIME, HYB_E_TYPE, HYB_E_OVERFLOW, HYB_E_DIV_ZERO, HYB_E_BUDGET,
 * HYB_E_DEPTH, HYB_E_LIMIT (memory), HYB_E_SCOPE; parse errors HYB_E_PARSE with
 * line and column in *reterr.
 */
#ifndef HYBRID_MMADT_H
#define HYBRID_MMADT_H

#include <hybrid/broker.h>
#include <hybrid/common.h>
#include <hybrid/furi.h>
#include <hybrid/obj.h>
#include <hybrid/store.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hyb_mmadt hyb_mmadt;
typedef struct hyb_mmadt_program hyb_mmadt_program;

/* Limits; initialise with hyb_mmadt_options_init() then set what you need.  Members beyond
 * `size` are not read (older callers), and a zero member means the default. */
typedef struct hyb_mmadt_options {
        size_t size;        /* sizeof(hyb_mmadt_options), set by _init */
        uint64_t budget;    /* instructions per statement (subscriptions included); default 10M */
        unsigned max_depth; /* nested code applications (calls, polys, args); default 400 */
        size_t max_memory;  /* bytes of values a statement may build; default 64 MiB */
} hyb_mmadt_options;

/*
 * Initialises the `size` bytes at opts, the struct as the caller's header declares it
 * (sizeof *opts where it is compiled): stamps `size` and writes the defaults (zeroes and the
 * documented default values) of the members that fit in it.
 * Nothing beyond `size` is written; nothing at all for NULL or a size too small to hold
 * the size member.  Call it through the macro hyb_mmadt_options_init(opts) below.
 */
HYB_EXPORT void hyb_mmadt_options_init_sized(hyb_mmadt_options *opts, size_t size);
/*
 * Deprecated: the symbol of programs built before hyb_mmadt_options_init_sized.  It
 * cannot know the caller's size and writes this library's sizeof(hyb_mmadt_options).
 * In source, hyb_mmadt_options_init(opts) is this macro, which passes the caller's size.
 */
HYB_EXPORT void hyb_mmadt_options_init(hyb_mmadt_options *opts);
#define hyb_mmadt_options_init(opts) hyb_mmadt_options_init_sized((opts), sizeof *(opts))

/*
 * A VM for the program `program` (used for `~/`, i.e. /home/<program>/).
 * scope may be NULL: a new router over an in-process memory host store.
 * opts may be NULL for the defaults.
 */
HYB_EXPORT int hyb_mmadt_new(hyb_scope *scope, const char *program, const hyb_mmadt_options *opts,
                             hyb_mmadt **ret);
HYB_EXPORT hyb_mmadt *hyb_mmadt_ref(const hyb_mmadt *vm);
/* Drops a reference; the last one halts the processes, unsubscribes and frees. Returns NULL. */
HYB_EXPORT hyb_mmadt *hyb_mmadt_unref(hyb_mmadt *vm);
/* The router (borrowed). */
HYB_EXPORT hyb_scope *hyb_mmadt_get_scope(hyb_mmadt *vm);

/* Limits (0 restores the default). */
HYB_EXPORT int hyb_mmadt_set_budget(hyb_mmadt *vm, uint64_t instructions);
HYB_EXPORT int hyb_mmadt_set_max_depth(hyb_mmadt *vm, unsigned depth);
HYB_EXPORT int hyb_mmadt_set_max_memory(hyb_mmadt *vm, size_t bytes);

/*
 * Compiles text[0..len) (len (size_t)-1: NUL-terminated).  Statements end at
 * `;` and at a newline outside brackets.  Errors: HYB_E_PARSE (line, column
 * and offset in *reterr), HYB_E_DEPTH, HYB_E_OVERFLOW, -ENOMEM.
 */
HYB_EXPORT int hyb_mmadt_compile(hyb_mmadt *vm, const char *text, size_t len,
                                 hyb_mmadt_program **ret, hyb_error *reterr);
/* A compiled program is reference counted like every handle; the last unref frees it.  Run it
 * only on the VM that compiled it.  _unref(NULL) is a no-op; both return as sd-bus. */
HYB_EXPORT hyb_mmadt_program *hyb_mmadt_program_ref(const hyb_mmadt_program *p);
HYB_EXPORT hyb_mmadt_program *hyb_mmadt_program_unref(hyb_mmadt_program *p);
HYB_EXPORT size_t hyb_mmadt_program_get_n_statements(const hyb_mmadt_program *p);
/* Statement i printed desugared (`*a.plus(1)` -> `from(a).plus(1)`); *ret to hyb_free(). */
HYB_EXPORT int hyb_mmadt_program_format(const hyb_mmadt_program *p, size_t i, char **ret);

/* Called once per result obj (borrowed); return non-zero to stop the run (returned as is). */
typedef int (*hyb_mmadt_result_fn)(const hyb_obj *result, void *userdata);

/*
 * Runs statement i (each statement starts from input; NULL = noobj), then
 * delivers the subscription messages it caused.  noobj results are not
 * reported, nor are the results of a statement ended by `;` (FhatOS's end():
 * `a -> 12; *a` reports only 12).  0, the callback's non-zero value, or an error.
 */
HYB_EXPORT int hyb_mmadt_run_statement(hyb_mmadt *vm, hyb_mmadt_program *p, size_t i,
                                       const hyb_obj *input, hyb_mmadt_result_fn fn, void *userdata,
                                       hyb_error *reterr);
/* Every statement in order; stops at the first error. */
HYB_EXPORT int hyb_mmadt_run(hyb_mmadt *vm, hyb_mmadt_program *p, const hyb_obj *input,
                             hyb_mmadt_result_fn fn, void *userdata, hyb_error *reterr);
/* Compile and run text; the results of every statement as one stream (HYB_OBJ_OBJS). */
HYB_EXPORT int hyb_mmadt_eval(hyb_mmadt *vm, const char *text, size_t len, const hyb_obj *input,
                              hyb_obj **ret, hyb_error *reterr);

/*
 * Does text hold complete statements (brackets, quotes, `=== ===` comments,
 * `_/ \_` and `_] [_` pairs balanced)?  1 yes, 0 no: the REPL reads on.
 */
HYB_EXPORT int hyb_mmadt_is_complete(const char *text, size_t len);

/*
 * The kernel's own obj at f, as a program of vm reads it (doc/mmadt.md):
 * `/sys/scheduler[/...]` (vm's threads and fibers), `/type/<name>` of a
 * built-in type, `/type/` all of them.  1 with *ret (a new reference) when f
 * names one, 0 when it does not (the store holds what is there), or < 0 with
 * reterr.  A daemon answers its clients' reads with it (hyb_broker_set_kernel).
 */
HYB_EXPORT int hyb_mmadt_read_kernel(hyb_mmadt *vm, const hyb_furi *f, hyb_obj **ret,
                                     hyb_error *reterr);
/* One scheduler turn: deliver messages, step fibers; > 0 if it did something. */
HYB_EXPORT int hyb_mmadt_step(hyb_mmadt *vm, hyb_error *reterr);
/* Halts every thread and fiber this VM started. */
HYB_EXPORT int hyb_mmadt_halt_all(hyb_mmadt *vm);

/*
 * Native instructions: fn(vm, lhs, args, n_args, &ret, userdata, reterr) with
 * borrowed lhs and (already applied) args; sets *ret to a new reference
 * (noobj: set it to hyb_obj_noobj() or leave NULL).  Registered at a fURI
 * (`/my/inst`, or a bare name such as `twice`) and called as `5.twice()`.
 * The slot unregisters.
 */
typedef int (*hyb_mmadt_native_fn)(hyb_mmadt *vm, const hyb_obj *lhs, const hyb_obj *const *args,
                                   size_t n_args, hyb_obj **ret, void *userdata, hyb_error *reterr);
HYB_EXPORT int hyb_mmadt_register_instruction(hyb_mmadt *vm, const char *furi,
                                              hyb_mmadt_native_fn fn, void *userdata,
                                              hyb_slot **ret_slot);
/* Native types: fn returns 1 (a T), 0 (not a T), or < 0 (an error).  `T[v]`, `?T`, `as(T)`. */
typedef int (*hyb_mmadt_type_fn)(hyb_mmadt *vm, const hyb_obj *value, void *userdata);
HYB_EXPORT int hyb_mmadt_register_type(hyb_mmadt *vm, const char *furi, hyb_mmadt_type_fn fn,
                                       void *userdata, hyb_slot **ret_slot);

/* ---- boot: a daemon's programs (FhatOS's boot loader; doc/mmadt.md "Boot") ---- */

typedef struct hyb_boot hyb_boot;

/*
 * Boots from the `boot:` key of cfg (doc/config.md) into scope: first every
 * `boot.data` fURI that holds nothing gets its obj literal, then every
 * `boot.programs` entry (inline text or a file) is compiled and run, in
 * order, on one VM (program name "boot") over scope.  An entry that fails is
 * logged through log (may be NULL) at HYB_LOG_ERROR with where it is (FILE:L:C;
 * `boot.programs[N] (config line Y), line L, column C` for inline text) and
 * counted; the boot goes on with the next one.  Then the VM is driven by
 * base (borrowed; it must outlive the boot): the scope's stores' fds and
 * deadlines wake it, and each wake-up delivers subscription messages, steps
 * fibers (every millisecond while some live) and joins threads that ended
 * (threads run on OS threads of their own).  Call it before the daemon
 * listens, so what boots is there before the first client.  Returns 0 (entry
 * errors included: hyb_boot_get_n_errors), or -EINVAL, -ENOMEM.
 */
HYB_EXPORT int hyb_boot_new(hyb_scope *scope, struct event_base *base,
                            const hyb_broker_config *cfg, hyb_log_fn log, void *userdata,
                            hyb_boot **ret);
/* Halts the boot VM's threads and fibers, removes its events and frees it.  Returns NULL. */
HYB_EXPORT hyb_boot *hyb_boot_free(hyb_boot *b);
/*
 * Step 1 of hyb_boot_new again, with the `boot.data` of cfg (a configuration read anew, as
 * on SIGHUP): each fURI that holds nothing now gets its obj literal; a value already there,
 * from the first boot or written since, is kept.  `boot.programs` are not run again (they
 * run once, at the start).  An entry that fails is logged and counted as at boot.  Returns
 * 0 (entry errors included), or -EINVAL.
 */
HYB_EXPORT int hyb_boot_reload(hyb_boot *b, const hyb_broker_config *cfg);
/* The boot VM (borrowed). */
HYB_EXPORT hyb_mmadt *hyb_boot_get_vm(hyb_boot *b);
/* Entries (data or programs) that failed at boot, plus failures while serving since. */
HYB_EXPORT unsigned hyb_boot_get_n_errors(const hyb_boot *b);

#ifdef __cplusplus
}
#endif

#endif
