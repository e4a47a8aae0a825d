/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <hybrid/hybrid.h>

#include "cli.h"

static bool json_errors;

void cli_set_json_errors(bool on)
{
        json_errors = on;
}

/* One {"error":{...}} line on stderr; code is a bus status ("404") or an error name. */
static void json_error(int status, const char *what, const char *code, const char *msg)
{
        char *end;
        long n = strtol(code, &end, 10);
        bool numeric = *code && !*end;
        /* what is NULL for a usage error before any command is known */
        json_t *j = json_pack("{s:{s:o, s:o, s:s, s:s, s:i}}", "error", "command",
                              what ? json_string(what) : json_null(),
                              "status", numeric ? json_integer(n) : json_null(), "name",
                              numeric ? hyb_err_name(-(HYB_E_BASE + (int)n)) : code, "message",
                              msg, "exit", status);
        char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

        if (s)
                fprintf(stderr, "%s\n", s);
        else
                fprintf(stderr, "hybrid: %s: %s %s\n", what ? what : "usage", code, msg);
        fflush(stderr);
        free(s);
        json_decref(j);
}

static void report(int status, const char *what, const char *code,
                   const char *suffix, const char *fmt, va_list ap)
{
        static const char hex[] = "0123456789abcdef";
        char raw[4096], msg[4 * sizeof raw];
        size_t n = 0;

        fflush(stdout);
        vsnprintf(raw, sizeof(raw), fmt, ap);
        /* one line, whatever the message quotes (a token's claim names...): control
         * characters as \xNN, so no terminal escape sequence or forged line gets out */
        for (const char *p = raw; *p && n + 5 < sizeof msg; p++) {
                unsigned char ch = (unsigned char)*p;

                if (ch < 0x20 || ch == 0x7f) {
                        msg[n++] = '\\';
                        msg[n++] = 'x';
                        msg[n++] = hex[ch >> 4];
                        msg[n++] = hex[ch & 15];
                } else {
                        msg[n++] = (char)ch;
                }
        }
        msg[n] = '\0';
        if (json_errors) {
                char full[sizeof raw + 256];

                /* JSON escapes control characters itself */
                snprintf(full, sizeof(full), "%s%s", raw, suffix);
                json_error(status, what, *code ? code : "usage", full);
                return;
        }
        if (!what) /* "hybrid: usage: <message>" */
                what = code, code = "";
        fprintf(stderr, "hybrid: %s: %s%s%s%s\n", what, code, *code ? " " : "", msg, suffix);
        fflush(stderr);
}

static size_t distance(const char *a, const char *b)
{
        size_t la = strlen(a), lb = strlen(b), row[64], diag, up;

        if (la >= 64 || lb >= 64)
                return (size_t)-1;
        for (size_t j = 0; j <= lb; j++)
                row[j] = j;
        for (size_t i = 1; i <= la; i++) {
                diag = row[0];
                row[0] = i;
                for (size_t j = 1; j <= lb; j++) {
                        size_t best = diag + (a[i - 1] != b[j - 1]);

                        up = row[j];
                        if (up + 1 < best)
                                best = up + 1;
                        if (row[j - 1] + 1 < best)
                                best = row[j - 1] + 1;
                        diag = up;
                        row[j] = best;
                }
        }
        return row[lb];
}

const char *cli_suggest(const char *word, const char *const *candidates, size_t n)
{
        const char *best = NULL;
        size_t best_d = (size_t)-1, len = strlen(word);

        for (size_t i = 0; i < n; i++) {
                size_t d = distance(word, candidates[i]);

                /* a prefix of at least 3 letters counts as a near miss too ("sto") */
                if (len >= 3 && strncmp(candidates[i], word, len) == 0 && d > 1)
                        d = 1;
                if (d < best_d) {
                        best_d = d;
                        best = candidates[i];
                }
        }
        /* at most 2 edits, and fewer than the word's length: "x" suggests nothing */
        return best && best_d <= 2 && best_d < len ? best : NULL;
}

const char *cli_opt(const cli_ctx *ctx, const char *name)
{
        for (int i = ctx->nopts - 1; i >= 0; i--)
                if (strcmp(ctx->opt_names[i], name) == 0)
                        return ctx->opt_values[i];
        return NULL;
}

bool cli_flag(const cli_ctx *ctx, const char *name)
{
        return cli_opt(ctx, name) != NULL;
}

int cli_fail(int status, const char *what, const char *code, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        report(status, what, code, "", fmt, ap);
        va_end(ap);
        return status;
}

int cli_usage(const cli_ctx *ctx, const char *fmt, ...)
{
        char suffix[128];
        va_list ap;

        snprintf(suffix, sizeof(suffix), " (see 'hybrid %s%s--help')",
                 ctx->command ? ctx->command : "", ctx->command ? " " : "");
        va_start(ap, fmt);
        /* before a command is known: "hybrid: usage: <message>", JSON "command":null */
        report(EXIT_USAGE, ctx->command, "usage", suffix, fmt, ap);
        va_end(ap);
        return EXIT_USAGE;
}

void cli_println(const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vfprintf(stdout, fmt, ap);
        va_end(ap);
        fputc('\n', stdout);
        fflush(stdout);
}

bool cli_opt_long(const cli_ctx *ctx, const char *name, long dflt, long min, long max, long *ret)
{
        const char *v = cli_opt(ctx, name);
        char *end;
        long x;

        if (!v) {
                *ret = dflt;
                return true;
        }
        errno = 0;
        x = strtol(v, &end, 10);
        if (errno || end == v || *end || x < min || x > max) {
                cli_usage(ctx, "--%s wants a whole number from %ld to %ld, not '%s'", name, min,
                          max, v);
                return false;
        }
        *ret = x;
        return true;
}
