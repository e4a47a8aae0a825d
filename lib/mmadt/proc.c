/* SPDX-License-Identifier: MIT */
/*
 * Processes and `u::name(args)`: threads (`scheduler::spawn(@t)`), each on
 * an OS thread of its own with a VM of its own over the same scope; fibers
 * (`scheduler::bundle(@f)`), stepped cooperatively once per scheduler turn
 * (hyb_mmadt_step, run by the REPL between statements and by a daemon's
 * loop) until their `halt` field is true; and coroutines (`g::next()`,
 * `g::take(n)`), whose state is their `init` field, stepped by the caller.
 *
 *   vm->procs -> [t: thread, tid, tvm] -> [f: fiber] -> NULL  (ids of stored recs)
 *
 * What the threads share: the scope and its stores (locked by the store),
 * code objs (atomic reference counts; a code's quoted form is set atomically),
 * nothing else of the owner's VM: a thread's subscriptions queue to its own VM
 * under its msgs_lock, and only the owner's thread processes the scope.
 */
#include <assert.h>

#include "family.h"

static int read_id(hyb_mmadt *vm, const mm_val *v, const hyb_furi **ret)
{
        const hyb_furi *id = mv_value_id(v);

        if (!id && mv_kind(v) == HYB_OBJ_URI)
                id = hyb_obj_get_uri(mv_o(v));
        if (!id)
                return vm_fail(vm, HYB_E_RUNTIME,
                               "a process needs an obj with a value id (obj@id)");
        *ret = id;
        return 0;
}

static int set_field(hyb_mmadt *vm, const hyb_furi *id, const char *field, mm_val *v)
{
        char buf[HYB_FURI_MAX_LENGTH + 32];
        hyb_furi *f = NULL;
        int r;

        snprintf(buf, sizeof(buf), "%s/%s", hyb_furi_get_path_str(id), field);
        r = hyb_furi_parse(buf, (size_t)-1, NULL, &f, NULL);
        if (r < 0)
                return vm_fail(vm, r, "invalid process id %s", hyb_furi_get_str(id));
        r = st_write(vm, f, v, 0);
        hyb_furi_unref(f);
        return r;
}

/* Reads the process obj at id: its loop (NULL: none) and whether it is halted. */
static int proc_read(hyb_mmadt *vm, const hyb_furi *id, mm_val *obj, const hyb_obj **loop,
                     bool *halted)
{
        hyb_obj *k = NULL;
        const hyb_obj *halt = NULL;
        int r = st_read(vm, id, obj);

        *loop = NULL;
        *halted = false;
        if (r < 0 || mv_kind(obj) != HYB_OBJ_REC)
                return r;
        r = hyb_obj_new_uri_str("halt", &k, NULL);
        if (r < 0)
                return r;
        halt = poly_rec_get(mv_o(obj), k);
        hyb_obj_unref(k);
        k = NULL;
        r = hyb_obj_new_uri_str("loop", &k, NULL);
        if (r < 0)
                return r;
        *loop = poly_rec_get(mv_o(obj), k);
        hyb_obj_unref(k);
        *halted = halt && hyb_obj_get_kind(halt) == HYB_OBJ_BOOL && hyb_obj_get_bool(halt);
        return 0;
}

/*
 * A thread's OS thread: its loop runs again and again on the thread obj (read afresh each
 * time, so `t/halt -> true` from anywhere ends it), each run a statement of its own (budget,
 * depth and memory limits), with the messages of the subscriptions it made delivered between
 * runs.  The owner joins it (proc_reap).
 */
static void *thread_main(void *userdata)
{
        mm_proc *p = userdata;
        hyb_mmadt *vm = p->tvm;
        int r = 0;

        while (!atomic_load(&p->stop)) {
                mm_val obj = MV_NONE, y = MV_NONE;
                const hyb_obj *loop;
                bool halted;

                mm_begin(vm, &p->err);
                r = proc_read(vm, p->id, &obj, &loop, &halted);
                if (r >= 0 && (!loop || halted)) {
                        mv_clear(&obj);
                        mm_end(vm, 0);
                        break;
                }
                if (r >= 0)
                        r = vm_apply_obj1(vm, loop, &obj, &y);
                mv_clear(&y);
                mv_clear(&obj);
                if (r >= 0)
                        r = vm_deliver(vm);
                r = mm_end(vm, r < 0 ? r : 0);
                if (r < 0)
                        break;
        }
        p->error = r < 0 ? r : 0;
        atomic_store(&p->done, true);
        return NULL;
}

static int thread_start(hyb_mmadt *vm, mm_proc *p)
{
        int r;

        r = hyb_mmadt_new(vm->scope, vm->program, &vm->opts, &p->tvm);
        if (r < 0)
                return r;
        p->tvm->is_thread = true;
        atomic_store(&p->stop, false);
        atomic_store(&p->done, false);
        p->error = 0;
        hyb_error_clear(&p->err);
        r = -pthread_create(&p->tid, NULL, thread_main, p);
        if (r < 0) {
                p->tvm = hyb_mmadt_unref(p->tvm);
                return vm_fail(vm, r, "cannot start a thread: %s", strerror(-r));
        }
        p->started = true;
        return 0;
}

/* Stops (when asked) and joins p's OS thread, if it has one. */
static void thread_join(mm_proc *p, bool stop)
{
        if (!p->started)
                return;
        if (stop)
                atomic_store(&p->stop, true);
        pthread_join(p->tid, NULL);
        p->started = false;
        p->tvm = hyb_mmadt_unref(p->tvm);
}

static void proc_free(mm_proc *p)
{
        thread_join(p, true);
        hyb_furi_unref(p->id);
        free(p);
}

static int spawn(hyb_mmadt *vm, const mm_val *arg, bool fiber, mm_val *out)
{
        const hyb_furi *id = NULL;
        mm_val no = mv_bool(false);
        mm_proc *p;
        int r = read_id(vm, arg, &id);

        if (r < 0)
                return r;
        r = set_field(vm, id, "halt", &no);
        if (r < 0)
                return r;
        for (p = vm->procs; p; p = p->next)
                if (hyb_furi_equal(p->id, id))
                        break;
        if (p && !p->fiber && p->started && atomic_load(&p->done))
                /* it ended (halted, or an error): a new spawn starts it again */
                thread_join(p, false);
        if (!p) {
                p = calloc(1, sizeof(*p));
                if (!p)
                        return -ENOMEM;
                p->id = hyb_furi_ref(id);
                p->fiber = fiber;
                p->next = vm->procs;
                vm->procs = p;
        }
        if (!p->fiber && !p->started) {
                r = thread_start(vm, p);
                if (r < 0)
                        return r;
        }
        return st_read(vm, id, out);
}

/*
 * One turn: every live fiber runs its loop once on its stored obj; threads run by themselves,
 * and those that ended are joined (an ended thread stays listed, with its state, until it is
 * spawned again or the VM halts).
 */
int proc_step_all(hyb_mmadt *vm)
{
        int r = 0, did = 0;

        for (mm_proc **pp = &vm->procs; *pp && r >= 0;) {
                mm_proc *p = *pp;
                mm_val obj = MV_NONE, y = MV_NONE;
                const hyb_obj *loop;
                bool halted;

                if (!p->fiber) {
                        if (p->started && atomic_load(&p->done)) {
                                thread_join(p, false);
                                did = 1;
                        }
                        pp = &p->next;
                        continue;
                }
                r = proc_read(vm, p->id, &obj, &loop, &halted);
                if (r < 0)
                        break;
                if (!loop || halted) {
                        *pp = p->next;
                        proc_free(p);
                        mv_clear(&obj);
                        continue;
                }
                did = 1;
                r = vm_apply_obj1(vm, loop, &obj, &y);
                mv_clear(&y);
                mv_clear(&obj);
                pp = &p->next;
        }
        return r < 0 ? r : did;
}

int proc_halt_all(hyb_mmadt *vm)
{
        while (vm->procs) {
                mm_proc *p = vm->procs;
                mm_val yes = mv_bool(true);
                vm->procs = p->next;
                thread_join(p, true);
                (void)set_field(vm, p->id, "halt", &yes);
                proc_free(p);
        }
        return 0;
}

size_t proc_n_fibers(hyb_mmadt *vm)
{
        size_t n = 0;

        for (mm_proc *p = vm->procs; p; p = p->next)
                n += p->fiber;
        return n;
}

/* A rec of n uri keys (borrowed text) and values (stolen, freed also on error). */
static int rec_of(const char *const *keys, hyb_obj **values, size_t n, hyb_obj **ret)
{
        hyb_obj *k[4] = { NULL };
        int r = 0;

        assert(n <= ELEMENTSOF(k));
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = values[i] ? hyb_obj_new_uri_str(keys[i], &k[i], NULL) : -ENOMEM;
        if (r >= 0)
                r = hyb_obj_new_rec(k, values, n, ret);
        for (size_t i = 0; i < n; i++) {
                hyb_obj_unref(k[i]);
                hyb_obj_unref(values[i]);
        }
        return r;
}

/* [id=>t, state=>'running'|'halted'|'error'(, error=>'message')] */
static int proc_entry(mm_proc *p, hyb_obj **ret)
{
        static const char *const keys[] = { "id", "state", "error" };
        const char *state = "running";
        hyb_obj *v[3] = { NULL };
        size_t n = 2;

        bool failed = false;

        /* error and err are written by the thread before done, and read only after it */
        if (!p->fiber && (!p->started || atomic_load(&p->done))) {
                failed = p->error != 0;
                state = failed ? "error" : "halted";
        }
        (void)obj_new_uri_steal(hyb_furi_ref(p->id), &v[0]);
        (void)hyb_obj_new_str(state, (size_t)-1, &v[1]);
        if (failed) {
                (void)hyb_obj_new_str(p->err.message, (size_t)-1, &v[2]);
                n = 3;
        }
        return rec_of(keys, v, n, ret);
}

int proc_scheduler_obj(hyb_mmadt *vm, hyb_obj **ret)
{
        static const char *const keys[] = { "threads", "fibers" };
        hyb_obj *lst[2] = { NULL, NULL };
        size_t n[2] = { 0, 0 };
        hyb_obj **items[2] = { NULL, NULL };
        int r = 0;

        for (mm_proc *p = vm->procs; p; p = p->next)
                n[p->fiber]++;
        for (int f = 0; f < 2 && r >= 0; f++) {
                items[f] = calloc(n[f] + 1, sizeof(hyb_obj *));
                if (!items[f])
                        r = -ENOMEM;
        }
        if (r >= 0) {
                /* in spawn order: the list is newest first */
                size_t at[2] = { n[0], n[1] };
                for (mm_proc *p = vm->procs; r >= 0 && p; p = p->next)
                        r = proc_entry(p, &items[p->fiber][--at[p->fiber]]);
        }
        for (int f = 0; f < 2 && r >= 0; f++)
                r = hyb_obj_new_lst(items[f], n[f], &lst[f]);
        for (int f = 0; f < 2; f++) {
                for (size_t i = 0; items[f] && i < n[f]; i++)
                        hyb_obj_unref(items[f][i]);
                free(items[f]);
        }
        if (r < 0) {
                hyb_obj_unref(lst[0]);
                hyb_obj_unref(lst[1]);
                return r;
        }
        return rec_of(keys, lst, 2, ret);
}

/* g::next(): step applied to the state (init), stored back; the new state. */
static int co_next(hyb_mmadt *vm, const hyb_furi *id, mm_val *out)
{
        mm_val obj = MV_NONE, st = MV_NONE;
        hyb_obj *ki = NULL, *ks = NULL;
        const hyb_obj *init, *step;
        int r = st_read(vm, id, &obj);

        if (r < 0)
                return r;
        if (mv_kind(&obj) != HYB_OBJ_REC) {
                mv_clear(&obj);
                return vm_fail(vm, HYB_E_TYPE, "%s holds no coroutine", hyb_furi_get_str(id));
        }
        r = hyb_obj_new_uri_str("init", &ki, NULL);
        if (r >= 0)
                r = hyb_obj_new_uri_str("step", &ks, NULL);
        init = ki ? poly_rec_get(mv_o(&obj), ki) : NULL;
        step = ks ? poly_rec_get(mv_o(&obj), ks) : NULL;
        if (r >= 0 && !step)
                r = vm_fail(vm, HYB_E_TYPE, "%s holds no coroutine (no step)", hyb_furi_get_str(id));
        if (r >= 0) {
                mm_val in = init ? mv_from(init) : MV_NONE;
                r = vm_apply_obj1(vm, step, &in, &st);
                mv_clear(&in);
        }
        if (r >= 0)
                r = set_field(vm, id, "init", &st);
        hyb_obj_unref(ki);
        hyb_obj_unref(ks);
        mv_clear(&obj);
        if (r < 0) {
                mv_clear(&st);
                return r;
        }
        *out = st;
        return 0;
}

int proc_call(hyb_mmadt *vm, const hyb_furi *res, const char *name, const mm_code *c,
              const mm_ins *ins, const mm_val *cur, mm_sink *s)
{
        const char *rs = hyb_furi_get_path_str(res);
        mm_val a = MV_NONE, v = MV_NONE, obj = MV_NONE;
        int r = 0;

        if (strcmp(rs, "scheduler") == 0 || strcmp(rs, "/sys/scheduler") == 0) {
                if (ins->nargs > 2)
                        r = vm_arg(vm, c, ins, 2, cur, &a);
                if (r < 0)
                        return r;
                if (strcmp(name, "spawn") == 0 || strcmp(name, "bundle") == 0)
                        r = spawn(vm, &a, name[0] == 'b', &v);
                else
                        r = vm_fail(vm, HYB_E_NOT_FOUND, "unknown instruction %s::%s", rs, name);
                mv_clear(&a);
                if (r < 0)
                        return r;
                return vm_emit(vm, &v, s);
        }
        if (strcmp(name, "next") == 0 || strcmp(name, "take") == 0) {
                int64_t n = 1;
                if (name[0] == 't') {
                        r = vm_arg(vm, c, ins, 2, cur, &a);
                        if (r >= 0 && mv_kind(&a) != HYB_OBJ_INT)
                                r = vm_fail(vm, HYB_E_TYPE, "take needs an int count");
                        n = mv_int_of(&a);
                        mv_clear(&a);
                        if (r < 0)
                                return r;
                }
                for (int64_t i = 0; r >= 0 && i < n; i++) {
                        r = co_next(vm, res, &v);
                        if (r >= 0)
                                r = vm_emit(vm, &v, s);
                }
                return r;
        }
        /* the instruction `name` of the type of the obj stored at res */
        r = st_read(vm, res, &obj);
        if (r >= 0) {
                const hyb_furi *t = mv_type_id(&obj);
                char buf[HYB_FURI_MAX_LENGTH * 2];
                hyb_obj *def = NULL;
                mm_code *d;
                snprintf(buf, sizeof(buf), "%s::%s", t ? hyb_furi_get_path_str(t) : rs, name);
                {
                        hyb_furi *f = NULL;
                        if (hyb_furi_parse(buf, (size_t)-1, NULL, &f, NULL) >= 0) {
                                r = hyb_scope_read(vm->scope, f, &def, NULL);
                                hyb_furi_unref(f);
                        }
                }
                d = def ? code_unbox(def) : NULL;
                if (r >= 0 && d && d->kind == MM_CODE_INST)
                        r = inst_call(vm, d, c, ins, 2, &obj, s);
                else if (r >= 0)
                        r = vm_fail(vm, HYB_E_NOT_FOUND, "unknown instruction %s", buf);
                hyb_obj_unref(def);
        }
        mv_clear(&obj);
        return r;
}

MM_FAM(op_res)
{
        const hyb_obj *res = mv_o(&c->args[ins->arg].k);
        const hyb_obj *nm = mv_o(&c->args[ins->arg + 1].k);
        int r = proc_call(vm, hyb_obj_get_uri(res), hyb_obj_get_str(nm, NULL), c, ins, cur, rest);

        return r < 0 ? r : MM_DONE;
}
