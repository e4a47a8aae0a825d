/* SPDX-License-Identifier: MIT */
/* Shared plumbing of the bus commands; see cli-bus.h. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include <hybrid/hybrid.h>

#include "cli-bus.h"

static sigset_t term_signals;
static bool signals_blocked;

uint64_t clibus_now_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static bool is_status_code(int r)
{
        return r <= -(HYB_E_BASE + 100) && r >= -(HYB_E_BASE + 599);
}

int clibus_exit_status(int r)
{
        if (is_status_code(r))
                return EXIT_FAILED;
        /* The broker went away or never was there: the daemon cannot be reached. */
        return EXIT_UNREACHABLE;
}

int clibus_fail(int exit_status, const char *what, int r, const hyb_error *e)
{
        char code[64];

        if (is_status_code(r))
                snprintf(code, sizeof(code), "%d", -r - HYB_E_BASE);
        else
                snprintf(code, sizeof(code), "%s", hyb_err_name(r));
        return cli_fail(exit_status, what, code, "%s",
                        e && e->code == r && e->message[0] ? e->message : hyb_strerror(r));
}

int clibus_stream_fail(const char *what, const hyb_bus *bus, int r)
{
        const char *why = NULL;
        int st = r == HYB_E_CLOSED && bus ? hyb_bus_get_close_reason(bus, &why) : 0;
        char code[16];

        if (st <= 0)
                return clibus_fail(clibus_exit_status(r), what, r, NULL);
        snprintf(code, sizeof(code), "%d", st);
        return cli_fail(EXIT_UNREACHABLE, what, code, "the daemon closed the connection: %s",
                        why ? why : "");
}

static bool part_char(int part, char c, bool glob)
{
        if (glob && (c == '*' || c == '?'))
                return true;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
                return true;
        switch (part) {
        case 0: /* host: DNS labels */
                return c == '.' || c == '-';
        case 1: /* app: reverse-DNS of identifiers */
                return c == '.' || c == '_';
        default: /* runner: an identifier */
                return c == '_';
        }
}

int clibus_check_endpoint(const cli_ctx *ctx, const char *name, bool glob)
{
        static const char *const parts[] = { "host", "app", "runner" };
        static const char form[] = "(the form is @host/app/runner, e.g. @localhost/org.example.app/main)";
        const char *p = name + 1, *star = glob ? strchr(name, '*') : NULL;
        int k = 0;

        if (name[0] != '@')
                return cli_fail(EXIT_USAGE, ctx->command, "406",
                                "endpoint '%s': must start with '@' %s", name, form);
        for (;;) {
                const char *end = strchr(p, '/');
                size_t len = end ? (size_t)(end - p) : strlen(p);

                if (k == 3)
                        return cli_fail(EXIT_USAGE, ctx->command, "406",
                                        "endpoint '%s': unexpected part '%.*s' after the runner %s",
                                        name, (int)len, p, form);
                if (len == 0)
                        return cli_fail(EXIT_USAGE, ctx->command, "406",
                                        "endpoint '%s': the %s part is empty %s", name, parts[k], form);
                for (size_t i = 0; i < len; i++)
                        if (!part_char(k, p[i], glob))
                                return cli_fail(EXIT_USAGE, ctx->command, "406",
                                                "endpoint '%s': the %s part '%.*s' has an invalid "
                                                "character '%c' %s",
                                                name, parts[k], (int)len, p, p[i], form);
                k++;
                if (!end)
                        break;
                p = end + 1;
        }
        /* a star in a glob matches across slashes: "@localhost" + "/" + "*" is every endpoint there */
        if (k < 3 && !star)
                return cli_fail(EXIT_USAGE, ctx->command, "406", "endpoint '%s': the %s part is missing %s",
                                name, parts[k], form);
        return 0;
}

int clibus_check_member(const cli_ctx *ctx, const char *what, const char *name, bool glob)
{
        if (!*name)
                return cli_fail(EXIT_USAGE, ctx->command, "406", "%s: empty", what);
        for (const char *p = name; *p; p++)
                if (!part_char(2, *p, glob))
                        return cli_fail(EXIT_USAGE, ctx->command, "406",
                                        "%s '%s': invalid character '%c' (a name is letters, digits "
                                        "and '_'%s)",
                                        what, name, *p, glob ? "; globs add '*' and '?'" : "");
        return 0;
}

int clibus_connect_options(const cli_ctx *ctx, hyb_bus_connect_options *o, char **ret_token,
                           hyb_key **ret_key)
{
        char buf[HYB_TOKEN_MAX_SIZE + 2];
        hyb_error e;
        size_t n;
        FILE *f;
        int r;

        hyb_bus_connect_options_init(o);
        o->path = ctx->bus;
        o->app = ctx->app;
        o->runner = ctx->runner;
        o->ca_file = ctx->ca_file;
        o->pin = ctx->pin;
        *ret_token = NULL;
        *ret_key = NULL;
        if (!ctx->token_file && !ctx->key_file)
                return 0;
        /* A credential refused on this side is 401 too (doc/hybrid.md). */
        if (!ctx->token_file || !ctx->key_file)
                return cli_fail(EXIT_FAILED, ctx->command, "401", "%s",
                                ctx->token_file ? "--token needs --key (the holder's private key)"
                                                : "--key needs --token");
        f = fopen(ctx->token_file, "re");
        if (!f)
                return cli_fail(EXIT_FAILED, ctx->command, "401", "cannot read the token %s: %s",
                                ctx->token_file, strerror(errno));
        n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
                buf[--n] = '\0';
        if (n == 0 || n > HYB_TOKEN_MAX_SIZE)
                return cli_fail(EXIT_FAILED, ctx->command, "401", "the token %s is empty or too long",
                                ctx->token_file);
        hyb_error_clear(&e);
        r = hyb_key_load_file(ctx->key_file, ret_key, &e);
        if (r < 0)
                return cli_fail(EXIT_FAILED, ctx->command, "401", "cannot load the key %s: %s",
                                ctx->key_file, e.message[0] ? e.message : hyb_strerror(r));
        *ret_token = strdup(buf);
        if (!*ret_token) {
                *ret_key = hyb_key_unref(*ret_key);
                return cli_fail(EXIT_FAILED, ctx->command, "ENOMEM", "out of memory");
        }
        o->token = *ret_token;
        o->key = *ret_key;
        return 0;
}

void clibus_credentials_free(char *token, hyb_key *key)
{
        free(token);
        hyb_key_unref(key);
}

/* The exit status of a failed connect. */
static int connect_status(int r)
{
        switch (r) {
        case HYB_E_NOT_ACCEPTABLE: /* --app / --runner is not a valid name: a usage error */
        case -EINVAL:
                return EXIT_USAGE;
        case HYB_E_FORBIDDEN: /* reached, but this uid may not claim the app */
        case HYB_E_UNAUTHORIZED: /* reached, but the credentials were refused */
        case HYB_E_CONFLICT:
        case HYB_E_NOT_IMPLEMENTED:
                return EXIT_FAILED;
        default:
                return EXIT_UNREACHABLE;
        }
}

int clibus_connect(const cli_ctx *ctx, hyb_bus **ret)
{
        hyb_bus_connect_options o;
        hyb_key *key = NULL;
        char *token = NULL;
        hyb_error e;
        int r;

        r = clibus_connect_options(ctx, &o, &token, &key);
        if (r)
                return r;
        hyb_error_clear(&e);
        r = hyb_bus_connect_with(&o, ret, &e);
        clibus_credentials_free(token, key);
        if (r >= 0)
                return 0;
        return clibus_fail(connect_status(r), ctx->command, r, &e);
}

static char *read_all(FILE *f, size_t *ret_len)
{
        size_t len = 0, cap = 65536;
        char *buf = malloc(cap);

        if (!buf)
                return NULL;
        for (;;) {
                size_t n;

                if (cap - len < 2) {
                        char *nb = realloc(buf, cap * 2);

                        if (!nb) {
                                free(buf);
                                return NULL;
                        }
                        buf = nb;
                        cap *= 2;
                }
                n = fread(buf + len, 1, cap - len - 1, f);
                len += n;
                if (n == 0)
                        break;
        }
        if (ferror(f)) {
                free(buf);
                return NULL;
        }
        buf[len] = '\0';
        *ret_len = len;
        return buf;
}

int clibus_json_arg(const cli_ctx *ctx, const char *arg, char **ret, size_t *ret_len)
{
        json_error_t je;
        json_t *j;
        char *text;
        size_t len;

        if (strcmp(arg, "-") == 0) {
                text = read_all(stdin, &len);
                if (!text)
                        return cli_fail(EXIT_FAILED, ctx->command, "EIO", "cannot read stdin");
        } else {
                text = strdup(arg);
                if (!text)
                        return cli_fail(EXIT_FAILED, ctx->command, "ENOMEM", "out of memory");
                len = strlen(text);
        }
        /* Validate only: the body travels as the caller wrote it. */
        j = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        if (!j) {
                free(text);
                return cli_fail(EXIT_USAGE, ctx->command, "HYB_E_PARSE", "bad JSON at %d:%d: %s",
                                je.line, je.column, je.text);
        }
        json_decref(j);
        *ret = text;
        *ret_len = len;
        return 0;
}

int clibus_block_signals(void)
{
        sigemptyset(&term_signals);
        sigaddset(&term_signals, SIGTERM);
        sigaddset(&term_signals, SIGINT);
        if (sigprocmask(SIG_BLOCK, &term_signals, NULL) < 0)
                return -errno;
        signals_blocked = true;
        return 0;
}

int clibus_run(hyb_bus *bus, const bool *done, clibus_tick_fn tick, void *userdata)
{
        int sfd, r = 0;

        if (!signals_blocked && (r = clibus_block_signals()) < 0)
                return r;
        sfd = signalfd(-1, &term_signals, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0)
                return -errno;

        while (!(done && *done)) {
                struct pollfd p[2];
                uint64_t due = UINT64_MAX, bus_due = UINT64_MAX, now;
                int timeout_ms;

                /* Everything already readable or due first: process() does one packet at a time. */
                while ((r = hyb_bus_process(bus)) > 0)
                        if (done && *done)
                                break;
                if (r < 0 || (done && *done))
                        break;
                if (tick)
                        due = tick(userdata);
                if (done && *done)
                        break;
                if (hyb_bus_get_timeout(bus, &bus_due) < 0) {
                        r = HYB_E_CLOSED;
                        break;
                }
                if (bus_due < due)
                        due = bus_due;
                now = clibus_now_us();
                if (due == UINT64_MAX)
                        timeout_ms = -1;
                else if (due <= now)
                        timeout_ms = 0;
                else
                        timeout_ms = (int)((due - now + 999) / 1000 > 60000 ? 60000 :
                                                                              (due - now + 999) / 1000);

                p[0].fd = hyb_bus_get_fd(bus);
                r = hyb_bus_get_events(bus);
                if (p[0].fd < 0 || r < 0) {
                        r = HYB_E_CLOSED;
                        break;
                }
                p[0].events = (short)r;
                p[1].fd = sfd;
                p[1].events = POLLIN;
                r = poll(p, 2, timeout_ms);
                if (r < 0 && errno != EINTR) {
                        r = -errno;
                        break;
                }
                r = 0;
                if (p[1].revents & POLLIN)
                        break; /* SIGTERM or SIGINT: a clean end */
        }
        close(sfd);
        return r < 0 ? r : 0;
}

void clibus_print_body(const void *body, size_t len, bool binary)
{
        const unsigned char *b = body;

        if (!binary) {
                fwrite(body, 1, len, stdout);
                return;
        }
        fputs("0x", stdout);
        for (size_t i = 0; i < len; i++)
                printf("%02x", b[i]);
}
