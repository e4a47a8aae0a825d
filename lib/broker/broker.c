/* SPDX-License-Identifier: MIT */
/*
 * The embeddable broker: public config wrappers, construction, the listening
 * socket (appears only when ready), shutdown and the log hook.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "broker-internal.h"
#include "xhost.h"
#include "hybrid/bus.h"
#include "broker/config-internal.h"
#include "edge/https.h"
#include "common/util.h"
#include "common/ref.h"

/*
 * Messages often quote what a peer sent (a token's claim names and resources, names, paths):
 * control characters are written as \xNN so that no peer can start a line of its own in the
 * daemon's log (a forged "revocation entry applied", say) or send escape sequences to a
 * terminal that shows it.
 */
static void log_escape(const char *in, char *out, size_t size)
{
        static const char hex[] = "0123456789abcdef";
        size_t n = 0;

        for (; *in && n + 5 < size; in++) {
                unsigned char ch = (unsigned char)*in;

                if (ch < 0x20 || ch == 0x7f) {
                        out[n++] = '\\';
                        out[n++] = 'x';
                        out[n++] = hex[ch >> 4];
                        out[n++] = hex[ch & 15];
                } else {
                        out[n++] = (char)ch;
                }
        }
        out[n] = '\0';
}

void broker_log(hyb_broker *b, int level, const char *fmt, ...)
{
        char raw[512], msg[4 * sizeof raw];
        va_list ap;

        if (level > b->log_level || (!b->log && !events_log_wanted(b)))
                return;
        va_start(ap, fmt);
        vsnprintf(raw, sizeof raw, fmt, ap);
        va_end(ap);
        log_escape(raw, msg, sizeof msg);
        /* the daemon's log first, then (never blocking) the builtin Log event for logd */
        if (b->log)
                b->log(level, msg, b->log_ud);
        events_log_line(b, level, msg);
}

/* ---------------------------------------------------------------- config */

HYB_EXPORT int hyb_broker_config_new(hyb_broker_config **ret)
{
        hyb_broker_config *cfg;

        hyb_assert_return(ret, -EINVAL);
        cfg = calloc(1, sizeof *cfg);
        if (!cfg)
                return -ENOMEM;
        if (broker_config_init(&cfg->c) < 0) {
                free(cfg);
                return -ENOMEM;
        }
        cfg->n_ref = 1;
        *ret = cfg;
        return 0;
}

static void broker_config_free(hyb_broker_config *cfg)
{
        broker_config_clear(&cfg->c);
        free(cfg);
}

HYB_DEFINE_REF_UNREF(hyb_broker_config, hyb_broker_config, broker_config_free)

HYB_EXPORT int hyb_broker_config_load_file(hyb_broker_config *cfg, const char *path,
                                           hyb_error *reterr)
{
        hyb_assert_return(cfg && path, -EINVAL);
        return broker_config_load_file(&cfg->c, path, reterr);
}

HYB_EXPORT int hyb_broker_config_load_string(hyb_broker_config *cfg, const char *yaml, size_t len,
                                             hyb_error *reterr)
{
        hyb_assert_return(cfg && yaml, -EINVAL);
        return broker_config_load_string(&cfg->c, yaml, len, reterr);
}

HYB_EXPORT int hyb_broker_config_set_socket(hyb_broker_config *cfg, const char *path)
{
        struct sockaddr_un sa;
        char *p;

        hyb_assert_return(cfg && path && *path && strlen(path) < sizeof sa.sun_path, -EINVAL);
        p = strdup(path);
        if (!p)
                return -ENOMEM;
        free(cfg->c.listen_unix);
        cfg->c.listen_unix = p;
        return 0;
}

HYB_EXPORT int hyb_broker_config_get_socket(const hyb_broker_config *cfg, char **ret_path)
{
        const char *env = getenv("HYBRID_BUS");

        hyb_assert_return(cfg && ret_path, -EINVAL);
        if (cfg->c.listen_unix)
                *ret_path = strdup(cfg->c.listen_unix);
        else if (env && *env)
                *ret_path = strdup(env);
        else
                return hyb_bus_get_default_socket(ret_path);
        return *ret_path ? 0 : -ENOMEM;
}

HYB_EXPORT int hyb_broker_config_set_limit(hyb_broker_config *cfg, const char *name, uint64_t value)
{
        const broker_limit *row;

        hyb_assert_return(cfg && name, -EINVAL);
        row = broker_limit_find(name, strlen(name));
        if (!row || broker_limit_check(row, value) < 0)
                return -EINVAL;
        broker_limit_put(&cfg->c, row, value);
        /* A bigger body drags the frame limit along (the loader's "frame follows body"). */
        if (!strcmp(row->name, "max_body") && cfg->c.max_frame <= cfg->c.max_body)
                broker_config_frame_follows_body(&cfg->c);
        return 0;
}

HYB_EXPORT int hyb_broker_config_get_limit(const hyb_broker_config *cfg, const char *name,
                                           uint64_t *ret)
{
        const broker_limit *row;

        hyb_assert_return(cfg && name && ret, -EINVAL);
        row = broker_limit_find(name, strlen(name));
        if (!row)
                return -EINVAL;
        *ret = broker_limit_get(&cfg->c, row);
        return 0;
}

HYB_EXPORT int hyb_broker_config_add_admin(hyb_broker_config *cfg, uint32_t uid)
{
        uid_t *a;

        hyb_assert_return(cfg, -EINVAL);
        a = reallocarray_safe(cfg->c.admins, cfg->c.n_admins + 1, sizeof *a);
        if (!a)
                return -ENOMEM;
        a[cfg->c.n_admins++] = (uid_t)uid;
        cfg->c.admins = a;
        return 0;
}

HYB_EXPORT int hyb_broker_config_get_log_level(const hyb_broker_config *cfg)
{
        const char *l;

        hyb_assert_return(cfg, -EINVAL);
        l = cfg->c.log_level ? cfg->c.log_level : "info";
        if (!strcmp(l, "error"))
                return HYB_LOG_ERROR;
        if (!strcmp(l, "warning"))
                return HYB_LOG_WARNING;
        if (!strcmp(l, "debug"))
                return HYB_LOG_DEBUG;
        return HYB_LOG_INFO;
}

HYB_EXPORT bool hyb_broker_config_get_syslog(const hyb_broker_config *cfg)
{
        return cfg && cfg->c.log_syslog;
}

HYB_EXPORT const char *hyb_broker_config_get_store_path(const hyb_broker_config *cfg)
{
        return cfg ? cfg->c.store_path : NULL;
}

HYB_EXPORT int hyb_broker_config_get_store_durability(const hyb_broker_config *cfg)
{
        hyb_assert_return(cfg, -EINVAL);
        return cfg->c.store_durability;
}

HYB_EXPORT size_t hyb_broker_config_get_n_boot(const hyb_broker_config *cfg,
                                               hyb_broker_boot_list list)
{
        if (!cfg)
                return 0;
        return list == HYB_BOOT_DATA ? cfg->c.n_boot_data :
               list == HYB_BOOT_PROGRAMS ? cfg->c.n_boot_programs : 0;
}

HYB_EXPORT int hyb_broker_config_get_boot(const hyb_broker_config *cfg, hyb_broker_boot_list list,
                                          size_t i, hyb_broker_boot_item *ret)
{
        const broker_boot_item *it;
        hyb_broker_boot_item out;

        hyb_assert_return(cfg && ret && ret->size >= offsetof(hyb_broker_boot_item, key), -EINVAL);
        hyb_assert_return(list == HYB_BOOT_DATA || list == HYB_BOOT_PROGRAMS, -EINVAL);
        if (i >= hyb_broker_config_get_n_boot(cfg, list))
                return -ERANGE;
        it = list == HYB_BOOT_DATA ? &cfg->c.boot_data[i] : &cfg->c.boot_programs[i];
        out = (hyb_broker_boot_item){ .size = ret->size, .key = it->key, .text = it->text,
                                      .file = it->file, .line = it->line, .column = it->column,
                                      .config_file = it->config_file };
        memcpy(ret, &out, ret->size < sizeof(out) ? ret->size : sizeof(out));
        return 0;
}

/* ---------------------------------------------------------------- broker */

static void accept_resume(evutil_socket_t fd, short what, void *ud);

HYB_EXPORT int hyb_broker_new(hyb_broker_config *cfg, struct event_base *base, hyb_broker **ret,
                              hyb_error *reterr)
{
        hyb_broker *b;
        int r;

        hyb_assert_return(base && ret, -EINVAL);
        /* libevent writes with write(2): a vanished peer must not kill the embedding process. */
        struct sigaction old;
        if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
                signal(SIGPIPE, SIG_IGN);
        b = calloc(1, sizeof *b);
        if (!b)
                return -ENOMEM;
        b->base = base;
        b->next_id = 1;
        b->log_level = HYB_LOG_INFO;
        if (cfg)
                b->cfg = hyb_broker_config_ref(cfg);
        else if ((r = hyb_broker_config_new(&b->cfg)) < 0) {
                free(b);
                return r;
        }
        b->c = &b->cfg->c;
        r = broker_config_validate(b->c, reterr);
        if (r < 0) {
                hyb_broker_config_unref(b->cfg);
                free(b);
                return r;
        }
        b->reap_ev = event_new(base, -1, 0, broker_reap, b);
        b->tick_ev = event_new(base, -1, EV_PERSIST, broker_tick, b);
        b->accept_ev = evtimer_new(base, accept_resume, b);
        /* Most calls use the default deadline: a common timeout keeps them in a FIFO (O(1)
         * add and delete) instead of the timer heap.  NULL: plain timers. */
        struct timeval dtv = { .tv_sec = ROUTE_DEFAULT_TIMEOUT_MS / 1000,
                               .tv_usec = (ROUTE_DEFAULT_TIMEOUT_MS % 1000) * 1000 };
        b->default_deadline = event_base_init_common_timeout(base, &dtv);
        if (!b->reap_ev || !b->tick_ev || !b->accept_ev || (r = builtin_init(b)) < 0) {
                hyb_broker_free(b);
                return -ENOMEM;
        }
        *ret = b;
        return 0;
}

HYB_EXPORT void hyb_broker_log(hyb_broker *b, int level, const char *message)
{
        if (b && message)
                broker_log(b, level, "%s", message);
}

HYB_EXPORT void hyb_broker_set_log(hyb_broker *b, int max_level, hyb_log_fn fn, void *userdata)
{
        if (!b)
                return;
        b->log = fn;
        b->log_ud = userdata;
        b->log_level = max_level;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *ud)
{
        bconn_accept(ud, fd);
}

static void accept_resume(evutil_socket_t fd, short what, void *ud)
{
        hyb_broker *b = ud;

        if (b->listener && !b->shutting_down)
                evconnlistener_enable(b->listener);
}

static void on_accept_error(struct evconnlistener *l, void *ud)
{
        hyb_broker *b = ud;
        int e = errno;

        /* Out of fds or memory: the pending connection stays in the backlog, so the listener
         * would fire again at once and spin. Pause accepting for a moment instead. */
        broker_log(b, HYB_LOG_WARNING, "accept: %s (pausing accepts for 100 ms)", strerror(e));
        if (b->accept_ev && (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM)) {
                struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 };
                evconnlistener_disable(l);
                evtimer_add(b->accept_ev, &tv);
        }
}

/* Is somebody accepting on path?  (a stale socket file refuses) */
static bool socket_alive(const struct sockaddr_un *sa)
{
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool alive;

        if (fd < 0)
                return false;
        alive = connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0;
        close(fd);
        return alive;
}

/*
 * The socket's directory must exist, with one exception: the runtime directory of the
 * default path ($XDG_RUNTIME_DIR/hybrid, else /run/hybrid) is created (0755, one level)
 * when the socket goes straight into it.  No other directory is ever created: a missing
 * configured directory is a typo more often than a wish.
 */
static int socket_dir_ready(const char *path, hyb_error *reterr)
{
        const char *xdg = getenv("XDG_RUNTIME_DIR");
        _cleanup_free_ char *dir = NULL, *runtime = NULL;
        const char *slash = strrchr(path, '/');
        struct stat st;

        if (!slash)
                return 0; /* relative to the working directory */
        dir = slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
        if (!dir)
                return -ENOMEM;
        if (stat(dir, &st) == 0) {
                if (!S_ISDIR(st.st_mode))
                        return err_set(reterr, -ENOTDIR, -1,
                                       "cannot listen on %s: %s is not a directory", path, dir);
                return 0;
        }
        if (errno != ENOENT)
                return err_set(reterr, -errno, -1, "cannot listen on %s: %s: %s", path, dir,
                               strerror(errno));
        if (asprintf(&runtime, "%s/hybrid", xdg && *xdg ? xdg : "/run") < 0)
                return -ENOMEM;
        if (strcmp(dir, runtime) != 0)
                return err_set(reterr, -ENOENT, -1,
                               "cannot listen on %s: directory %s does not exist", path, dir);
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return err_set(reterr, -errno, -1, "cannot create %s: %s", dir, strerror(errno));
        return 0;
}

/* A refused TLS connection of listen.https: debug, as every peer's mistakes are. */
static void log_https(const char *message, void *ud)
{
        broker_log(ud, HYB_LOG_DEBUG, "https: %s", message);
}

static void stop_listening(hyb_broker *b);

HYB_EXPORT int hyb_broker_start(hyb_broker *b, hyb_error *reterr)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX }, tmp = { .sun_family = AF_UNIX };
        _cleanup_free_ char *path = NULL;
        int fd, r;

        hyb_assert_return(b, -EINVAL);
        if (b->listener)
                return -EALREADY;
        r = hyb_broker_config_get_socket(b->cfg, &path);
        if (r < 0)
                return r;
        if (strlen(path) + 16 >= sizeof sa.sun_path)
                return err_set(reterr, -ENAMETOOLONG, -1, "socket path too long: %s", path);
        memcpy(sa.sun_path, path, strlen(path));
        snprintf(tmp.sun_path, sizeof tmp.sun_path, "%s.%d.tmp", path, (int)getpid());
        r = socket_dir_ready(path, reterr);
        if (r < 0)
                return r;
        /* The https listener first: when it cannot start, no socket has appeared. */
        if (b->c->listen_https && !b->https) {
                r = edge_https_start(b->base, b->c->listen_https, b->c->tls_cert, b->c->tls_key,
                                     &b->https, reterr);
                if (r < 0)
                        return r;
                edge_https_set_log(b->https, log_https, b);
        }
        if (access(path, F_OK) == 0) {
                if (socket_alive(&sa))
                        return err_set(reterr, -EADDRINUSE, -1, "a broker is already listening on %s", path);
                unlink(path); /* stale */
        }
        unlink(tmp.sun_path);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return err_set(reterr, -errno, -1, "socket: %s", strerror(errno));
        if (bind(fd, (struct sockaddr *)&tmp, sizeof tmp) < 0 || chmod(tmp.sun_path, 0666) < 0 ||
            listen(fd, 128) < 0) {
                r = -errno;
                close(fd);
                unlink(tmp.sun_path);
                return err_set(reterr, r, -1, "cannot listen on %s: %s", path, strerror(-r));
        }
        /* CLOSE_ON_EXEC: accepted sockets get SOCK_CLOEXEC (accept4) like every other fd. */
        b->listener = evconnlistener_new(b->base, on_accept, b, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                         -1, fd);
        if (!b->listener) {
                close(fd);
                unlink(tmp.sun_path);
                return -ENOMEM;
        }
        evconnlistener_set_error_cb(b->listener, on_accept_error);
        /* Only now, accepting, does the socket appear under its name. */
        if (rename(tmp.sun_path, path) < 0) {
                r = -errno;
                evconnlistener_free(b->listener);
                b->listener = NULL;
                unlink(tmp.sun_path);
                return err_set(reterr, r, -1, "cannot create %s: %s", path, strerror(-r));
        }
        b->socket_path = TAKE_PTR(path);
        r = broker_edge_start(b, reterr);
        if (r >= 0)
                r = broker_cluster_start(b, reterr);
        if (r >= 0 && (r = xhost_link_start(b)) < 0)
                err_set(reterr, r, -1, "cluster: bus calls between hosts: %s", hyb_strerror(r));
        if (r >= 0 && (r = feedsync_start(b)) < 0)
                err_set(reterr, r, -1, "cluster: the revocation feed: %s", hyb_strerror(r));
        if (r >= 0 && (r = feedfetch_start(b)) < 0)
                err_set(reterr, r, -1, "auth.feed_peers: %s", hyb_strerror(r));
        if (r < 0) {
                stop_listening(b);
                free(b->socket_path);
                b->socket_path = NULL;
                return r;
        }
        if (!b->store)
                broker_feed_setup(b); /* in memory only: no host store to keep it */
        struct timeval tv = { .tv_sec = 1 };
        event_add(b->tick_ev, &tv);
        broker_log(b, HYB_LOG_INFO, "listening on %s", b->socket_path);
        if (b->https)
                broker_log(b, HYB_LOG_INFO, "listening on https://%s",
                           edge_https_get_address(b->https));
        return 0;
}

static void stop_listening(hyb_broker *b)
{
        broker_edge_stop(b); /* the routes' work first: it frees listen.https's evhttp too */
        xhost_link_stop(b); /* its goodbye goes out before the link */
        broker_cluster_stop(b);
        feedsync_stop(b); /* after the link: its pending publications still answer it */
        feedfetch_stop(b);
        b->https = edge_https_free(b->https);
        if (b->listener) {
                evconnlistener_free(b->listener);
                b->listener = NULL;
                if (b->socket_path)
                        unlink(b->socket_path);
        }
}

static void shutdown_done(evutil_socket_t fd, short what, void *ud)
{
        hyb_broker *b = ud;
        bconn_free_all(b);
        event_del(b->tick_ev);
}

HYB_EXPORT int hyb_broker_shutdown(hyb_broker *b)
{
        hyb_assert_return(b, -EINVAL);
        if (b->shutting_down)
                return 0;
        b->shutting_down = true;
        events_builtin(b, "SystemShuttingDown", "{}");
        stop_listening(b);
        unsigned queued = 0;
        for (bconn *c = b->conns; c; c = c->next) {
                if (c->state == BCONN_READY)
                        bconn_say_why(c, 503, "hybridd is shutting down");
                if (c->bev && evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
                        queued++;
                bconn_close(c, "lostConnection");
        }
        if (queued)
                broker_log(b, HYB_LOG_INFO, "shutting down: output queued to %u peer(s), up to 1 s to write it",
                           queued);
        /* Give queued output (the event above) up to a second, then drop what is left;
         * with nothing queued there is nothing to wait for. */
        b->shutdown_ev = evtimer_new(b->base, shutdown_done, b);
        struct timeval tv = { .tv_sec = queued ? 1 : 0 };
        if (b->shutdown_ev)
                evtimer_add(b->shutdown_ev, &tv);
        event_del(b->tick_ev);
        auth_pool_shutdown(b); /* token checks under way do not hold the loop */
        if (b->store_ev)
                event_del(b->store_ev);
        if (b->store_timer)
                event_del(b->store_timer);
        return 0;
}

HYB_EXPORT hyb_broker *hyb_broker_free(hyb_broker *b)
{
        if (!b)
                return NULL;
        stop_listening(b);
        b->shutting_down = true;
        bconn_free_all(b);
        channel_broker_free(b);
        xhost_detach(b);
        auth_pool_free(b); /* joins the verifying threads: nothing refers to b after */
        broker_feed_free(b);
        store_detach(b);
        auth_broker_free(b);
        while (b->pend_free) {
                bpending *p = b->pend_free;
                b->pend_free = p->hnext;
                event_free(p->timer);
                free(p);
        }
        if (b->reap_ev)
                event_free(b->reap_ev);
        if (b->tick_ev)
                event_free(b->tick_ev);
        if (b->accept_ev)
                event_free(b->accept_ev);
        if (b->shutdown_ev)
                event_free(b->shutdown_ev);
        if (b->flush_ev)
                event_free(b->flush_ev);
        free(b->socket_path);
        hyb_broker_config_unref(b->cfg);
        free(b);
        return NULL;
}

HYB_EXPORT const char *hyb_broker_get_socket(const hyb_broker *b)
{
        return b ? b->socket_path : NULL;
}

HYB_EXPORT unsigned hyb_broker_get_n_connections(const hyb_broker *b)
{
        return b ? b->n_conns : 0;
}

/* ---------------------------------------------------------------- reload */

static bool str_differs(const char *a, const char *b)
{
        return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

static bool cluster_differs(const cluster_options *a, const cluster_options *b)
{
        return str_differs(a->broker, b->broker) || str_differs(a->client_id, b->client_id) ||
               str_differs(a->username, b->username) ||
               str_differs(a->password_file, b->password_file) ||
               str_differs(a->ca_file, b->ca_file) || str_differs(a->cert_file, b->cert_file) ||
               str_differs(a->key_file, b->key_file) || str_differs(a->prefix, b->prefix) ||
               str_differs(a->call_secret_file, b->call_secret_file) ||
               a->keepalive_s != b->keepalive_s || a->qos != b->qos ||
               a->session_expiry_s != b->session_expiry_s || a->queue_max != b->queue_max ||
               a->mirror_max_keys != b->mirror_max_keys ||
               a->max_pending_reads != b->max_pending_reads ||
               a->read_timeout_ms != b->read_timeout_ms;
}

static bool programs_differ(const broker_config *a, const broker_config *b)
{
        if (a->n_boot_programs != b->n_boot_programs)
                return true;
        for (size_t i = 0; i < a->n_boot_programs; i++)
                if (str_differs(a->boot_programs[i].text, b->boot_programs[i].text) ||
                    str_differs(a->boot_programs[i].file, b->boot_programs[i].file))
                        return true;
        return false;
}

/* The settings read once, at the start: a new value is reported and not used. */
static const char *const restart_only[] = {
        "host", "listen.unix", "store.path", "store.durability", "store.limits", "log.syslog",
        "boot.programs", "auth.verify_threads", "listen.https", "tls", "listen.http", "listen.coap", "cluster",
};

/*
 * Which of restart_only differ between the running configuration and n (bit i: row i), or
 * -ENOMEM.  host is the only one the broker reads again (each new connection's challenge),
 * so n gets the running host back; the others are read by nobody after the start.
 */
static int keep_restart_only(hyb_broker *b, broker_config *n)
{
        const broker_config *o = b->c;
        bool changed[ELEMENTSOF(restart_only)] = {
                str_differs(o->host, n->host),
                str_differs(o->listen_unix, n->listen_unix),
                str_differs(o->store_path, n->store_path),
                o->store_durability != n->store_durability,
                o->store_max_value_bytes != n->store_max_value_bytes ||
                        o->store_max_depth != n->store_max_depth ||
                        o->store_max_keys != n->store_max_keys,
                o->log_syslog != n->log_syslog,
                programs_differ(o, n),
                o->auth_verify_threads != n->auth_verify_threads,
                str_differs(o->listen_https, n->listen_https),
                str_differs(o->tls_cert, n->tls_cert) || str_differs(o->tls_key, n->tls_key),
                str_differs(o->listen_http, n->listen_http),
                str_differs(o->listen_coap, n->listen_coap),
                cluster_differs(&o->cluster, &n->cluster),
        };
        int mask = 0;

        if (changed[0]) {
                bool oom = false;
                char *host = broker_strdup_or_null(o->host, &oom);

                if (oom)
                        return -ENOMEM;
                free(n->host);
                n->host = host;
        }
        n->auth_verify_threads = o->auth_verify_threads; /* the pool keeps its threads */
        for (size_t i = 0; i < ELEMENTSOF(changed); i++)
                if (changed[i])
                        mask |= 1 << i;
        return mask;
}

HYB_EXPORT int hyb_broker_reload(hyb_broker *b, const hyb_broker_config *cfg, hyb_error *reterr)
{
        hyb_broker_config *n, *old;
        struct bstore_rule *acl = NULL;
        size_t n_acl = 0;
        int ignored, r;

        hyb_assert_return(b && cfg, -EINVAL);
        if (b->shutting_down)
                return err_set(reterr, -ESHUTDOWN, -1, "the broker is shutting down");
        r = broker_config_validate(&cfg->c, reterr);
        if (r < 0)
                return r;
        /* A private copy: the caller's object stays the caller's, and nothing below fails
         * once the running configuration has been touched. */
        n = calloc(1, sizeof *n);
        if (!n)
                return -ENOMEM;
        n->n_ref = 1;
        r = broker_config_copy(&n->c, &cfg->c);
        if (r < 0) {
                free(n);
                return r;
        }
        ignored = keep_restart_only(b, &n->c);
        r = ignored;
        if (r >= 0 && b->store)
                r = store_acl_build(&n->c, &acl, &n_acl);
        if (r < 0) {
                hyb_broker_config_unref(n);
                return r;
        }
        if (b->store)
                store_acl_set(b, acl, n_acl);
        old = b->cfg;
        b->cfg = n;
        b->c = &n->c;
        auth_broker_free(b); /* tokens verified under the old auth.* are verified again */
        hyb_broker_config_unref(old);
        for (size_t i = 0; i < ELEMENTSOF(restart_only); i++)
                if (ignored & (1 << i))
                        broker_log(b, HYB_LOG_WARNING, "reload: %s changed: ignored until restart",
                                   restart_only[i]);
        broker_feed_setup(b); /* auth.issuers may have changed: entries are checked again */
        /* Channels were opened under the old policy: calls go through the broker again,
         * which checks them under the new one (the callers may open again). */
        channel_close_all(b, 503, "configuration reloaded", 1000);
        broker_log(b, HYB_LOG_INFO, "configuration reloaded");
        return 0;
}
