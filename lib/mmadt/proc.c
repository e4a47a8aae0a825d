/* SPDX-License-Identifier: MIT */
/*
 * Processes and `u::name(args)`: threads and fibers registered with the
 * scheduler (`scheduler::spawn(@t)`, `scheduler::bundle(@f)`), stepped
 * cooperatively once per scheduler turn (hyb_mmadt_step, run by the REPL
 * between statements) until their `halt` field is true; and coroutines
 * (`g::next()`, `g::take(n)`), whose state is their `init` field.
 *
 *   vm->procs -> [t: thread] -> [f: fiber] -> NULL     (ids of stored recs)
 */
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
        if (!p) {
                p = calloc(1, sizeof(*p));
                if (!p)
                        return -ENOMEM;
                p->id = hyb_furi_ref(id);
                p->fiber = fiber;
                p->next = vm->procs;
                vm->procs = p;
        }
        return st_read(vm, id, out);
}

/* One turn: every live process runs its loop once on its stored obj. */
int proc_step_all(hyb_mmadt *vm)
{
        int r = 0, did = 0;

        for (mm_proc **pp = &vm->procs; *pp && r >= 0;) {
                mm_proc *p = *pp;
                mm_val obj = MV_NONE, y = MV_NONE;
                const hyb_obj *loop, *halt;

                r = st_read(vm, p->id, &obj);
                if (r < 0)
                        break;
                halt = NULL;
                {
                        hyb_obj *k = NULL;
                        if (hyb_obj_new_uri_str("halt", &k, NULL) >= 0 &&
                            mv_kind(&obj) == HYB_OBJ_REC)
                                halt = poly_rec_get(mv_o(&obj), k);
                        hyb_obj_unref(k);
                        k = NULL;
                        loop = NULL;
                        if (hyb_obj_new_uri_str("loop", &k, NULL) >= 0 &&
                            mv_kind(&obj) == HYB_OBJ_REC)
                                loop = poly_rec_get(mv_o(&obj), k);
                        hyb_obj_unref(k);
                }
                if (!loop || (halt && hyb_obj_get_bool(halt))) {
                        *pp = p->next;
                        hyb_furi_unref(p->id);
                        free(p);
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
                (void)set_field(vm, p->id, "halt", &yes);
                hyb_furi_unref(p->id);
                free(p);
        }
        return 0;
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
