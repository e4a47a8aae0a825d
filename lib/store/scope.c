/* SPDX-License-Identifier: MIT */
/*
 * The scope router: where a fURI lives (doc/store.md "Scopes"), reached
 * through one backend per scope (backend.c, the contract in hybrid/store.h).
 *
 *   abc, a/b        program  -> be[PROGRAM], a memory store of relative keys by default
 *   ~/abc           home     -> be[HOST] at /home/<name>/abc
 *   /abc            host     -> be[HOST] (hybridd's store over the bus, or an embedded one)
 *   //abc           cluster  -> be[CLUSTER] when set (a daemon, or an MQTT broker: lib/cluster),
 *                               else HYB_E_SCOPE naming what to set
 *   //host.ex/abc   global   -> be[GLOBAL] when set, else HYB_E_SCOPE
 *
 * The router knows nothing of what a backend is: lib/store includes nothing
 * from the bus or the broker.  Everything it returns is a new reference.
 */
#include <stdio.h>

#include "store-internal.h"
#include "common/ref.h"

#define N_SCOPES (HYB_SCOPE_GLOBAL + 1)

struct hyb_scope {
        atomic_uint n_ref;
        hyb_backend *be[N_SCOPES]; /* by hyb_furi_scope; HOME unused (it routes to HOST) */
        char *name;
};

HYB_EXPORT int hyb_scope_new(hyb_backend *host, hyb_backend *program, const char *name,
                             hyb_scope **ret)
{
        hyb_scope *sc;
        hyb_store *st = NULL;
        int r;

        hyb_assert_return(name && *name && ret, -EINVAL);
        sc = calloc(1, sizeof(*sc));
        if (!sc)
                return -ENOMEM;
        atomic_init(&sc->n_ref, 1);
        sc->name = strdup(name);
        if (!sc->name) {
                free(sc);
                return -ENOMEM;
        }
        if (host)
                sc->be[HYB_SCOPE_HOST] = hyb_backend_ref(host);
        else {
                r = hyb_store_open(NULL, NULL, &st, NULL);
                if (r >= 0)
                        r = hyb_backend_new_store(st, &sc->be[HYB_SCOPE_HOST]);
                hyb_store_unref(st);
                if (r < 0) {
                        hyb_scope_unref(sc);
                        return r;
                }
        }
        if (program)
                sc->be[HYB_SCOPE_PROGRAM] = hyb_backend_ref(program);
        else if ((r = store_backend_new_program(&sc->be[HYB_SCOPE_PROGRAM])) < 0) {
                hyb_scope_unref(sc);
                return r;
        }
        *ret = sc;
        return 0;
}

static void scope_free(hyb_scope *sc)
{
        for (size_t i = 0; i < N_SCOPES; i++)
                hyb_backend_unref(sc->be[i]);
        free(sc->name);
        free(sc);
}

HYB_DEFINE_REF_UNREF(hyb_scope, hyb_scope, scope_free)

HYB_EXPORT int hyb_scope_set_backend(hyb_scope *sc, hyb_furi_scope scope, hyb_backend *b)
{
        hyb_assert_return(sc, -EINVAL);
        hyb_assert_return(scope == HYB_SCOPE_HOST || scope == HYB_SCOPE_PROGRAM ||
                                  scope == HYB_SCOPE_CLUSTER || scope == HYB_SCOPE_GLOBAL,
                          -EINVAL);
        hyb_assert_return(b || scope == HYB_SCOPE_CLUSTER || scope == HYB_SCOPE_GLOBAL, -EINVAL);
        hyb_backend_ref(b);
        hyb_backend_unref(sc->be[scope]);
        sc->be[scope] = b;
        return 0;
}

HYB_EXPORT int hyb_scope_get_backend(hyb_scope *sc, hyb_furi_scope scope, hyb_backend **ret)
{
        hyb_assert_return(sc && ret, -EINVAL);
        hyb_assert_return((unsigned)scope < N_SCOPES, -EINVAL);
        if (scope == HYB_SCOPE_HOME)
                scope = HYB_SCOPE_HOST;
        if (!sc->be[scope])
                return HYB_E_SCOPE;
        *ret = hyb_backend_ref(sc->be[scope]);
        return 0;
}

/* `~/a/b?q` -> `/home/<program>/a/b?q` */
static int home_target(hyb_scope *sc, const hyb_furi *f, hyb_furi **ret, hyb_error *e)
{
        const char *text = hyb_furi_get_str(f);
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, alloc = 0;
        int r;

        r = grow_array((void **)&buf, &alloc, 6 + strlen(text), 1);
        if (r < 0)
                return r;
        memcpy(buf, "/home", 6);
        len = 5;
        r = path_append(&buf, &len, &alloc, sc->name, strlen(sc->name));
        if (r < 0)
                return r;
        r = grow_array((void **)&buf, &alloc, len + strlen(text) + 1, 1);
        if (r < 0)
                return r;
        strcpy(buf + len, text + 1); /* the text after `~` */
        return hyb_furi_parse(buf, (size_t)-1, NULL, ret, e);
}

HYB_EXPORT int hyb_scope_route(hyb_scope *sc, const hyb_furi *furi, hyb_backend **ret_backend,
                               hyb_furi **ret_target, hyb_error *reterr)
{
        hyb_furi_scope scope;
        hyb_backend *b;
        hyb_furi *t = NULL;
        int r;

        hyb_assert_return(sc && furi && ret_backend && ret_target, -EINVAL);
        scope = hyb_furi_get_scope(furi);
        switch (scope) {
        case HYB_SCOPE_PROGRAM:
        case HYB_SCOPE_HOST:
                b = sc->be[scope];
                t = hyb_furi_ref(furi);
                break;
        case HYB_SCOPE_HOME:
                b = sc->be[HYB_SCOPE_HOST];
                if ((r = home_target(sc, furi, &t, reterr)) < 0)
                        return r;
                break;
        case HYB_SCOPE_CLUSTER:
                b = sc->be[scope];
                if (!b)
                        return err_set(reterr, HYB_E_SCOPE, -1,
                                       "cluster scope (%s): no MQTT broker is named: set "
                                       "$HYBRID_CLUSTER=mqtt://HOST:PORT (hybrid --cluster URL) "
                                       "or use a hybridd that has a cluster: configuration",
                                       hyb_furi_get_str(furi));
                t = hyb_furi_ref(furi);
                break;
        case HYB_SCOPE_GLOBAL:
        default:
                b = scope == HYB_SCOPE_GLOBAL ? sc->be[scope] : NULL;
                if (!b)
                        return err_set(reterr, HYB_E_SCOPE, -1,
                                       "global scope (host %s in %s) is not available yet",
                                       hyb_furi_get_host(furi) ? hyb_furi_get_host(furi) : "?",
                                       hyb_furi_get_str(furi));
                t = hyb_furi_ref(furi);
                break;
        }
        *ret_backend = hyb_backend_ref(b);
        *ret_target = t;
        return 0;
}

HYB_EXPORT int hyb_scope_write(hyb_scope *sc, const hyb_furi *target, const hyb_obj *value,
                               unsigned flags, hyb_error *reterr)
{
        hyb_backend *b = NULL;
        hyb_furi *t = NULL;
        int r;

        hyb_assert_return(sc && target && value, -EINVAL);
        r = hyb_scope_route(sc, target, &b, &t, reterr);
        if (r < 0)
                return r;
        r = hyb_backend_write(b, t, value, flags, reterr);
        hyb_furi_unref(t);
        hyb_backend_unref(b);
        return r;
}

HYB_EXPORT int hyb_scope_delete(hyb_scope *sc, const hyb_furi *target, unsigned flags,
                                hyb_error *reterr)
{
        hyb_backend *b = NULL;
        hyb_furi *t = NULL;
        int r;

        hyb_assert_return(sc && target, -EINVAL);
        r = hyb_scope_route(sc, target, &b, &t, reterr);
        if (r < 0)
                return r;
        r = hyb_backend_delete(b, t, flags, reterr);
        hyb_furi_unref(t);
        hyb_backend_unref(b);
        return r;
}

HYB_EXPORT int hyb_scope_read(hyb_scope *sc, const hyb_furi *target, hyb_obj **ret,
                              hyb_error *reterr)
{
        hyb_backend *b = NULL;
        hyb_furi *t = NULL;
        int r;

        hyb_assert_return(sc && target && ret, -EINVAL);
        r = hyb_scope_route(sc, target, &b, &t, reterr);
        if (r < 0)
                return r;
        r = hyb_backend_read(b, t, 0, ret, reterr);
        hyb_furi_unref(t);
        hyb_backend_unref(b);
        return r;
}

HYB_EXPORT int hyb_scope_subscribe(hyb_scope *sc, const hyb_furi *pattern, unsigned flags,
                                   hyb_store_msg_fn fn, void *userdata, hyb_slot **ret,
                                   hyb_error *reterr)
{
        hyb_backend *b = NULL;
        hyb_furi *t = NULL;
        int r;

        hyb_assert_return(sc && pattern && fn && ret, -EINVAL);
        r = hyb_scope_route(sc, pattern, &b, &t, reterr);
        if (r < 0)
                return r;
        r = hyb_backend_subscribe(b, t, flags, fn, userdata, ret, reterr);
        hyb_furi_unref(t);
        hyb_backend_unref(b);
        return r;
}

HYB_EXPORT int hyb_scope_process(hyb_scope *sc)
{
        int did = 0, err = 0;

        hyb_assert_return(sc, -EINVAL);
        for (size_t i = 0; i < N_SCOPES; i++) {
                int r;
                if (!sc->be[i])
                        continue;
                r = hyb_backend_process(sc->be[i]);
                if (r < 0 && !err)
                        err = r;
                else if (r > 0)
                        did = 1;
        }
        return err < 0 ? err : did;
}
