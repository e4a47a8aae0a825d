/* SPDX-License-Identifier: MIT */
/*
 * User-defined instructions: `name?range{c}<=domain{c}(params)[body]`,
 * stored at a fURI or written inline, and native instructions registered
 * from C.  A call applies each provided argument to the lhs, passes it
 * through the parameter's spec (a type check, a default, any code), binds
 * it in a frame (`*a`, positional `*<0>`), runs the body on the lhs and
 * checks domain, range and coefficients.  A definition whose domain coefficient
 * takes more than one obj (`{*}`, `{+}`, `{2,5}`) is a barrier: vm_exec gathers
 * the stream and calls it once (call_many).
 *
 *   frame stack:  vm->frame -> [a=>10,b=>30,c=>5] -> (caller's frame) -> NULL
 */
#include <inttypes.h>
#include <stdio.h>

#include "common/slot.h"
#include "family.h"

static const hyb_obj *param_key(const mm_arg *a, size_t i, hyb_obj **tmp)
{
        char buf[24];

        if (a->key)
                return a->key;
        snprintf(buf, sizeof(buf), "%zu", i);
        if (hyb_obj_new_uri_str(buf, tmp, NULL) < 0)
                return NULL;
        return *tmp;
}

static const char *def_name(const mm_code *def)
{
        return def->name ? hyb_furi_get_str(hyb_obj_get_uri(def->name)) : "(anonymous)";
}

static int collect_fn(hyb_mmadt *vm, mm_val *v, mm_sink *s)
{
        return vec_push(vm, s->ud, v);
}

static bool coef_ok(const mm_coef *k, size_t n)
{
        return (int64_t)n >= k->min && (k->max < 0 || (int64_t)n <= k->max);
}

static void coef_text(const mm_coef *k, char *buf, size_t n)
{
        if (k->max < 0)
                snprintf(buf, n, k->min ? "{+}" : "{*}");
        else if (k->min == k->max)
                snprintf(buf, n, "{%" PRId64 "}", k->min);
        else
                snprintf(buf, n, "{%" PRId64 ",%" PRId64 "}", k->min, k->max);
}

/* Whether v (not noobj) is in def's domain type. */
static int domain_isa(hyb_mmadt *vm, const mm_code *def, const mm_val *v)
{
        int r = type_isa(vm, def->domain, v);

        if (r == 0) {
                char *t = mv_text(v);
                r = vm_fail(vm, HYB_E_TYPE, "%s is not a %s (the domain of %s)", t,
                            hyb_furi_get_str(hyb_obj_get_uri(def->domain)), def_name(def));
                free(t);
        }
        if (r < 0)
                return r == HYB_E_NOT_FOUND ? vm_fail(vm, r, "unknown type %s",
                                                      hyb_furi_get_str(hyb_obj_get_uri(def->domain)))
                                            : r;
        return 0;
}

/*
 * The call's frame: each parameter bound to its argument (ac->args[ains->arg + first ..),
 * NULL: none) applied to cur, then passed through the parameter's spec.
 */
static int bind(hyb_mmadt *vm, const mm_code *def, const mm_code *ac, const mm_ins *ains,
                unsigned first, const mm_val *cur, hyb_obj **ret)
{
        const mm_code *pc = def->params;
        const mm_ins *pins = pc && pc->n_ins ? &pc->ins[0] : NULL;
        size_t np = pins ? pins->nargs : 0, na = ains ? ains->nargs - first : 0;
        hyb_obj *frame = NULL;
        int r;

        r = obj_rec_builder(np + na, &frame);
        /* parameters: the provided argument applied to the lhs, then through the spec */
        for (size_t i = 0; r >= 0 && i < np; i++) {
                const mm_arg *spec = &pc->args[pins->arg + i];
                const mm_arg *given = NULL;
                hyb_obj *tmp = NULL, *e = NULL;
                const hyb_obj *key = param_key(spec, i, &tmp);
                mm_val x = MV_NONE, y = MV_NONE;
                size_t pos = 0;

                for (size_t j = 0; ains && j < na; j++) {
                        const mm_arg *a = &ac->args[ains->arg + first + j];
                        if (a->key ? (spec->key && hyb_obj_equal(a->key, spec->key)) : pos++ == i) {
                                given = a;
                                break;
                        }
                }
                if (spec->kind == MM_ARG_CODE && spec->code->n_ins == 1 &&
                    spec->code->ins[0].op == OP_BLOCK) {
                        /* a quoted spec (`f=>|_`): the argument is taken as code, unevaluated */
                        if (given && given->kind == MM_ARG_CODE)
                                r = code_box(given->code, &e);
                        else if (given)
                                r = mv_box(&given->k, &e);
                        if (r >= 0 && key && e)
                                r = obj_rec_set(frame, hyb_obj_ref(key), e);
                        else
                                hyb_obj_unref(e);
                        hyb_obj_unref(tmp);
                        continue;
                }
                if (given)
                        r = vm_arg_apply(vm, given, cur, &x);
                if (r >= 0)
                        r = vm_arg_apply(vm, spec, &x, &y);
                if (r >= 0 && !mv_is_noobj(&x) && mv_is_noobj(&y) && spec->kind == MM_ARG_CODE &&
                    spec->code->n_ins && spec->code->ins[0].op == OP_ISA) {
                        /* a type check in the spec: a wrong argument is an error, not noobj */
                        char *t = mv_text(&x);
                        hyb_obj *ty = NULL;
                        char *tt = NULL;
                        if (poly_quote(vm, spec->code, &spec->code->ins[0], 0, &x, &ty) >= 0)
                                hyb_obj_format(ty, HYB_FORMAT_REPL, &tt);
                        r = vm_fail(vm, HYB_E_TYPE, "%s is not a %s (argument %zu of %s)", t,
                                    tt ? tt : "?", i, def_name(def));
                        free(t);
                        hyb_free(tt);
                        hyb_obj_unref(ty);
                }
                mv_clear(&x);
                if (r >= 0)
                        r = mv_box(&y, &e);
                mv_clear(&y);
                if (r >= 0 && key)
                        r = obj_rec_set(frame, hyb_obj_ref(key), e);
                else
                        hyb_obj_unref(e);
                hyb_obj_unref(tmp);
        }
        /* extra positional arguments as *<i> */
        for (size_t j = 0, pos = 0; r >= 0 && ains && j < na; j++) {
                const mm_arg *a = &ac->args[ains->arg + first + j];
                hyb_obj *tmp = NULL, *e = NULL;
                mm_val x = MV_NONE;
                if (a->key)
                        continue;
                if (pos++ < np)
                        continue;
                r = vm_arg_apply(vm, a, cur, &x);
                if (r >= 0)
                        r = mv_box(&x, &e);
                mv_clear(&x);
                if (r >= 0 && param_key(&(mm_arg){0}, pos - 1, &tmp))
                        r = obj_rec_set(frame, tmp, e);
                else
                        hyb_obj_unref(e);
        }
        if (r < 0) {
                hyb_obj_unref(frame);
                return r;
        }
        *ret = frame;
        return 0;
}

/* Runs def's body under frame (taken) on the stream in (moved out), results into out. */
static int run_body(hyb_mmadt *vm, const mm_code *def, hyb_obj *frame, mm_vec *in, mm_vec *out)
{
        mm_frame fr = {.up = vm->frame, .args = frame};
        int r = 0;

        vm->frame = &fr;
        if (++vm->depth > vm->opts.max_depth)
                r = vm_fail(vm, HYB_E_DEPTH, "recursion deeper than %u", vm->opts.max_depth);
        else if (def->body)
                r = vm_exec_vec(vm, def->body, in, out);
        vm->depth--;
        vm->frame = fr.up;
        hyb_obj_unref(frame);
        vec_clear(in);
        return r;
}

/* The range coefficient and type of what one call yielded. */
static int range_check(hyb_mmadt *vm, const mm_code *def, const mm_vec *out)
{
        char rk[48];
        int r = 0;

        if (!def->range)
                return 0;
        coef_text(&def->rcoef, rk, sizeof(rk));
        if (!coef_ok(&def->rcoef, out->n))
                r = vm_fail(vm, HYB_E_TYPE, "%s yielded %zu objs, outside its range coefficient %s",
                            def_name(def), out->n, rk);
        for (size_t i = 0; r >= 0 && i < out->n; i++) {
                r = type_isa(vm, def->range, &out->v[i]);
                if (r == 0) {
                        char *t = mv_text(&out->v[i]);
                        r = vm_fail(vm, HYB_E_TYPE, "%s is not a %s (the range of %s)", t,
                                    hyb_furi_get_str(hyb_obj_get_uri(def->range)), def_name(def));
                        free(t);
                }
        }
        return r;
}

/*
 * Calls def on cur with the arguments ac->args[ains->arg + first ..) (NULL: none): the
 * per-obj call of a definition whose domain coefficient takes at most one obj.
 */
static int call(hyb_mmadt *vm, const mm_code *def, const mm_code *ac, const mm_ins *ains,
                unsigned first, const mm_val *cur, mm_sink *s)
{
        hyb_obj *frame = NULL;
        mm_vec out = {0};
        mm_sink col = {collect_fn, &out};
        int r;

        /* domain coefficient: a call takes one obj, or none when the current obj is noobj
         * (`{?}`, `{*}` or `{0}` admit noobj; the default `{1}` and `{+}` do not) */
        if (def->domain && !coef_ok(&def->dcoef, mv_is_noobj(cur) ? 0 : 1)) {
                char k[48];
                coef_text(&def->dcoef, k, sizeof(k));
                return vm_fail(vm, HYB_E_TYPE, "%s got %s, outside its domain coefficient %s",
                               def_name(def), mv_is_noobj(cur) ? "no obj (noobj)" : "1 obj", k);
        }
        if (def->domain && !mv_is_noobj(cur)) {
                r = domain_isa(vm, def, cur);
                if (r < 0)
                        return r;
        }
        r = bind(vm, def, ac, ains, first, cur, &frame);
        if (r < 0)
                return r;
        {
                /* one obj: straight through the body, no stream vector */
                mm_frame fr = {.up = vm->frame, .args = frame};
                vm->frame = &fr;
                if (++vm->depth > vm->opts.max_depth)
                        r = vm_fail(vm, HYB_E_DEPTH, "recursion deeper than %u",
                                    vm->opts.max_depth);
                else if (def->body)
                        r = vm_exec(vm, def->body, mv_copy(cur), &col);
                vm->depth--;
                vm->frame = fr.up;
                hyb_obj_unref(frame);
        }
        if (r >= 0)
                r = range_check(vm, def, &out);
        for (size_t i = 0; r >= 0 && i < out.n; i++) {
                mm_val v = out.v[i];
                out.v[i] = MV_NONE;
                r = vm_emit(vm, &v, s);
        }
        vec_clear(&out);
        return r;
}

/*
 * The gathering call (domain coefficient max > 1 or unbounded), a barrier: the whole
 * incoming stream (noobjs dropped) is counted against the coefficient, each obj checked
 * against the domain type, the arguments applied to the first obj (noobj when there is
 * none), and the body run ONCE over the stream as `_] body [_` would (an empty stream
 * starts the body from noobj, as a statement does).
 */
static int call_many(hyb_mmadt *vm, const mm_code *def, const mm_code *ac, const mm_ins *ains,
                     unsigned first, mm_vec *buf)
{
        static const mm_val none = MV_NONE;
        hyb_obj *frame = NULL;
        mm_vec out = {0};
        int r = 0;

        if (!coef_ok(&def->dcoef, buf->n)) {
                char k[48];
                coef_text(&def->dcoef, k, sizeof(k));
                return vm_fail(vm, HYB_E_TYPE, "%s got %zu obj%s, outside its domain coefficient %s",
                               def_name(def), buf->n, buf->n == 1 ? "" : "s", k);
        }
        for (size_t i = 0; def->domain && r >= 0 && i < buf->n; i++)
                r = domain_isa(vm, def, &buf->v[i]);
        if (r >= 0)
                r = bind(vm, def, ac, ains, first, buf->n ? &buf->v[0] : &none, &frame);
        if (r < 0)
                return r;
        if (buf->n == 0) {
                if (grow_array((void **)&buf->v, &buf->alloc, 1, sizeof(mm_val)) < 0) {
                        hyb_obj_unref(frame);
                        return -ENOMEM;
                }
                buf->v[buf->n++] = MV_NONE;
        }
        r = run_body(vm, def, frame, buf, &out);
        if (r >= 0)
                r = range_check(vm, def, &out);
        if (r < 0) {
                vec_clear(&out);
                return r;
        }
        *buf = out;
        return 0;
}

int inst_call(hyb_mmadt *vm, const mm_code *def, const mm_code *c, const mm_ins *ins,
              unsigned first, const mm_val *cur, mm_sink *s)
{
        return call(vm, def, c, ins, first, cur, s);
}

MM_FAM(op_def)
{
        const mm_code *def = c->args[ins->arg].code;
        const mm_code *pc = def->params;
        int r;

        /* inline: the parameters are also the arguments given */
        r = call(vm, def, pc, pc && pc->n_ins ? &pc->ins[0] : NULL, 0, cur, rest);
        return r < 0 ? r : MM_DONE;
}

MM_FAM(op_defval)
{
        hyb_obj *o = NULL;
        int r = code_box(c->args[ins->arg].code, &o);

        if (r < 0)
                return r;
        mv_clear(cur);
        *cur = mv_obj(o);
        return 0;
}

static int call_native(hyb_mmadt *vm, mm_native *n, const mm_code *c, const mm_ins *ins,
                       const mm_val *cur, mm_sink *s)
{
        size_t na = ins->nargs - 1;
        hyb_obj **args = calloc(na + 1, sizeof(hyb_obj *)), *lhs = NULL, *res = NULL;
        hyb_error e = {0};
        mm_val v;
        int r = 0;

        if (!args)
                return -ENOMEM;
        for (size_t i = 0; r >= 0 && i < na; i++) {
                mm_val x;
                r = vm_arg(vm, c, ins, i + 1, cur, &x);
                if (r >= 0)
                        r = mv_box(&x, &args[i]);
                mv_clear(&x);
        }
        if (r >= 0)
                r = mv_box(cur, &lhs);
        if (r >= 0) {
                r = n->fn(vm, lhs, (const hyb_obj *const *)args, na, &res, n->slot.userdata, &e);
                if (r < 0)
                        r = vm_fail(vm, r, "%s: %s", hyb_furi_get_str(n->furi),
                                    e.message[0] ? e.message : hyb_strerror(r));
        }
        for (size_t i = 0; i < na; i++)
                hyb_obj_unref(args[i]);
        free(args);
        hyb_obj_unref(lhs);
        if (r < 0) {
                hyb_obj_unref(res);
                return r;
        }
        v = mv_obj(res);
        return vm_emit(vm, &v, s);
}

/* A stored obj called by name: an instruction, code (arguments as *<i>), or a poly. */
static int call_stored(hyb_mmadt *vm, const hyb_obj *o, const mm_code *c, const mm_ins *ins,
                       const mm_val *cur, mm_sink *s)
{
        mm_code *code = code_unbox(o);
        int r;

        if (code && code->kind == MM_CODE_INST)
                return call(vm, code, c, ins, 1, cur, s);
        if (code) {
                mm_code none = {0};
                none.kind = MM_CODE_INST;
                none.body = code;
                r = call(vm, &none, c, ins, 1, cur, s);
                return r;
        }
        return vm_apply_obj(vm, o, cur, s);
}

atomic_uint mm_gathering_defs;

/* The obj a call by name reaches: the fURI, else a bare name under /sys/ or /type/. */
static int resolve(hyb_mmadt *vm, const hyb_furi *f, hyb_obj **ret, hyb_error *e)
{
        hyb_obj *o = NULL;
        int r = hyb_scope_read(vm->scope, f, &o, e);

        if (r >= 0 && hyb_obj_is_noobj(o) && hyb_furi_get_scope(f) == HYB_SCOPE_PROGRAM) {
                /* bare names resolve through the prefix list */
                static const char *prefixes[] = {"/sys/", "/type/"};
                for (size_t i = 0; i < ELEMENTSOF(prefixes) && hyb_obj_is_noobj(o); i++) {
                        char buf[HYB_FURI_MAX_LENGTH + 16];
                        hyb_furi *alt = NULL;
                        snprintf(buf, sizeof(buf), "%s%s", prefixes[i], hyb_furi_get_path_str(f));
                        if (hyb_furi_parse(buf, (size_t)-1, NULL, &alt, NULL) < 0)
                                continue;
                        hyb_obj_unref(o);
                        o = NULL;
                        r = hyb_scope_read(vm->scope, alt, &o, e);
                        hyb_furi_unref(alt);
                        if (r < 0)
                                break;
                }
        }
        if (r < 0) {
                hyb_obj_unref(o);
                return r;
        }
        *ret = o;
        return 0;
}

static bool native_named(hyb_mmadt *vm, const hyb_furi *f, mm_native **ret)
{
        for (mm_native *n = vm->natives; n; n = n->next)
                if (n->fn && hyb_furi_equal(n->furi, f)) {
                        *ret = n;
                        return true;
                }
        return false;
}

int inst_gathers(hyb_mmadt *vm, const mm_code *c, const mm_ins *ins, const mm_code **def,
                 hyb_obj **hold)
{
        const hyb_furi *f;
        hyb_error e = {0};
        mm_native *n;
        hyb_obj *o = NULL;
        mm_code *code;

        if (ins->op == OP_DEF) {
                const mm_code *d = c->args[ins->arg].code;
                if (!inst_coef_gathers(&d->dcoef))
                        return 0;
                *def = d;
                *hold = NULL;
                return 1;
        }
        if (ins->op != OP_CALL ||
            !atomic_load_explicit(&mm_gathering_defs, memory_order_relaxed))
                return 0;
        f = hyb_obj_get_uri(mv_o(&c->args[ins->arg].k));
        if (native_named(vm, f, &n) || resolve(vm, f, &o, &e) < 0)
                return 0;
        code = code_unbox(o);
        if (!code || code->kind != MM_CODE_INST || !inst_coef_gathers(&code->dcoef)) {
                hyb_obj_unref(o);
                return 0;
        }
        *def = code;
        *hold = o;
        return 1;
}

int inst_call_many(hyb_mmadt *vm, const mm_code *def, const mm_code *c, const mm_ins *ins,
                   mm_vec *buf)
{
        int r;

        if (ins->op == OP_DEF) {
                /* inline: the parameters are also the arguments given */
                const mm_code *pc = def->params;
                return call_many(vm, def, pc, pc && pc->n_ins ? &pc->ins[0] : NULL, 0, buf);
        }
        if (++vm->depth > vm->opts.max_depth)
                r = vm_fail(vm, HYB_E_DEPTH, "recursion deeper than %u", vm->opts.max_depth);
        else
                r = call_many(vm, def, c, ins, 1, buf);
        vm->depth--;
        return r;
}

MM_FAM(op_call)
{
        const hyb_obj *name = mv_o(&c->args[ins->arg].k);
        const hyb_furi *f = hyb_obj_get_uri(name);
        hyb_obj *o = NULL;
        hyb_error e = {0};
        mm_native *n;
        int r;

        if (native_named(vm, f, &n)) {
                r = call_native(vm, n, c, ins, cur, rest);
                return r < 0 ? r : MM_DONE;
        }
        r = resolve(vm, f, &o, &e);
        if (r < 0)
                return vm_fail(vm, r, "%s: %s", hyb_furi_get_str(f), e.message);
        if (hyb_obj_is_noobj(o)) {
                hyb_obj_unref(o);
                return vm_fail(vm, HYB_E_NOT_FOUND, "unknown instruction %s", hyb_furi_get_str(f));
        }
        if (++vm->depth > vm->opts.max_depth)
                r = vm_fail(vm, HYB_E_DEPTH, "recursion deeper than %u", vm->opts.max_depth);
        else
                r = call_stored(vm, o, c, ins, cur, rest);
        vm->depth--;
        hyb_obj_unref(o);
        return r < 0 ? r : MM_DONE;
}

/* ---- registration from C ---- */

static void native_disconnect(hyb_slot *slot)
{
        mm_native *n = (mm_native *)slot;

        if (n->vm) {
                for (mm_native **p = &n->vm->natives; *p; p = &(*p)->next)
                        if (*p == n) {
                                *p = n->next;
                                break;
                        }
        }
        hyb_furi_unref(n->furi);
        free(n);
}

static const slot_ops native_ops = {.disconnect = native_disconnect};

static int reg(hyb_mmadt *vm, const char *furi, hyb_mmadt_native_fn fn, hyb_mmadt_type_fn tfn,
               void *userdata, hyb_slot **ret)
{
        mm_native *n;
        int r;

        hyb_assert_return(vm && furi && ret && (fn || tfn), -EINVAL);
        n = calloc(1, sizeof(*n));
        if (!n)
                return -ENOMEM;
        r = hyb_furi_parse(furi, (size_t)-1, NULL, &n->furi, NULL);
        if (r < 0) {
                free(n);
                return r;
        }
        slot_init(&n->slot, &native_ops, userdata);
        n->vm = vm;
        n->fn = fn;
        n->type_fn = tfn;
        n->next = vm->natives;
        vm->natives = n;
        *ret = &n->slot;
        return 0;
}

void inst_detach_natives(hyb_mmadt *vm)
{
        for (mm_native *n = vm->natives; n; n = n->next)
                n->vm = NULL;
        vm->natives = NULL;
}

HYB_EXPORT int hyb_mmadt_register_instruction(hyb_mmadt *vm, const char *furi,
                                              hyb_mmadt_native_fn fn, void *userdata,
                                              hyb_slot **ret)
{
        return reg(vm, furi, fn, NULL, userdata, ret);
}

HYB_EXPORT int hyb_mmadt_register_type(hyb_mmadt *vm, const char *furi, hyb_mmadt_type_fn fn,
                                       void *userdata, hyb_slot **ret)
{
        return reg(vm, furi, NULL, fn, userdata, ret);
}
