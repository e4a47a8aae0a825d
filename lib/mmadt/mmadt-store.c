/* SPDX-License-Identifier: MIT */
/*
 * The store in the language: `*u` (from), `.to(u)`, `u -> v` (ref),
 * `u --> v` (transient), `v <- u` (ref_op), `obj@u` and `@u` (at, by
 * reference), typed reads and writes `a?int`, and subscriptions
 * `pattern?sub -> code`.  Everything goes through the program's hyb_scope.
 *
 * Subscription messages are queued by the store at the write; vm_deliver
 * (run after every statement and on every scheduler turn) drains them:
 *
 *   write -> hyb_store queue -> hyb_scope_process -> on_msg -> vm->msgs -> on_recv code
 */
#include "family.h"

int st_uri_of(hyb_mmadt *vm, const mm_val *v, const hyb_furi **ret)
{
        if (mv_kind(v) != HYB_OBJ_URI) {
                char *s = mv_text(v);
                int r = vm_fail(vm, HYB_E_TYPE, "expected a uri, not %s", s);
                free(s);
                return r;
        }
        *ret = hyb_obj_get_uri(mv_o(v));
        return 0;
}

/* The query word naming a type (`a?int`), or NULL (none, or `sub`). */
static const char *query_type(const hyb_furi *f)
{
        const char *q = hyb_furi_get_query(f);

        if (!q || !*q || strcmp(q, "sub") == 0 || strchr(q, '=') || strchr(q, '&'))
                return NULL;
        return q;
}

static int check_typed(hyb_mmadt *vm, const char *tname, const mm_val *v, const char *what)
{
        hyb_furi *t = NULL;
        int r;

        if (!tname || mv_is_noobj(v))
                return 0;
        r = hyb_furi_parse(tname, (size_t)-1, NULL, &t, NULL);
        if (r < 0)
                return vm_fail(vm, HYB_E_PARSE, "invalid type '%s'", tname);
        r = type_check(vm, t, v, NULL);
        hyb_furi_unref(t);
        if (r == 0) {
                char *s = mv_text(v);
                r = vm_fail(vm, HYB_E_TYPE, "%s: %s is not a %s", what, s, tname);
                free(s);
        }
        return r < 0 ? r : 0;
}

/* ---- the kernel's own objs: /sys/scheduler and /type/ (read-only) ---- */

/* Is f's path /<a>/<b>... with segment 0 == a (and segment 1 == b when b)? */
static bool under(const hyb_furi *f, const char *a, const char *b)
{
        size_t len;
        const char *seg;

        if (hyb_furi_get_scope(f) != HYB_SCOPE_HOST || hyb_furi_get_n_segments(f) < (b ? 2u : 1u))
                return false;
        seg = hyb_furi_get_segment(f, 0, &len);
        if (!seg || len != strlen(a) || memcmp(seg, a, len) != 0)
                return false;
        if (!b)
                return true;
        seg = hyb_furi_get_segment(f, 1, &len);
        return seg && len == strlen(b) && memcmp(seg, b, len) == 0;
}

/* The rest of f past its first k segments applied to o (stolen): indexing inside a kernel obj. */
static int index_kernel_obj(hyb_mmadt *vm, hyb_obj *o, const hyb_furi *f, size_t k, mm_val *out)
{
        mm_vec vec = {0};
        mm_val pv = mv_obj(o);
        hyb_furi *noq = NULL, *rest = NULL;
        int r;

        if (hyb_furi_get_n_segments(f) <= k) {
                *out = pv;
                return 0;
        }
        r = hyb_furi_strip_query(f, &noq);
        if (r >= 0)
                r = hyb_furi_shift(noq, (long)k, &rest);
        if (r >= 0)
                r = poly_index_collect(vm, &pv, rest, &vec);
        hyb_furi_unref(rest);
        hyb_furi_unref(noq);
        mv_clear(&pv);
        if (r >= 0 && vec.n == 1 && !hyb_furi_is_pattern(f)) {
                *out = vec.v[0];
                vec.v[0] = MV_NONE;
        } else if (r >= 0 && vec.n) {
                hyb_obj *all = NULL;
                r = vec_to_objs(&vec, false, &all);
                if (r >= 0)
                        *out = mv_obj(all);
        }
        vec_clear(&vec);
        return r;
}

/*
 * /sys/scheduler[/...]: this VM's threads and fibers with their state; /type/<name> of a
 * built-in type: its description, /type/ all of them.  1 when f named one (*out set), 0 when
 * not (the store answers), < 0 an error.
 */
static int kernel_read(hyb_mmadt *vm, const hyb_furi *f, mm_val *out)
{
        hyb_obj *o = NULL;
        size_t len;
        const char *seg;
        char name[64];
        int r;

        if (under(f, "sys", "scheduler")) {
                r = proc_scheduler_obj(vm, &o);
                if (r < 0)
                        return vm_fail(vm, r, "read %s: %s", hyb_furi_get_str(f), hyb_strerror(r));
                r = index_kernel_obj(vm, o, f, 2, out);
                return r < 0 ? r : 1;
        }
        if (!under(f, "type", NULL) || hyb_furi_is_pattern(f))
                return 0;
        if (hyb_furi_get_n_segments(f) == 1 && hyb_furi_is_branch(f)) {
                r = type_describe_all(vm, &o);
                if (r < 0)
                        return vm_fail(vm, r, "read /type/: %s", hyb_strerror(r));
                *out = mv_obj(o);
                return 1;
        }
        if (hyb_furi_get_n_segments(f) < 2)
                return 0;
        seg = hyb_furi_get_segment(f, 1, &len);
        if (!seg || len >= sizeof(name))
                return 0;
        memcpy(name, seg, len);
        name[len] = '\0';
        r = type_describe(vm, name, &o);
        if (r <= 0)
                return r < 0 ? vm_fail(vm, r, "read %s: %s", hyb_furi_get_str(f), vm->err->message)
                             : 0;
        r = index_kernel_obj(vm, o, f, 2, out);
        return r < 0 ? r : 1;
}

HYB_EXPORT int hyb_mmadt_read_kernel(hyb_mmadt *vm, const hyb_furi *f, hyb_obj **ret,
                                     hyb_error *reterr)
{
        mm_val v = MV_NONE;
        const char *seg;
        size_t len;
        int r;

        hyb_assert_return(vm && f && ret, -EINVAL);
        *ret = NULL;
        /* A daemon asks about every write and node read: a fURI whose first segment is
         * neither kernel root is answered here, without entering the VM (kernel_read would
         * answer 0: it reads only under /sys/scheduler and /type). */
        seg = hyb_furi_get_segment(f, 0, &len);
        if (!seg || !((len == 3 && memcmp(seg, "sys", 3) == 0) ||
                      (len == 4 && memcmp(seg, "type", 4) == 0)))
                return 0;
        mm_begin(vm, reterr);
        r = kernel_read(vm, f, &v);
        if (r > 0) {
                int b = mv_box(&v, ret);

                if (b < 0)
                        r = b;
        }
        mv_clear(&v);
        if (r < 0)
                return mm_end(vm, r);
        (void)mm_end(vm, 0);
        return r;
}

/* Writes to /sys/... and to a built-in /type/<name> are errors, as in FhatOS. */
static int kernel_write_check(hyb_mmadt *vm, const hyb_furi *f)
{
        size_t len;
        const char *seg;
        char name[64];
        hyb_obj *o = NULL;
        int r;

        if (under(f, "sys", NULL))
                return vm_fail(vm, HYB_E_READ_ONLY, "write %s: /sys/ is read-only",
                               hyb_furi_get_str(f));
        if (!under(f, "type", NULL) || hyb_furi_get_n_segments(f) < 2)
                return 0;
        seg = hyb_furi_get_segment(f, 1, &len);
        if (!seg || len >= sizeof(name))
                return 0;
        memcpy(name, seg, len);
        name[len] = '\0';
        r = type_describe(vm, name, &o);
        hyb_obj_unref(o);
        if (r > 0)
                return vm_fail(vm, HYB_E_READ_ONLY, "write %s: the built-in type %s is read-only",
                               hyb_furi_get_str(f), name);
        return r < 0 ? r : 0;
}

int st_read(hyb_mmadt *vm, const hyb_furi *f, mm_val *out)
{
        hyb_error e = {0};
        hyb_obj *o = NULL;
        int r;

        *out = MV_NONE;
        r = kernel_read(vm, f, out);
        if (r != 0)
                return r < 0 ? r : 0;
        r = hyb_scope_read(vm->scope, f, &o, &e);
        if (r < 0)
                return vm_fail(vm, r, "read %s: %s", hyb_furi_get_str(f), e.message);
        /* reads inside stored polys (`/a/b/0` in a lst at `/a/b`) are the store's: the
         * backend's read gives them, as it gives them to every other client */
        *out = mv_obj(o);
        return 0;
}

int st_write(hyb_mmadt *vm, const hyb_furi *f, const mm_val *v, unsigned flags)
{
        hyb_error e = {0};
        hyb_obj *o = NULL;
        int r = kernel_write_check(vm, f);

        if (r < 0)
                return r;
        r = mv_box(v, &o);
        if (r < 0)
                return r;
        r = hyb_scope_write(vm->scope, f, o, flags, &e);
        hyb_obj_unref(o);
        if (r < 0)
                return vm_fail(vm, r, "write %s: %s", hyb_furi_get_str(f), e.message);
        return 0;
}

/* A write that honours a `?type` query (checked first). */
static int typed_write(hyb_mmadt *vm, const hyb_furi *f, const mm_val *v, unsigned flags)
{
        const char *t = query_type(f);
        hyb_furi *noq = NULL;
        int r;

        if (!t)
                return st_write(vm, f, v, flags);
        r = check_typed(vm, t, v, "write");
        if (r < 0)
                return r;
        r = hyb_furi_strip_query(f, &noq);
        if (r < 0)
                return r;
        r = st_write(vm, noq, v, flags);
        hyb_furi_unref(noq);
        return r;
}

/* ---- subscriptions ---- */

static void on_msg(const hyb_furi *target, const hyb_obj *payload, bool retain, void *userdata)
{
        mm_sub *sub = userdata;
        hyb_mmadt *vm = sub->vm;
        mm_msg *m = calloc(1, sizeof(*m));

        if (!m)
                return;
        m->target = hyb_furi_ref(target);
        m->payload = hyb_obj_ref(payload);
        m->retain = retain;
        m->code = hyb_obj_ref(sub->code);
        pthread_mutex_lock(&vm->msgs_lock);
        *vm->msgs_tail = m;
        vm->msgs_tail = &m->next;
        pthread_mutex_unlock(&vm->msgs_lock);
}

static void sub_free(mm_sub *s)
{
        hyb_slot_unref(s->slot);
        hyb_furi_unref(s->pattern);
        hyb_obj_unref(s->code);
        free(s);
}

void st_unsubscribe_all(hyb_mmadt *vm)
{
        while (vm->subs) {
                mm_sub *s = vm->subs;
                vm->subs = s->next;
                sub_free(s);
        }
        pthread_mutex_lock(&vm->msgs_lock);
        while (vm->msgs) {
                mm_msg *m = vm->msgs;
                vm->msgs = m->next;
                hyb_furi_unref(m->target);
                hyb_obj_unref(m->payload);
                hyb_obj_unref(m->code);
                free(m);
        }
        vm->msgs_tail = &vm->msgs;
        pthread_mutex_unlock(&vm->msgs_lock);
}

static int subscribe(hyb_mmadt *vm, const hyb_furi *f, const mm_val *code)
{
        hyb_furi *pat = NULL;
        hyb_error e = {0};
        mm_sub *s;
        int r = hyb_furi_strip_query(f, &pat);

        if (r < 0)
                return r;
        if (mv_is_noobj(code)) {
                /* `pattern?sub -> noobj` removes every subscription on the pattern */
                for (mm_sub **p = &vm->subs; *p;) {
                        if (hyb_furi_equal((*p)->pattern, pat)) {
                                mm_sub *old = *p;
                                *p = old->next;
                                sub_free(old);
                        } else {
                                p = &(*p)->next;
                        }
                }
                hyb_furi_unref(pat);
                return 0;
        }
        s = calloc(1, sizeof(*s));
        if (!s) {
                hyb_furi_unref(pat);
                return -ENOMEM;
        }
        s->vm = vm;
        s->pattern = pat;
        r = mv_box(code, &s->code);
        if (r >= 0)
                r = hyb_scope_subscribe(vm->scope, pat, 0, on_msg, s, &s->slot, &e);
        if (r < 0) {
                sub_free(s);
                return vm_fail(vm, r, "subscribe %s: %s", hyb_furi_get_str(f), e.message);
        }
        s->next = vm->subs;
        vm->subs = s;
        return 0;
}

/*
 * What one delivered message costs of the instruction budget: it builds a frame and usually
 * writes the store, so a subscription that re-triggers itself runs out in well under a second
 * rather than after millions of store writes.
 */
#define DELIVERY_COST 64

int vm_deliver(hyb_mmadt *vm)
{
        int r = 0, did = 0;

        if (vm->delivering)
                return 0;
        vm->delivering = true;
        for (;;) {
                mm_msg *m;
                bool round = false;
                if (!vm->is_thread) {
                        r = hyb_scope_process(vm->scope);
                        if (r < 0)
                                break;
                }
                for (;;) {
                        mm_frame fr;
                        mm_val in;
                        pthread_mutex_lock(&vm->msgs_lock);
                        m = vm->msgs;
                        if (m) {
                                vm->msgs = m->next;
                                if (!vm->msgs)
                                        vm->msgs_tail = &vm->msgs;
                        }
                        pthread_mutex_unlock(&vm->msgs_lock);
                        if (!m)
                                break;
                        did = 1;
                        round = true;
                        if (vm->budget_left < DELIVERY_COST) {
                                r = vm_fail(vm, HYB_E_BUDGET,
                                            "instruction budget of %llu exhausted (subscriptions)",
                                            (unsigned long long)vm->opts.budget);
                        } else {
                                vm->budget_left -= DELIVERY_COST;
                        }
                        if (r >= 0) {
                                mm_val out = MV_NONE;
                                fr = (mm_frame){.up = vm->frame, .msg = m};
                                vm->frame = &fr;
                                in = mv_from(m->payload);
                                r = vm_apply_obj1(vm, m->code, &in, &out);
                                mv_clear(&in);
                                mv_clear(&out);
                                vm->frame = fr.up;
                        }
                        hyb_furi_unref(m->target);
                        hyb_obj_unref(m->payload);
                        hyb_obj_unref(m->code);
                        free(m);
                        if (r < 0)
                                break;
                }
                if (r < 0 || !round)
                        break;
        }
        vm->delivering = false;
        return r < 0 ? r : did;
}

/* ---- the instructions ---- */

/* `*target`, `*payload`, `*retain` in a subscription: 1 (*out set), 0 another name, < 0. */
static int msg_lookup(const mm_msg *m, const char *seg, size_t len, mm_val *out)
{
        hyb_obj *o = NULL;
        int r;

        if (len == 7 && memcmp(seg, "payload", 7) == 0) {
                *out = mv_from(m->payload);
                return 1;
        }
        if (len == 6 && memcmp(seg, "retain", 6) == 0) {
                *out = mv_bool(m->retain);
                return 1;
        }
        if (len != 6 || memcmp(seg, "target", 6) != 0)
                return 0;
        r = obj_new_uri_steal(hyb_furi_ref(m->target), &o);
        if (r < 0)
                return r;
        *out = mv_obj(o);
        return 1;
}

/* A frame binding (`*a` inside an instruction body, `*payload` in a subscription):
 * 1 (*out set), 0 not a binding, < 0 an error. */
static int frame_lookup(hyb_mmadt *vm, const hyb_furi *f, mm_val *out)
{
        size_t len;
        const char *seg;

        if (!vm->frame || (!vm->frame->args && !vm->frame->msg) || hyb_furi_is_absolute(f) ||
            hyb_furi_get_n_segments(f) != 1 || hyb_furi_get_query(f))
                return 0;
        seg = hyb_furi_get_segment(f, 0, &len);
        if (vm->frame->msg)
                return msg_lookup(vm->frame->msg, seg, len, out);
        for (size_t i = 0; i < hyb_obj_get_len(vm->frame->args); i++) {
                const hyb_obj *k = hyb_obj_get_rec_key(vm->frame->args, i);
                const hyb_furi *kf;
                size_t kl;
                const char *ks;
                if (hyb_obj_get_kind(k) != HYB_OBJ_URI)
                        continue;
                kf = hyb_obj_get_uri(k);
                if (hyb_furi_get_n_segments(kf) != 1)
                        continue;
                ks = hyb_furi_get_segment(kf, 0, &kl);
                if (kl == len && memcmp(ks, seg, len) == 0) {
                        *out = mv_from(hyb_obj_get_rec_value(vm->frame->args, i));
                        return 1;
                }
        }
        return 0;
}

MM_FAM(op_from)
{
        mm_val u, v = MV_NONE;
        const hyb_furi *f = NULL;
        const char *t;
        int r = vm_arg(vm, c, ins, 0, cur, &u);

        if (r < 0)
                return r;
        if (mv_is_noobj(&u)) {
                mv_clear(cur);
                return 0;
        }
        r = st_uri_of(vm, &u, &f);
        if (r >= 0)
                r = frame_lookup(vm, f, &v);
        if (r == 0) {
                t = query_type(f);
                if (t) {
                        hyb_furi *noq = NULL;
                        r = hyb_furi_strip_query(f, &noq);
                        if (r >= 0)
                                r = st_read(vm, noq, &v);
                        hyb_furi_unref(noq);
                        if (r >= 0)
                                r = check_typed(vm, t, &v, "read");
                } else {
                        r = st_read(vm, f, &v);
                }
        }
        if (r >= 0 && mv_is_noobj(&v) && ins->nargs > 1)
                r = vm_arg(vm, c, ins, 1, cur, &v);
        mv_clear(&u);
        if (r < 0) {
                mv_clear(&v);
                return r;
        }
        mv_clear(cur);
        *cur = v;
        return 0;
}

/* Writes cur at the uri the argument gives (applied to cur); *ret_u is that uri value
 * (the caller's, also on error: clear it). Shared by `.to(u)` and `v <- u`. */
static int write_cur_at_arg(hyb_mmadt *vm, const mm_code *c, const mm_ins *ins, mm_val *cur,
                            mm_val *ret_u)
{
        const hyb_furi *f = NULL;
        int r = vm_arg(vm, c, ins, 0, cur, ret_u);

        if (r < 0) {
                *ret_u = MV_NONE;
                return r;
        }
        r = st_uri_of(vm, ret_u, &f);
        if (r >= 0)
                r = typed_write(vm, f, cur, 0);
        return r;
}

/* `.to(u)`: the result is the current obj. */
MM_FAM(op_to)
{
        mm_val u;
        int r = write_cur_at_arg(vm, c, ins, cur, &u);

        mv_clear(&u);
        return r;
}

MM_FAM(op_ref)
{
        mm_val v;
        const hyb_furi *f = NULL;
        int r;

        r = st_uri_of(vm, cur, &f);
        if (r < 0)
                return r;
        if (hyb_furi_query_has(f, "sub")) {
                /* the code is data here: `a?sub -> |to(b)` and `a?sub -> to(b)` alike */
                const mm_arg *a = &c->args[ins->arg];
                hyb_obj *q = NULL;
                if (a->kind == MM_ARG_CODE &&
                    !(a->code->n_ins == 1 && a->code->ins[0].op == OP_BLOCK)) {
                        r = poly_quote(vm, c, ins, 0, cur, &q);
                        if (r < 0)
                                return r;
                        v = mv_obj(q);
                } else {
                        r = vm_arg(vm, c, ins, 0, cur, &v);
                        if (r < 0)
                                return r;
                }
                r = subscribe(vm, f, &v);
        } else {
                r = vm_arg(vm, c, ins, 0, cur, &v);
                if (r < 0)
                        return r;
                r = typed_write(vm, f, &v, ins->aux ? HYB_WRITE_TRANSIENT : 0);
        }
        if (r < 0) {
                mv_clear(&v);
                return r;
        }
        mv_clear(cur);
        *cur = v;
        return 0;
}

/* `v <- u`: the result is u. */
MM_FAM(op_refop)
{
        mm_val u;
        int r = write_cur_at_arg(vm, c, ins, cur, &u);

        if (r < 0) {
                mv_clear(&u);
                return r;
        }
        mv_clear(cur);
        *cur = u;
        return 0;
}

MM_FAM(op_at)
{
        mm_val u, v = MV_NONE;
        const hyb_furi *f = NULL;
        hyb_obj *o = NULL, *t = NULL;
        int r = vm_arg(vm, c, ins, 0, cur, &u);

        if (r < 0)
                return r;
        r = st_uri_of(vm, &u, &f);
        if (r < 0)
                goto out;
        if (mv_is_noobj(cur)) {
                /* @u: read by reference */
                r = st_read(vm, f, &v);
                if (r < 0 || mv_is_noobj(&v))
                        goto out;
                if (!mv_value_id(&v)) {
                        r = mv_box(&v, &o);
                        if (r >= 0)
                                r = hyb_obj_with_id(o, (hyb_furi *)f, &t);
                        if (r < 0)
                                goto out;
                        mv_clear(&v);
                        v = mv_obj(TAKE_PTR(t));
                }
                v.flags |= MVF_REF;
        } else {
                r = mv_box(cur, &o);
                if (r >= 0)
                        r = hyb_obj_with_id(o, (hyb_furi *)f, &t);
                if (r < 0)
                        goto out;
                v = mv_obj(TAKE_PTR(t));
                r = st_write(vm, f, &v, 0);
        }
out:
        hyb_obj_unref(o);
        mv_clear(&u);
        if (r < 0) {
                mv_clear(&v);
                return r;
        }
        mv_clear(cur);
        *cur = v;
        return 0;
}
