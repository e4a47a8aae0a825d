/* SPDX-License-Identifier: MIT */
/*
 * The scope router: where a fURI lives (doc/store.md "Scopes").
 *
 *   abc, a/b        program  -> sc->program, a memory store of relative keys
 *   ~/abc           home     -> sc->host at /home/<program>/abc
 *   /abc            host     -> sc->host (hybridd's store when connected; in-process here)
 *   //abc           cluster  -> HYB_E_SCOPE until the MQTT bridge exists
 *   //host.ex/abc   global   -> HYB_E_SCOPE until it exists
 */
#include <stdio.h>

#include "store-internal.h"
#include "common/ref.h"

struct hyb_scope {
        atomic_uint n_ref;
        hyb_store *host;
        hyb_store *program;
        char *name;
};

HYB_EXPORT int hyb_scope_new(hyb_store *host, const char *program, hyb_scope **ret)
{
        hyb_scope *sc;
        int r;

        hyb_assert_return(program && *program && ret, -EINVAL);
        sc = calloc(1, sizeof(*sc));
        if (!sc)
                return -ENOMEM;
        atomic_init(&sc->n_ref, 1);
        sc->name = strdup(program);
        if (!sc->name) {
                free(sc);
                return -ENOMEM;
        }
        if (host)
                sc->host = hyb_store_ref(host);
        else if ((r = hyb_store_open(NULL, NULL, &sc->host, NULL)) < 0) {
                hyb_scope_unref(sc);
                return r;
        }
        if ((r = store_open_program(&sc->program)) < 0) {
                hyb_scope_unref(sc);
                return r;
        }
        *ret = sc;
        return 0;
}

static void scope_free(hyb_scope *sc)
{
        hyb_store_unref(sc->host);
        hyb_store_unref(sc->program);
        free(sc->name);
        free(sc);
}

HYB_DEFINE_REF_UNREF(hyb_scope, hyb_scope, scope_free)

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

HYB_EXPORT int hyb_scope_route(hyb_scope *sc, const hyb_furi *furi, hyb_store **ret_store,
                               hyb_furi **ret_target, hyb_error *reterr)
{
        hyb_store *st;
        hyb_furi *t = NULL;
        int r;

        hyb_assert_return(sc && furi && ret_store && ret_target, -EINVAL);
        switch (hyb_furi_get_scope(furi)) {
        case HYB_SCOPE_PROGRAM:
                st = sc->program;
                t = hyb_furi_ref(furi);
                break;
        case HYB_SCOPE_HOME:
                st = sc->host;
                if ((r = home_target(sc, furi, &t, reterr)) < 0)
                        return r;
                break;
        case HYB_SCOPE_HOST:
                st = sc->host;
                t = hyb_furi_ref(furi);
                break;
        case HYB_SCOPE_CLUSTER:
                return err_set(reterr, HYB_E_SCOPE, -1,
                               "cluster scope (%s) is not available yet: it needs the MQTT "
                               "bridge", hyb_furi_get_str(furi));
        case HYB_SCOPE_GLOBAL:
        default:
                return err_set(reterr, HYB_E_SCOPE, -1,
                               "global scope (host %s in %s) is not available yet",
                               hyb_furi_get_host(furi) ? hyb_furi_get_host(furi) : "?",
                               hyb_furi_get_str(furi));
        }
        *ret_store = st;
        *ret_target = t;
        return 0;
}

HYB_EXPORT int hyb_scope_write(hyb_scope *sc, const hyb_furi *target, const hyb_obj *value,
                               unsigned flags, hyb_error *reterr)
{
        hyb_store *st;
        hyb_furi *t = NULL;
        int r;

        hyb_assert_return(sc && target && value, -EINVAL);
        r = hyb_scope_route(sc, target, &st, &t, reterr);
        if (r < 0)
                return r;
        r = hyb_store_write(st, t, value, flags, reterr);
        hyb_furi_unref(t);
        return r;
}

HYB_EXPORT int hyb_scope_read(hyb_scope *sc, const hyb_furi *target, hyb_obj **ret,
                              hyb_error *reterr)
{
        hyb_store *st;
        hyb_furi *t = NULL;
        int r;

        hyb_assert_return(sc && target && ret, -EINVAL);
        r = hyb_scope_route(sc, target, &st, &t, reterr);
        if (r < 0)
                return r;
        r = hyb_store_read(st, t, ret, reterr);
        hyb_furi_unref(t);
        return r;
}

HYB_EXPORT int hyb_scope_subscribe(hyb_scope *sc, const hyb_furi *pattern, unsigned flags,
                                   hyb_store_msg_fn fn, void *userdata, hyb_slot **ret,
                                   hyb_error *reterr)
{
        hyb_store *st;
        hyb_furi *t = NULL;
        int r;

        hyb_assert_return(sc && pattern && fn && ret, -EINVAL);
        r = hyb_scope_route(sc, pattern, &st, &t, reterr);
        if (r < 0)
                return r;
        r = hyb_store_subscribe(st, t, flags, fn, userdata, ret, reterr);
        hyb_furi_unref(t);
        return r;
}

HYB_EXPORT int hyb_scope_process(hyb_scope *sc)
{
        int a, b;

        hyb_assert_return(sc, -EINVAL);
        a = hyb_store_process(sc->program);
        b = hyb_store_process(sc->host);
        if (a < 0)
                return a;
        if (b < 0)
                return b;
        return a > 0 || b > 0;
}
