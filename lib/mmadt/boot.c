/* SPDX-License-Identifier: MIT */
/*
 * The boot loader (FhatOS's): what a daemon writes and runs in its host store
 * at start, from the `boot:` key of its configuration, and the loop that keeps
 * the programs' subscriptions, fibers and threads going afterwards.
 *
 *   hyb_boot_new(scope, base, cfg)
 *     1. boot.data:     each fURI that holds nothing gets its obj literal
 *     2. boot.programs: each compiled and run in order on one VM ("boot")
 *     3. the VM is driven by base:  store fds (EV_READ) + a timer
 *        (the stores' deadline; every FIBER_TICK_USEC while fibers live)
 *           -> hyb_mmadt_step: deliver messages, step fibers, join ended threads
 *   hyb_boot_reload(boot, cfg)  (SIGHUP) step 1 again, with the boot.data of cfg
 *
 * An error in an entry (a bad fURI or literal, a program that does not parse
 * or fails when run) is logged with where it is (the program file's line and
 * column; for inline programs and data the config file's, then `boot.programs[N]`
 * and the line and column in the program) and the boot goes on with the next entry.
 */
#include <event2/event.h>
#include <limits.h>
#include <stdio.h>

#include "family.h"
#include "common/ref.h"

/* How often fibers are stepped while some live: they yield to the loop between turns. */
#define FIBER_TICK_USEC 1000
/* Scheduler turns one wake-up may run before it lets the loop serve others. */
#define MAX_TURNS 64
/* A program file is read whole: at most this much. */
#define MAX_PROGRAM_BYTES (4u << 20)

struct hyb_boot {
        hyb_mmadt *vm;
        struct event_base *base;
        hyb_backend *backends[2]; /* host, program (references from the scope) */
        struct event *io[2];
        struct event *timer;
        hyb_log_fn log;
        void *log_ud;
        unsigned n_errors;
};

static void blog(hyb_boot *b, int level, const char *fmt, ...) _printf_(3, 4);

static void blog(hyb_boot *b, int level, const char *fmt, ...)
{
        char msg[512];
        va_list ap;

        if (!b->log)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        b->log(level, msg, b->log_ud);
}

/* 1. One `boot.data` entry: written only where the fURI holds nothing. */
static void data_where(const hyb_broker_boot_item *it, char *buf, size_t size);

static void boot_data(hyb_boot *b, hyb_scope *scope, const hyb_broker_boot_item *it)
{
        hyb_furi *f = NULL;
        hyb_obj *have = NULL, *v = NULL;
        char at[PATH_MAX + 600];
        hyb_error e;
        int r;

        hyb_error_clear(&e);
        r = hyb_furi_parse(it->key, (size_t)-1, NULL, &f, &e);
        if (r >= 0 && (!hyb_furi_is_absolute(f) || hyb_furi_is_pattern(f)))
                r = err_set(&e, -EINVAL, -1, "expected an absolute fURI without wildcards");
        if (r < 0) {
                b->n_errors++;
                data_where(it, at, sizeof(at));
                blog(b, HYB_LOG_ERROR, "boot: %s: %s", at, e.message);
                goto out;
        }
        r = hyb_scope_read(scope, f, &have, &e);
        if (r >= 0 && !hyb_obj_is_noobj(have) &&
            !(hyb_obj_get_kind(have) == HYB_OBJ_OBJS && hyb_obj_get_len(have) == 0)) {
                blog(b, HYB_LOG_DEBUG, "boot.data.%s: kept (already set)", it->key);
                goto out;
        }
        if (r >= 0)
                r = hyb_obj_parse(it->text, (size_t)-1, &v, &e);
        if (r >= 0)
                r = hyb_scope_write(scope, f, v, 0, &e);
        if (r < 0) {
                b->n_errors++;
                data_where(it, at, sizeof(at));
                blog(b, HYB_LOG_ERROR, "boot: %s: %s", at,
                     e.message[0] ? e.message : hyb_strerror(r));
        }
out:
        hyb_obj_unref(v);
        hyb_obj_unref(have);
        hyb_furi_unref(f);
}

static int read_program(const char *path, char **ret, hyb_error *e)
{
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, alloc = 0;
        FILE *fp = fopen(path, "re");
        int r = 0;

        if (!fp)
                return err_set(e, -errno, -1, "cannot open: %s", strerror(errno));
        for (;;) {
                size_t n;

                if (len + 4096 + 1 > alloc) {
                        r = grow_array((void **)&buf, &alloc, len + 4096 + 1, 1);
                        if (r < 0)
                                break;
                }
                n = fread(buf + len, 1, alloc - len - 1, fp);
                len += n;
                if (len > MAX_PROGRAM_BYTES) {
                        r = err_set(e, HYB_E_LIMIT, -1, "larger than %u bytes",
                                    MAX_PROGRAM_BYTES);
                        break;
                }
                if (n == 0) {
                        if (ferror(fp))
                                r = err_set(e, -EIO, -1, "read error");
                        break;
                }
        }
        fclose(fp);
        if (r < 0)
                return r;
        if (!buf && (r = grow_array((void **)&buf, &alloc, 1, 1)) < 0)
                return r;
        buf[len] = '\0';
        *ret = TAKE_PTR(buf);
        return 0;
}

/*
 * Where an error of program i is: "FILE:L:C" for a program file; for an inline program
 * "CONFIG:L:C: boot.programs[i], line l, column c" (L:C the error's place in the config file,
 * l:c in the program), or without a config file (a config loaded from a string)
 * "boot.programs[i] (config line Y), line l, column c".
 */
static void where(const hyb_broker_boot_item *it, size_t i, const hyb_error *e, char *buf,
                  size_t size)
{
        unsigned line, col;

        if (it->file && e->line > 0)
                snprintf(buf, size, "%s:%d:%d", it->file, e->line, e->column);
        else if (it->file)
                snprintf(buf, size, "%s", it->file);
        else if (it->config_file && e->line > 0) {
                /* every line of a block scalar is indented alike: its text starts at column */
                line = it->line + (unsigned)e->line - 1;
                col = it->column ? it->column + (unsigned)e->column - 1 : (unsigned)e->column;
                snprintf(buf, size, "%s:%u:%u: boot.programs[%zu], line %d, column %d",
                         it->config_file, line, col, i, e->line, e->column);
        } else if (it->config_file)
                snprintf(buf, size, "%s:%u:%u: boot.programs[%zu]", it->config_file, it->line,
                         it->column ? it->column : 1, i);
        else if (e->line > 0)
                snprintf(buf, size, "boot.programs[%zu] (config line %u), line %d, column %d", i,
                         it->line + (unsigned)e->line - 1, e->line, e->column);
        else
                snprintf(buf, size, "boot.programs[%zu] (config line %u)", i, it->line);
}

/* Where boot.data entry it is: "CONFIG:L:C: boot.data.KEY", or without a config file
 * "boot.data.KEY (config line L, column C)". */
static void data_where(const hyb_broker_boot_item *it, char *buf, size_t size)
{
        if (it->config_file)
                snprintf(buf, size, "%s:%u:%u: boot.data.%s", it->config_file, it->line,
                         it->column, it->key);
        else
                snprintf(buf, size, "boot.data.%s (config line %u, column %u)", it->key,
                         it->line, it->column);
}

/* 2. One `boot.programs` entry, compiled and run to its end (or its first error). */
static void boot_program(hyb_boot *b, const hyb_broker_boot_item *it, size_t i)
{
        _cleanup_free_ char *text = NULL;
        hyb_mmadt_program *p = NULL;
        char at[2 * PATH_MAX + 128];
        hyb_error e;
        int r = 0;

        hyb_error_clear(&e);
        if (it->file)
                r = read_program(it->file, &text, &e);
        if (r >= 0)
                r = hyb_mmadt_compile(b->vm, it->file ? text : it->text, (size_t)-1, &p, &e);
        if (r >= 0)
                r = hyb_mmadt_run(b->vm, p, NULL, NULL, NULL, &e);
        hyb_mmadt_program_unref(p);
        if (r < 0) {
                b->n_errors++;
                where(it, i, &e, at, sizeof(at));
                blog(b, HYB_LOG_ERROR, "boot: %s: %s", at,
                     e.message[0] ? e.message : hyb_strerror(r));
        } else {
                blog(b, HYB_LOG_DEBUG, "boot: %s%s ran", it->file ? it->file : "boot.programs",
                     it->file ? "" : "[]");
        }
}

/* ---- 3. the loop ---- */

static void arm(hyb_boot *b)
{
        uint64_t next = UINT64_MAX, now = hyb_now_usec();
        struct timeval tv;

        for (size_t i = 0; i < ELEMENTSOF(b->backends); i++) {
                uint64_t t = UINT64_MAX;
                if (hyb_backend_get_timeout(b->backends[i], &t) == 0 && t < next)
                        next = t;
        }
        if (proc_n_fibers(b->vm) && next > now + FIBER_TICK_USEC)
                next = now + FIBER_TICK_USEC;
        /* threads that ended are joined on a turn: look again now and then */
        for (mm_proc *p = b->vm->procs; p; p = p->next)
                if (!p->fiber && p->started && next > now + 100000)
                        next = now + 100000;
        evtimer_del(b->timer);
        if (next == UINT64_MAX)
                return;
        next = next > now ? next - now : 0;
        tv.tv_sec = (time_t)(next / 1000000);
        tv.tv_usec = (suseconds_t)(next % 1000000);
        evtimer_add(b->timer, &tv);
}

static void on_event(evutil_socket_t fd, short what, void *userdata)
{
        hyb_boot *b = userdata;

        for (int turn = 0; turn < MAX_TURNS; turn++) {
                hyb_error e;
                int r;

                hyb_error_clear(&e);
                r = hyb_mmadt_step(b->vm, &e);
                if (r < 0) {
                        /* one failing message or fiber turn: log it, keep serving */
                        b->n_errors++;
                        blog(b, HYB_LOG_ERROR, "boot: %s",
                             e.message[0] ? e.message : hyb_strerror(r));
                        continue;
                }
                if (r == 0)
                        break;
        }
        arm(b);
}

static int attach(hyb_boot *b, hyb_scope *scope)
{
        static const hyb_furi_scope scopes[] = { HYB_SCOPE_HOST, HYB_SCOPE_PROGRAM };
        int r;

        for (size_t i = 0; i < ELEMENTSOF(scopes); i++) {
                int fd;

                r = hyb_scope_get_backend(scope, scopes[i], &b->backends[i]);
                if (r < 0)
                        return r;
                fd = hyb_backend_get_fd(b->backends[i]);
                if (fd < 0)
                        return fd;
                b->io[i] = event_new(b->base, fd, EV_READ | EV_PERSIST, on_event, b);
                if (!b->io[i] || event_add(b->io[i], NULL) < 0)
                        return -ENOMEM;
        }
        b->timer = evtimer_new(b->base, on_event, b);
        if (!b->timer)
                return -ENOMEM;
        /* messages the programs caused may be queued already */
        event_active(b->timer, EV_TIMEOUT, 0);
        return 0;
}

HYB_EXPORT hyb_boot *hyb_boot_free(hyb_boot *b)
{
        if (!b)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(b->io); i++)
                if (b->io[i])
                        event_free(b->io[i]);
        if (b->timer)
                event_free(b->timer);
        for (size_t i = 0; i < ELEMENTSOF(b->backends); i++)
                hyb_backend_unref(b->backends[i]);
        if (b->vm)
                hyb_mmadt_halt_all(b->vm);
        hyb_mmadt_unref(b->vm);
        free(b);
        return NULL;
}

HYB_EXPORT int hyb_boot_new(hyb_scope *scope, struct event_base *base,
                            const hyb_broker_config *cfg, hyb_log_fn log, void *userdata,
                            hyb_boot **ret)
{
        hyb_boot *b;
        size_t n_data, n_programs;
        int r;

        hyb_assert_return(scope && base && cfg && ret, -EINVAL);
        b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        b->base = base;
        b->log = log;
        b->log_ud = userdata;
        r = hyb_mmadt_new(scope, "boot", NULL, &b->vm);
        if (r < 0) {
                hyb_boot_free(b);
                return r;
        }
        n_data = hyb_broker_config_get_n_boot(cfg, HYB_BOOT_DATA);
        n_programs = hyb_broker_config_get_n_boot(cfg, HYB_BOOT_PROGRAMS);
        for (size_t i = 0; i < n_data; i++) {
                hyb_broker_boot_item it = { .size = sizeof(it) };

                if (hyb_broker_config_get_boot(cfg, HYB_BOOT_DATA, i, &it) == 0)
                        boot_data(b, scope, &it);
        }
        for (size_t i = 0; i < n_programs; i++) {
                hyb_broker_boot_item it = { .size = sizeof(it) };

                if (hyb_broker_config_get_boot(cfg, HYB_BOOT_PROGRAMS, i, &it) == 0)
                        boot_program(b, &it, i);
        }
        r = attach(b, scope);
        if (r < 0) {
                hyb_boot_free(b);
                return r;
        }
        blog(b, HYB_LOG_INFO, "boot: %zu data entries, %zu programs, %u errors", n_data,
             n_programs, b->n_errors);
        *ret = b;
        return 0;
}

HYB_EXPORT int hyb_boot_reload(hyb_boot *b, const hyb_broker_config *cfg)
{
        size_t n_data;
        unsigned errors;

        hyb_assert_return(b && cfg, -EINVAL);
        errors = b->n_errors;
        n_data = hyb_broker_config_get_n_boot(cfg, HYB_BOOT_DATA);
        for (size_t i = 0; i < n_data; i++) {
                hyb_broker_boot_item it = { .size = sizeof(it) };

                if (hyb_broker_config_get_boot(cfg, HYB_BOOT_DATA, i, &it) == 0)
                        boot_data(b, hyb_mmadt_get_scope(b->vm), &it);
        }
        blog(b, HYB_LOG_INFO, "boot: reload: %zu data entries, %u errors", n_data,
             b->n_errors - errors);
        return 0;
}

HYB_EXPORT hyb_mmadt *hyb_boot_get_vm(hyb_boot *b)
{
        return b ? b->vm : NULL;
}

HYB_EXPORT unsigned hyb_boot_get_n_errors(const hyb_boot *b)
{
        return b ? b->n_errors : 0;
}
