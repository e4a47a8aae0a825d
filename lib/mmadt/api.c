/* SPDX-License-Identifier: MIT */
/*
 * The public face of the VM (hybrid/mmadt.h): handles, limits, compiling,
 * running statements with a result callback, and the scheduler turn.
 */
#include "family.h"
#include "lexer.h"
#include "common/ref.h"
#include "common/sized.h"

#define DEFAULT_BUDGET 10000000ull
#define DEFAULT_DEPTH 400u
#define DEFAULT_MEMORY ((size_t)64 << 20)

struct hyb_mmadt_program {
        atomic_uint n_ref;
        mm_code **stmts;
        size_t n;
        char *text; /* the source, to turn a runtime error's offset into a line and column */
        size_t len;
};

HYB_EXPORT void hyb_mmadt_options_init_sized(hyb_mmadt_options *opts, size_t size)
{
        hyb_mmadt_options d = { .size = sizeof(d),
                                .budget = DEFAULT_BUDGET,
                                .max_depth = DEFAULT_DEPTH,
                                .max_memory = DEFAULT_MEMORY };

        sized_init(opts, size, &d, sizeof(d));
}

/* The symbol of programs built before _init_sized (the header's macro hides the name). */
HYB_EXPORT void (hyb_mmadt_options_init)(hyb_mmadt_options *opts)
{
        hyb_mmadt_options_init_sized(opts, sizeof(*opts));
}

HYB_EXPORT int hyb_mmadt_new(hyb_scope *scope, const char *program, const hyb_mmadt_options *opts,
                             hyb_mmadt **ret)
{
        hyb_mmadt *vm;
        int r;

        hyb_assert_return(ret, -EINVAL);
        /* code read back as text (a store file) prints in the REPL form through the compiler */
        obj_code_set_compiler(code_build);
        vm = calloc(1, sizeof(*vm));
        if (!vm)
                return -ENOMEM;
        atomic_init(&vm->n_ref, 1);
        hyb_mmadt_options_init(&vm->opts);
        if (opts) {
                /* The size stamp: members beyond an older caller's size are not read. */
                hyb_mmadt_options given = { 0 };
                size_t sz = opts->size && opts->size < sizeof(given) ? opts->size : sizeof(given);

                memcpy(&given, opts, sz);
                if (given.budget)
                        vm->opts.budget = given.budget;
                if (given.max_depth)
                        vm->opts.max_depth = given.max_depth;
                if (given.max_memory)
                        vm->opts.max_memory = given.max_memory;
        }
        vm->program = strdup(program ? program : "mmadt");
        vm->msgs_tail = &vm->msgs;
        pthread_mutex_init(&vm->msgs_lock, NULL);
        vm->err = &vm->err_local;
        if (!vm->program) {
                free(vm);
                return -ENOMEM;
        }
        if (scope) {
                vm->scope = hyb_scope_ref(scope);
        } else {
                r = hyb_scope_new(NULL, NULL, vm->program, &vm->scope);
                if (r < 0) {
                        free(vm->program);
                        free(vm);
                        return r;
                }
        }
        *ret = vm;
        return 0;
}

static void mmadt_free(hyb_mmadt *vm)
{
        proc_halt_all(vm);
        st_unsubscribe_all(vm);
        inst_detach_natives(vm);
        for (size_t i = 0; i < ELEMENTSOF(vm->templates); i++)
                hyb_obj_unref(vm->templates[i]);
        free(vm->splice_text);
        hyb_obj_unref(vm->splice_uri);
        hyb_scope_unref(vm->scope);
        pthread_mutex_destroy(&vm->msgs_lock);
        free(vm->program);
        free(vm);
}

HYB_DEFINE_REF_UNREF(hyb_mmadt, hyb_mmadt, mmadt_free)

HYB_EXPORT hyb_scope *hyb_mmadt_get_scope(hyb_mmadt *vm)
{
        return vm ? vm->scope : NULL;
}

HYB_EXPORT int hyb_mmadt_set_budget(hyb_mmadt *vm, uint64_t instructions)
{
        hyb_assert_return(vm, -EINVAL);
        vm->opts.budget = instructions ? instructions : DEFAULT_BUDGET;
        return 0;
}

HYB_EXPORT int hyb_mmadt_set_max_depth(hyb_mmadt *vm, unsigned depth)
{
        hyb_assert_return(vm, -EINVAL);
        vm->opts.max_depth = depth ? depth : DEFAULT_DEPTH;
        return 0;
}

HYB_EXPORT int hyb_mmadt_set_max_memory(hyb_mmadt *vm, size_t bytes)
{
        hyb_assert_return(vm, -EINVAL);
        vm->opts.max_memory = bytes ? bytes : DEFAULT_MEMORY;
        return 0;
}

HYB_EXPORT int hyb_mmadt_compile(hyb_mmadt *vm, const char *text, size_t len,
                                 hyb_mmadt_program **ret, hyb_error *reterr)
{
        hyb_mmadt_program *p;
        int r;

        hyb_assert_return(text && ret, -EINVAL);
        if (len == (size_t)-1)
                len = strlen(text);
        hyb_error_clear(reterr);
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->n_ref = 1;
        r = mm_parse(vm, text, len, &p->stmts, &p->n, reterr);
        if (r < 0) {
                free(p);
                return r;
        }
        p->text = malloc(len + 1);
        if (!p->text) {
                hyb_mmadt_program_unref(p);
                return -ENOMEM;
        }
        memcpy(p->text, text, len);
        p->text[len] = '\0';
        p->len = len;
        *ret = p;
        return 0;
}

static void program_free(hyb_mmadt_program *p)
{
        for (size_t i = 0; i < p->n; i++)
                code_unref(p->stmts[i]);
        free(p->stmts);
        free(p->text);
        free(p);
}

HYB_DEFINE_REF_UNREF(hyb_mmadt_program, hyb_mmadt_program, program_free)

HYB_EXPORT size_t hyb_mmadt_program_get_n_statements(const hyb_mmadt_program *p)
{
        return p ? p->n : 0;
}

HYB_EXPORT int hyb_mmadt_program_format(const hyb_mmadt_program *p, size_t i, char **ret)
{
        obj_buf b = {0};

        hyb_assert_return(p && ret && i < p->n, -EINVAL);
        code_format(p->stmts[i], HYB_FORMAT_REPL, &b);
        obj_buf_putc(&b, '\0');
        if (b.err) {
                free(b.data);
                return b.err;
        }
        *ret = b.data;
        return 0;
}

typedef struct result_sink {
        mm_sink s;
        hyb_mmadt_result_fn fn;
        void *userdata;
        bool silent;
} result_sink;

static int result_fn(hyb_mmadt *vm, mm_val *v, mm_sink *s)
{
        result_sink *rs = (result_sink *)s;
        hyb_obj *o = NULL;
        int r;

        if (mv_is_noobj(v) || rs->silent) {
                mv_clear(v);
                return 0;
        }
        r = mv_box(v, &o);
        mv_clear(v);
        if (r < 0)
                return r;
        r = rs->fn ? rs->fn(o, rs->userdata) : 0;
        hyb_obj_unref(o);
        if (r != 0) {
                vm->stop = r;
                return MM_E_STOP;
        }
        return 0;
}

static void reset(hyb_mmadt *vm, hyb_error *reterr)
{
        vm->err = reterr ? reterr : &vm->err_local;
        hyb_error_clear(vm->err);
        vm->budget_left = vm->opts.budget;
        vm->depth = 0;
        vm->mem_used = 0;
        vm->frame = NULL;
        vm->stop = 0;
        vm->src_id = 0;
        vm->err_placed = false;
}

/*
 * A runtime error of statement c gets a position: the innermost failing instruction written in
 * this text, else the statement's start.  Only the error path pays for it.
 */
static void place_error(hyb_mmadt *vm, const hyb_mmadt_program *p, const mm_code *c)
{
        hyb_error *e = vm->err;
        uint32_t off;
        int line = 1, col = 1;
        size_t n;

        if (!e->code || e->line)
                return;
        if (vm->err_placed)
                off = vm->err_off;
        else if (c->n_pos && c->pos[0] != UINT32_MAX)
                off = c->pos[0];
        else
                return;
        if (off > p->len)
                return;
        for (uint32_t i = 0; i < off; i++) {
                if (p->text[i] == '\n') {
                        line++;
                        col = 1;
                } else {
                        col++;
                }
        }
        e->line = line;
        e->column = col;
        e->offset = off;
        n = strlen(e->message);
        snprintf(e->message + n, sizeof(e->message) - n, " at line %d column %d", line, col);
}

static int finish(hyb_mmadt *vm, int r)
{
        if (r == MM_E_STOP) {
                hyb_error_clear(vm->err);
                r = vm->stop;
        } else if (r < 0 && !vm->err->code) {
                err_set(vm->err, r, -1, "%s", hyb_strerror(r));
        } else if (r < 0) {
                r = vm->err->code;
        }
        vm->err = &vm->err_local;
        return r;
}

void mm_begin(hyb_mmadt *vm, hyb_error *reterr)
{
        reset(vm, reterr);
}

int mm_end(hyb_mmadt *vm, int r)
{
        return finish(vm, r);
}

HYB_EXPORT int hyb_mmadt_run_statement(hyb_mmadt *vm, hyb_mmadt_program *p, size_t i,
                                       const hyb_obj *input, hyb_mmadt_result_fn fn, void *userdata,
                                       hyb_error *reterr)
{
        result_sink rs = {{result_fn, NULL}, fn, userdata, false};
        int r;

        hyb_assert_return(vm && p && i < p->n, -EINVAL);
        rs.silent = p->stmts[i]->silent;
        reset(vm, reterr);
        vm->src_id = p->stmts[i]->src_id;
        r = vm_exec(vm, p->stmts[i], input ? mv_from(input) : MV_NONE, &rs.s);
        if (r >= 0)
                r = vm_deliver(vm);
        if (r < 0 && r != MM_E_STOP)
                place_error(vm, p, p->stmts[i]);
        return finish(vm, r < 0 ? r : 0);
}

HYB_EXPORT int hyb_mmadt_run(hyb_mmadt *vm, hyb_mmadt_program *p, const hyb_obj *input,
                             hyb_mmadt_result_fn fn, void *userdata, hyb_error *reterr)
{
        hyb_assert_return(vm && p, -EINVAL);
        for (size_t i = 0; i < p->n; i++) {
                int r = hyb_mmadt_run_statement(vm, p, i, input, fn, userdata, reterr);
                if (r != 0)
                        return r;
        }
        return 0;
}

static int append_fn(const hyb_obj *o, void *userdata)
{
        return obj_lst_append(userdata, hyb_obj_ref(o));
}

HYB_EXPORT int hyb_mmadt_eval(hyb_mmadt *vm, const char *text, size_t len, const hyb_obj *input,
                              hyb_obj **ret, hyb_error *reterr)
{
        hyb_mmadt_program *p = NULL;
        hyb_obj *all = NULL;
        int r;

        hyb_assert_return(vm && text && ret, -EINVAL);
        r = hyb_mmadt_compile(vm, text, len, &p, reterr);
        if (r < 0)
                return r;
        r = obj_lst_builder(HYB_OBJ_OBJS, 4, &all);
        if (r >= 0)
                r = hyb_mmadt_run(vm, p, input, append_fn, all, reterr);
        hyb_mmadt_program_unref(p);
        if (r != 0) {
                hyb_obj_unref(all);
                return r < 0 ? r : -EIO;
        }
        *ret = all;
        return 0;
}

int mm_eval_nested(hyb_mmadt *vm, const char *src, hyb_obj **ret)
{
        mm_code **stmts = NULL;
        size_t n = 0;
        mm_val v = MV_NONE;
        int r = mm_parse(vm, src, strlen(src), &stmts, &n, NULL);

        if (r < 0)
                return vm_fail(vm, r, "internal program failed to compile");
        if (n)
                r = vm_apply1(vm, stmts[0], &v, &v);
        for (size_t i = 0; i < n; i++)
                code_unref(stmts[i]);
        free(stmts);
        if (r >= 0)
                r = mv_box(&v, ret);
        mv_clear(&v);
        return r;
}

HYB_EXPORT int hyb_mmadt_is_complete(const char *text, size_t len)
{
        mm_lexer ls;
        mm_token t = {0};
        int r;

        if (!text)
                return 1;
        if (len == (size_t)-1)
                len = strlen(text);
        lex_init(&ls, text, len, text, 0, NULL);
        do {
                r = lex_next(&ls, &t);
        } while (r >= 0 && t.t != TK_EOF);
        tok_clear(&t);
        if (ls.incomplete)
                return 0;
        if (r < 0)
                return 1;
        return ls.depth == 0;
}

HYB_EXPORT int hyb_mmadt_step(hyb_mmadt *vm, hyb_error *reterr)
{
        int r, did;

        hyb_assert_return(vm, -EINVAL);
        reset(vm, reterr);
        r = vm_deliver(vm);
        did = r > 0;
        if (r >= 0) {
                r = proc_step_all(vm);
                did = did || r > 0;
        }
        if (r >= 0) {
                r = vm_deliver(vm);
                did = did || r > 0;
        }
        r = finish(vm, r < 0 ? r : 0);
        return r < 0 ? r : did;
}

HYB_EXPORT int hyb_mmadt_halt_all(hyb_mmadt *vm)
{
        hyb_assert_return(vm, -EINVAL);
        return proc_halt_all(vm);
}
