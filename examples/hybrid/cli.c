/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

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

        fflush(stdout);
        fprintf(stderr, "hybrid: %s: %s ", what, code);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return status;
}

int cli_usage(const cli_ctx *ctx, const char *fmt, ...)
{
        va_list ap;

        fflush(stdout);
        fprintf(stderr, "hybrid: %s: usage ", ctx->command ? ctx->command : "usage");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, " (see 'hybrid %s --help')\n", ctx->command ? ctx->command : "");
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
