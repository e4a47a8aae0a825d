/* SPDX-License-Identifier: MIT */
/*
 * hybrid token verify --trust NAME=PUBFILE... --aud ID [--at UNIX_SECONDS]
 *     [--check 'FURI=ACTION']... TOKEN|-
 * exit 0: valid at that time for that audience and every --check allowed
 * (prints sub, exp, holder kid and the effective cap as JSON); exit 1: not
 * (the reason on stderr); exit 2: usage.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cmd-token-util.h"

int token_verify(cli_ctx *ctx)
{
        hyb_token_trust *trust = NULL;
        hyb_token_result *res = NULL;
        hyb_token_verify_opts o;
        const char *checks[32];
        char *tok = NULL, *json = NULL;
        hyb_error e = {0};
        int n_checks, status, r;
        long at;

        if (!cli_opt(ctx, "aud") || !*cli_opt(ctx, "aud"))
                return cli_usage(ctx, "'token verify' needs --aud ID (this verifier)");
        if (!cli_opt_long(ctx, "at", 0, 1, 1L << 53, &at))
                return EXIT_USAGE;
        n_checks = token_opt_all(ctx, "check", checks, 32);
        /* every --check is well-formed before anything is verified (exit 2 beats exit 1) */
        for (int i = 0; i < n_checks; i++) {
                char *furi = NULL;
                unsigned acts;

                if (!token_split_rights(ctx, "check", checks[i], &furi, &acts))
                        return EXIT_USAGE;
                free(furi);
        }
        if (hyb_token_trust_new(&trust) < 0)
                return cli_fail(EXIT_FAILED, "token verify", "ENOMEM", "out of memory");
        status = token_load_trust(ctx, "verify", trust);
        if (status == EXIT_OK)
                status = token_arg(ctx, "verify", &tok);
        if (status != EXIT_OK)
                goto out;
        hyb_token_verify_opts_init(&o);
        o.audience = cli_opt(ctx, "aud");
        o.now = at;
        r = hyb_token_verify(tok, trust, &o, &res, &e);
        if (r < 0) {
                status = cli_fail(EXIT_FAILED, "token verify", hyb_err_name(r), "%s",
                                  *e.message ? e.message : hyb_strerror(r));
                goto out;
        }
        for (int i = 0; i < n_checks; i++) {
                char *furi = NULL;
                unsigned acts = 0;

                token_split_rights(ctx, "check", checks[i], &furi, &acts);
                r = furi ? hyb_token_allowed_str(res, furi, acts) : -ENOMEM;
                free(furi);
                if (r != 1) {
                        status = cli_fail(EXIT_FAILED, "token verify", "HYB_E_FORBIDDEN",
                                          "--check %s: not allowed by the token", checks[i]);
                        goto out;
                }
        }
        if (hyb_token_result_to_json(res, &json) < 0) {
                status = cli_fail(EXIT_FAILED, "token verify", "ENOMEM", "out of memory");
                goto out;
        }
        cli_println("%s", json);
        status = EXIT_OK;
out:
        free(tok);
        hyb_free(json);
        hyb_token_result_unref(res);
        hyb_token_trust_unref(trust);
        return status;
}
