/* SPDX-License-Identifier: MIT */
/*
 * `hybrid furi match|parse`: the fURI module from the shell (doc/hybrid.md,
 * doc/furi.md).  Public API only.
 *
 *   hybrid furi parse <furi>            the canonical form (with --json, its parts)
 *   hybrid furi match <furi> <pattern>  true or false, exit 0 either way; with
 *                                       wildcards in <furi>: is it within <pattern>
 */
#include <stdio.h>
#include <string.h>

#include <hybrid/hybrid.h>

#include "cli.h"

static int parse_arg(const char *what, const char *text, hyb_furi **ret)
{
        hyb_error e;
        int r;

        hyb_error_clear(&e);
        r = hyb_furi_parse(text, (size_t)-1, NULL, ret, &e);
        if (r < 0)
                return cli_fail(EXIT_USAGE, "furi", hyb_err_name(r), "%s in %s '%.80s%s'",
                                e.message[0] ? e.message : hyb_strerror(r), what, text,
                                strlen(text) > 80 ? "..." : "");
        return 0;
}

/* A JSON string: the fURI parser has already refused control characters, so
 * only quotes and backslashes need escaping; other bytes pass as they are. */
static void json_str(FILE *out, const char *s, size_t n)
{
        fputc('"', out);
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c == '"' || c == '\\')
                        fprintf(out, "\\%c", c);
                else if (c < 0x20)
                        fprintf(out, "\\u%04x", c);
                else
                        fputc(c, out);
        }
        fputc('"', out);
}

static void json_opt(FILE *out, const char *key, const char *s)
{
        fprintf(out, ",\"%s\":", key);
        if (s)
                json_str(out, s, strlen(s));
        else
                fputs("null", out);
}

static void print_json(const hyb_furi *f)
{
        static const char *scopes[] = { "program", "home", "host", "cluster", "global" };
        static const char *kinds[] = { "literal", "plus", "hash" };
        size_t n = hyb_furi_get_n_segments(f), len;
        const char *s;

        fputs("{\"furi\":", stdout);
        json_str(stdout, hyb_furi_get_str(f), strlen(hyb_furi_get_str(f)));
        json_opt(stdout, "scheme", hyb_furi_get_scheme(f));
        json_opt(stdout, "user", hyb_furi_get_user(f));
        json_opt(stdout, "host", hyb_furi_get_host(f));
        if (hyb_furi_get_port(f) >= 0)
                printf(",\"port\":%d", hyb_furi_get_port(f));
        else
                fputs(",\"port\":null", stdout);
        printf(",\"absolute\":%s,\"branch\":%s,\"segments\":[",
               hyb_furi_is_absolute(f) ? "true" : "false", hyb_furi_is_branch(f) ? "true" : "false");
        for (size_t i = 0; i < n; i++) {
                s = hyb_furi_get_segment(f, i, &len);
                if (i)
                        fputc(',', stdout);
                json_str(stdout, s, len);
        }
        fputs("],\"kinds\":[", stdout);
        for (size_t i = 0; i < n; i++)
                printf("%s\"%s\"", i ? "," : "", kinds[hyb_furi_get_segment_kind(f, i)]);
        fputc(']', stdout);
        json_opt(stdout, "query", hyb_furi_get_query(f));
        printf(",\"scope\":\"%s\",\"pattern\":%s}\n", scopes[hyb_furi_get_scope(f)],
               hyb_furi_is_pattern(f) ? "true" : "false");
        fflush(stdout);
}

static int run_furi(cli_ctx *ctx)
{
        hyb_furi *f = NULL, *p = NULL;
        const char *sub = ctx->nargs > 0 ? ctx->args[0] : NULL;
        int r;

        if (!sub)
                return cli_usage(ctx, "missing subcommand (match or parse)");
        if (strcmp(sub, "parse") == 0) {
                if (ctx->nargs != 2)
                        return cli_usage(ctx, "parse takes one fURI");
                r = parse_arg("fURI", ctx->args[1], &f);
                if (r)
                        return r;
                if (ctx->json)
                        print_json(f);
                else
                        cli_println("%s", hyb_furi_get_str(f));
                hyb_furi_unref(f);
                return EXIT_OK;
        }
        if (strcmp(sub, "match") == 0) {
                if (ctx->nargs != 3)
                        return cli_usage(ctx, "match takes a fURI and a pattern");
                r = parse_arg("fURI", ctx->args[1], &f);
                if (r)
                        return r;
                r = parse_arg("pattern", ctx->args[2], &p);
                if (r) {
                        hyb_furi_unref(f);
                        return r;
                }
                cli_println("%s", hyb_furi_match(f, p) ? "true" : "false");
                hyb_furi_unref(f);
                hyb_furi_unref(p);
                return EXIT_OK;
        }
        return cli_usage(ctx, "unknown subcommand '%s' (match or parse)", sub);
}

const cli_command cmd_furi = {
        .name = "furi",
        .run = run_furi,
        .options = NULL,
        .summary = "parse, print and match fURIs",
        .usage = "usage: hybrid furi parse <furi>            print the canonical form (--json: its parts)\n"
                 "       hybrid furi match <furi> <pattern>  print true or false (exit 0 either way);\n"
                 "                                           with wildcards in <furi>: is it within <pattern>\n"
                 "An invalid fURI exits 2 with the error and its byte offset on stderr.\n",
        .globals = CLI_G_JSON,
};
