/* SPDX-License-Identifier: MIT */
/*
 * Internal view of the mm-ADT VM: tagged register values, compiled code,
 * the instruction set (opcodes.h), the VM handle, and the cross-file names
 * of the instruction families.  Not installed.
 *
 *   mm_code (refcounted, shared by code objs and the program)
 *   +-------+------+-----------------------+-----------------------------+
 *   | n_ref | kind | ins[0..n_ins)         | args[0..n_args)             |
 *   |       |      |  op aux nargs arg ----+-> key  kind  k | code*     |
 *   +-------+------+-----------------------+-----------------------------+
 *   | INST only: name, range, domain, coefficients, params[], body*      |
 *   +--------------------------------------------------------------------+
 *
 * A chain is a flat array of instructions; each instruction's arguments
 * are a slice of args[]: a constant (kind MM_ARG_K) or nested code
 * (MM_ARG_CODE), with an optional key (named arguments, rec keys).
 */
#ifndef HYB_MMADT_INTERNAL_H
#define HYB_MMADT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "hybrid/mmadt.h"
#include "common/slot.h"
#include "common/util.h"
#include "obj/obj-internal.h"

/* ---- tagged values: ints, reals and bools live in registers, the rest is boxed ---- */
enum {
        MV_NOOBJ = 0,
        MV_BOOL,
        MV_INT,
        MV_REAL,
        MV_OBJ, /* u.o: an owned reference (str, uri, polys, code, typed or identified) */
};

#define MVF_REF 0x1u /* read by reference (`@a`): arithmetic writes through */

typedef struct mm_val {
        uint8_t k;
        uint8_t flags;
        union {
                bool b;
                int64_t i;
                double r;
                hyb_obj *o;
        } u;
} mm_val;

#define MV_NONE ((mm_val){.k = MV_NOOBJ})
static inline mm_val mv_int(int64_t i)
{
        return (mm_val){.k = MV_INT, .u.i = i};
}
static inline mm_val mv_real(double r)
{
        return (mm_val){.k = MV_REAL, .u.r = r};
}
static inline mm_val mv_bool(bool b)
{
        return (mm_val){.k = MV_BOOL, .u.b = b};
}
/* Steals o (normalised: plain ints/reals/bools unbox, noobj becomes MV_NOOBJ). */
mm_val mv_obj(hyb_obj *o);
/* A new reference on o (borrowed). */
mm_val mv_from(const hyb_obj *o);
mm_val mv_copy(const mm_val *v);
void mv_clear(mm_val *v);
/* A new hyb_obj reference for v (ints, reals, bools get boxed). */
int mv_box(const mm_val *v, hyb_obj **ret);
/* The kind of v as hyb_obj_kind; the borrowed obj of a boxed value or NULL. */
hyb_obj_kind mv_kind(const mm_val *v);
static inline const hyb_obj *mv_o(const mm_val *v)
{
        return v->k == MV_OBJ ? v->u.o : NULL;
}
static inline bool mv_is_noobj(const mm_val *v)
{
        return v->k == MV_NOOBJ;
}
/* Numeric/bool payload whatever the boxing. */
int64_t mv_int_of(const mm_val *v);
double mv_real_of(const mm_val *v);
bool mv_bool_of(const mm_val *v);
const hyb_furi *mv_type_id(const mm_val *v);
const hyb_furi *mv_value_id(const mm_val *v);
bool mv_equal(const mm_val *a, const mm_val *b);
/* Text form (REPL) into a fresh string, for error messages; never NULL on success. */
char *mv_text(const mm_val *v);

/* ---- compiled code ---- */
typedef struct mm_code mm_code;

enum { MM_ARG_K = 0, MM_ARG_CODE = 1 };

typedef struct mm_arg {
        hyb_obj *key; /* rec key / argument name (NULL: positional) */
        uint8_t kind;
        mm_val k;      /* MM_ARG_K */
        mm_code *code; /* MM_ARG_CODE */
        /* MM_ARG_CODE: its quoted form (poly_quote), made on first use and shared after; set
         * atomically (code may run in several threads) and freed by arg_clear */
        hyb_obj *quoted;
} mm_arg;

typedef struct mm_ins {
        uint8_t op;
        uint8_t aux; /* sub-operation (arith, compare) or flags */
        uint16_t nargs;
        uint32_t arg; /* first argument in code->args */
} mm_ins;

enum { MM_CODE_CHAIN = 0, MM_CODE_INST = 1 };

typedef struct mm_coef {
        int64_t min, max; /* max -1 = unbounded; {1,1} when absent */
} mm_coef;

struct mm_code {
        atomic_uint n_ref;
        uint8_t kind;
        bool has_barrier;
        bool has_call; /* an OP_CALL: it may name a gathering instruction (inst_gathers) */
        bool silent; /* a statement ended by `;` (FhatOS end()): results dropped */
        /* every instruction is `_` or arith/cmp/iscmp with one argument: vm_apply1 may evaluate it
         * without the dispatch loop when the input and arguments are plain ints */
        bool simple;
        mm_ins *ins;
        size_t n_ins, alloc_ins;
        mm_arg *args;
        size_t n_args, alloc_args;
        /* MM_CODE_INST: name?range{c}<=domain{c}(params)[body] */
        hyb_obj *name;           /* uri or NULL */
        hyb_obj *range, *domain; /* type uris or NULL */
        mm_coef rcoef, dcoef;
        mm_code *params; /* its args[] are the parameter specs (key = name) */
        mm_code *body;
        /* source offset of each instruction (read only on a runtime error), and which
         * compiled text the offsets are into (0: none, e.g. built-in templates) */
        uint32_t *pos; /* UINT32_MAX: unknown */
        size_t n_pos, alloc_pos;
        uint32_t src_id;
};

mm_code *code_new(int kind);
mm_code *code_ref(mm_code *c);
mm_code *code_unref(mm_code *c);
/* Appends an instruction with n arguments taken from args (moved). Returns its index or < 0. */
int code_emit(mm_code *c, int op, int aux, mm_arg *args, size_t n);
/* A code obj for c (a new reference to c is taken). */
int code_box(mm_code *c, hyb_obj **ret);
/* The mm_code of a code obj (borrowed) or NULL. */
mm_code *code_unbox(const hyb_obj *o);
/* Compiles code text as printed (a source code obj's, obj-code.c) to a code obj. */
int code_build(const char *text, size_t len, hyb_obj **ret);
/* Text form (desugared) of code. */
void code_format(const mm_code *c, unsigned flags, obj_buf *b);
void arg_clear(mm_arg *a);

/* ---- the instruction set ---- */
#include "opcodes.h"

typedef struct mm_opinfo {
        const char *name; /* the printed (desugared) name */
        uint8_t quoted;   /* arguments taken as code, unevaluated */
        uint8_t barrier;  /* consumes the whole stream */
} mm_opinfo;
extern const mm_opinfo mm_ops[OP__MAX];

/* ---- the VM ---- */
typedef struct mm_sink mm_sink;
struct mm_sink {
        /* Receives v (moved in: the sink owns it). < 0 error, > 0 stop. */
        int (*fn)(hyb_mmadt *vm, mm_val *v, mm_sink *s);
        void *ud;
};

typedef struct mm_msg mm_msg;

typedef struct mm_frame {
        struct mm_frame *up;
        hyb_obj *args; /* rec of name => value (positional as <0>, <1>) */
        /* a subscription delivery's frame instead (target, payload, retain), read in place:
         * no rec built per message */
        const mm_msg *msg;
} mm_frame;

typedef struct mm_native {
        hyb_slot slot; /* first: the registration's slot */
        hyb_mmadt *vm;
        hyb_furi *furi;
        hyb_mmadt_native_fn fn;
        hyb_mmadt_type_fn type_fn;
        struct mm_native *next;
} mm_native;

typedef struct mm_sub {
        hyb_mmadt *vm;
        hyb_slot *slot;
        hyb_furi *pattern;
        hyb_obj *code; /* on_recv */
        struct mm_sub *next;
} mm_sub;

struct mm_msg {
        hyb_furi *target;
        hyb_obj *payload;
        bool retain;
        hyb_obj *code;
        struct mm_msg *next;
};

typedef struct mm_proc {
        hyb_furi *id; /* where the thread/fiber obj lives */
        bool fiber;
        /* a thread: its OS thread, running the loop on a VM of its own (tvm) over the same
         * scope; stop asks it to end, done says it has (then the owner joins it) */
        bool started;
        pthread_t tid;
        hyb_mmadt *tvm;
        atomic_bool stop, done;
        int error;          /* the error that ended it (0: none); message in err */
        hyb_error err;
        struct mm_proc *next;
} mm_proc;

struct hyb_mmadt {
        atomic_uint n_ref;
        hyb_scope *scope;
        char *program;
        hyb_mmadt_options opts;
        /* per statement */
        uint64_t budget_left;
        unsigned depth;
        size_t mem_used;
        hyb_error *err; /* where runtime errors go (never NULL while running) */
        hyb_error err_local;
        mm_frame *frame;
        /* extensions */
        mm_native *natives;
        mm_sub *subs;
        /* messages for this VM's subscriptions; queued under msgs_lock (an OS thread's VM gets
         * them from the owner's thread, which alone processes the scope) */
        mm_msg *msgs, **msgs_tail;
        pthread_mutex_t msgs_lock;
        bool is_thread; /* the VM of an OS thread: never processes the scope itself */
        mm_proc *procs;
        bool delivering;
        int stop;              /* a result callback's non-zero value */
        /* where the running statement failed: the innermost failing instruction that has a
         * position in the statement's own text (set on the error path only) */
        uint32_t src_id;
        bool err_placed;
        uint32_t err_off;
        hyb_obj *templates[8]; /* built-in rec templates, compiled on first use */
        /* the last uri a splice (`k/{{_}}`) parsed and its text: `to(k/{{_}}).from(k/{{_}})`
         * splices the same text twice per obj */
        char *splice_text;
        size_t splice_len;
        hyb_obj *splice_uri;
};

/* vm.c */
/* Records the source position of c's instruction pc as where the error happened (first wins). */
void vm_place(hyb_mmadt *vm, const mm_code *c, size_t pc);
int vm_fail(hyb_mmadt *vm, int code, const char *fmt, ...) _printf_(3, 4);
/* Runs code on one input (moved) from pc to end, results to s. */
int vm_run(hyb_mmadt *vm, const mm_code *c, size_t pc, size_t end, mm_val in, mm_sink *s);
/* Runs a whole code (barriers included) on one input (moved). */
int vm_exec(hyb_mmadt *vm, const mm_code *c, mm_val in, mm_sink *s);
/* Applies code to in (borrowed): the single result, the stream of several as objs, or noobj. */
int vm_apply1(hyb_mmadt *vm, const mm_code *c, const mm_val *in, mm_val *out);
/* Applies any obj as a step (constant, uri, poly, code) to in (borrowed), results to s. */
int vm_apply_obj(hyb_mmadt *vm, const hyb_obj *o, const mm_val *in, mm_sink *s);
int vm_apply_obj1(hyb_mmadt *vm, const hyb_obj *o, const mm_val *in, mm_val *out);
/* Argument i of ins evaluated on cur (borrowed). */
int vm_arg(hyb_mmadt *vm, const mm_code *c, const mm_ins *ins, unsigned i, const mm_val *cur,
           mm_val *out);
/* Emits v (moved) into s, spilling a stream (objs) into its elements. */
int vm_emit(hyb_mmadt *vm, mm_val *v, mm_sink *s);
int vm_charge(hyb_mmadt *vm, size_t bytes);
int vm_deliver(hyb_mmadt *vm);

/* arith.c */
int arith_binary(hyb_mmadt *vm, int op, const mm_val *a, const mm_val *b, mm_val *out);
int arith_neg(hyb_mmadt *vm, const mm_val *a, mm_val *out);
/* Re-tags a result with the left operand's type and value id (and re-checks the type). */
int arith_keep_ids(hyb_mmadt *vm, const mm_val *left, mm_val *res);
/* compare.c */
int cmp_op(hyb_mmadt *vm, int op, const mm_val *a, const mm_val *b, mm_val *out);
bool mm_match(hyb_mmadt *vm, const mm_val *x, const hyb_obj *pattern, int *err);
/* mmadt-poly.c */
int poly_index_uri(hyb_mmadt *vm, const mm_val *cur, const hyb_furi *f, mm_sink *s);
int poly_shift(hyb_mmadt *vm, const mm_val *cur, int64_t n, bool left, mm_val *out);
/* mmadt-store.c */
int st_read(hyb_mmadt *vm, const hyb_furi *f, mm_val *out);
int st_write(hyb_mmadt *vm, const hyb_furi *f, const mm_val *v, unsigned flags);
int st_uri_of(hyb_mmadt *vm, const mm_val *v, const hyb_furi **ret);
void st_unsubscribe_all(hyb_mmadt *vm);
/* types.c */
int type_resolve(hyb_mmadt *vm, const hyb_furi *name, hyb_furi **ret_id, hyb_obj **ret_def);
/* Checks v against type id; 1 yes, 0 no, < 0 error.  *out (may be NULL) the value completed
 * by a template. */
int type_check(hyb_mmadt *vm, const hyb_furi *tid, const mm_val *v, mm_val *out);
int type_apply(hyb_mmadt *vm, const hyb_furi *name, const mm_val *v, mm_val *out);
int type_isa(hyb_mmadt *vm, const hyb_obj *t, const mm_val *v);
int type_as(hyb_mmadt *vm, const hyb_obj *t, const mm_val *v, mm_val *out);
int type_of(hyb_mmadt *vm, const mm_val *v, mm_val *out);
const char *type_short(const hyb_furi *tid);
/* /type/<name> of a built-in type as an obj (1, *ret set), 0 when name is not built in. */
int type_describe(hyb_mmadt *vm, const char *name, hyb_obj **ret);
/* /type/ as a rec of every built-in type uri => its description. */
int type_describe_all(hyb_mmadt *vm, hyb_obj **ret);
/* inst.c */
/* Calls def on cur with the arguments of ins from index first (c NULL: none). */
int inst_call(hyb_mmadt *vm, const mm_code *def, const mm_code *c, const mm_ins *ins,
              unsigned first, const mm_val *cur, mm_sink *s);
void inst_detach_natives(hyb_mmadt *vm);
/* Definitions ever built whose domain coefficient takes more than one obj: while 0, no call
 * can gather and vm_exec keeps its one-pass fast path. */
extern atomic_uint mm_gathering_defs;
static inline bool inst_coef_gathers(const mm_coef *k)
{
        return k->max < 0 || k->max > 1;
}
/* proc.c */
int proc_call(hyb_mmadt *vm, const hyb_furi *res, const char *name, const mm_code *c,
              const mm_ins *ins, const mm_val *cur, mm_sink *s);
int proc_step_all(hyb_mmadt *vm);
int proc_halt_all(hyb_mmadt *vm);
/* Live fibers of vm (the owner's loop steps them every turn). */
size_t proc_n_fibers(hyb_mmadt *vm);
/* /sys/scheduler as a rec: [threads=>[[id=>t,state=>'running'],...], fibers=>[...]]. */
int proc_scheduler_obj(hyb_mmadt *vm, hyb_obj **ret);
/* api.c: the per-statement state around a run outside hyb_mmadt_run_statement. */
void mm_begin(hyb_mmadt *vm, hyb_error *reterr);
int mm_end(hyb_mmadt *vm, int r);
/* api.c: evaluates src inside a running statement (no reset); the first result. */
int mm_eval_nested(hyb_mmadt *vm, const char *src, hyb_obj **ret);

/* lexer.c / parser.c */
int mm_parse(hyb_mmadt *vm, const char *text, size_t len, mm_code ***ret_stmts, size_t *ret_n,
             hyb_error *reterr);

#endif
