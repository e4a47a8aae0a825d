/* SPDX-License-Identifier: MIT */
/*
 * hybrid token issue --key ISSUER_KEY --iss NAME --sub NAME --aud ID[,ID...]
 *     --holder HOLDER_PUB --cap 'PATTERN=ACTION[,ACTION...]'... [--ttl S] [--dlg N]
 * prints a one-block token on one line.
 */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cmd-token-util.h"

/* --log FILE: a `grant` row naming the principal, the token id and the holder. */
static int log_grant(cli_ctx *ctx, const hyb_key *issuer, const char *tok)
{
        char *json = NULL, *detail = NULL;
        json_t *j, *claims;
        int status;

        if (!cli_opt(ctx, "log"))
                return EXIT_OK;
        if (hyb_token_inspect(tok, &json, NULL) < 0)
                return cli_fail(EXIT_FAILED, "token issue", "ENOMEM", "out of memory");
        j = json_loads(json, 0, NULL);
        hyb_free(json);
        claims = json_object_get(json_array_get(json_object_get(j, "blocks"), 0), "claims");
        if (asprintf(&detail, "jti=%s holder=%s exp=%" JSON_INTEGER_FORMAT,
                     json_string_value(json_object_get(claims, "jti")) ?: "?",
                     cli_opt(ctx, "holder"),
                     json_integer_value(json_object_get(claims, "exp"))) < 0)
                detail = NULL;
        json_decref(j);
        if (!detail)
                return cli_fail(EXIT_FAILED, "token issue", "ENOMEM", "out of memory");
        status = token_log_row(ctx, "token issue", issuer, "grant", cli_opt(ctx, "sub"), detail);
        free(detail);
        return status;
}

int token_issue(cli_ctx *ctx)
{
        hyb_key *issuer = NULL, *holder = NULL;
        hyb_token_cap caps[32];
        char *strings[32], *audbuf = NULL, *tok = NULL;
        const char *aud[16];
        int n_caps = 0, status;
        long ttl, dlg;
        hyb_token_issue_opts o;
        hyb_error e = {0};
        int r;

        if (ctx->nargs != 1)
                return cli_usage(ctx, "'token issue' takes no arguments, only options");
        if (!cli_opt(ctx, "iss") || !*cli_opt(ctx, "iss") || !cli_opt(ctx, "sub") ||
            !*cli_opt(ctx, "sub") || !cli_opt(ctx, "aud") || !cli_opt(ctx, "holder"))
                return cli_usage(ctx, "'token issue' needs --key, --iss, --sub, --aud, --holder "
                                      "and at least one --cap");
        if (!cli_opt_long(ctx, "ttl", HYB_TOKEN_DEFAULT_TTL_S, 1, 10L * 365 * 86400, &ttl) ||
            !cli_opt_long(ctx, "dlg", 0, 0, HYB_TOKEN_MAX_BLOCKS - 1, &dlg))
                return EXIT_USAGE;
        status = token_caps_from_opts(ctx, caps, strings, 32, &n_caps);
        if (status != EXIT_OK)
                return status;
        if (n_caps == 0) {
                status = cli_usage(ctx, "'token issue' needs at least one --cap");
                goto out;
        }
        status = token_load_key(ctx, "token issue", "key", true, &issuer);
        if (status == EXIT_OK)
                status = token_load_key(ctx, "token issue", "holder", false, &holder);
        if (status != EXIT_OK)
                goto out;
        audbuf = strdup(cli_opt(ctx, "aud"));
        hyb_token_issue_opts_init(&o);
        o.iss = cli_opt(ctx, "iss");
        o.sub = cli_opt(ctx, "sub");
        o.aud = aud;
        o.n_aud = audbuf ? (size_t)token_split_aud(audbuf, aud, 16) : 0;
        o.holder = holder;
        o.caps = caps;
        o.n_caps = (size_t)n_caps;
        o.ttl_s = (uint64_t)ttl;
        o.dlg = (unsigned)dlg;
        r = hyb_token_issue(issuer, &o, &tok, &e);
        if (r == -EINVAL)
                status = cli_usage(ctx, "%s", e.message);
        else if (r < 0)
                status = cli_fail(EXIT_FAILED, "token issue", hyb_err_name(r), "%s",
                                  *e.message ? e.message : hyb_strerror(r));
        else if ((status = log_grant(ctx, issuer, tok)) == EXIT_OK)
                cli_println("%s", tok);
out:
        for (int i = 0; i < n_caps; i++)
                free(strings[i]);
        free(audbuf);
        hyb_free(tok);
        hyb_key_unref(issuer);
        hyb_key_unref(holder);
        return status;
}
