/* SPDX-License-Identifier: MIT */
/*
 * hybrid token attenuate --key HOLDER_KEY --holder NEW_HOLDER_PUB [--cap ...]...
 *     [--aud ID[,ID...]] [--ttl S] TOKEN|-
 * prints the token with one more block: signed by the current holder, naming
 * the new holder, narrowing what is given.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cmd-token-util.h"

int token_attenuate(cli_ctx *ctx)
{
        hyb_key *key = NULL, *holder = NULL;
        hyb_token_cap caps[32];
        char *strings[32], *audbuf = NULL, *tok = NULL, *out = NULL;
        const char *aud[16];
        int n_caps = 0, status;
        long ttl;
        hyb_token_attenuate_opts o;
        hyb_error e = {0};
        int r;

        if (!cli_opt_long(ctx, "ttl", 0, 1, 10L * 365 * 86400, &ttl))
                return EXIT_USAGE;
        status = token_caps_from_opts(ctx, caps, strings, 32, &n_caps);
        if (status != EXIT_OK)
                return status;
        status = token_arg(ctx, "attenuate", &tok);
        if (status == EXIT_OK)
                status = token_load_key(ctx, "token attenuate", "key", true, &key);
        if (status == EXIT_OK)
                status = token_load_key(ctx, "token attenuate", "holder", false, &holder);
        if (status != EXIT_OK)
                goto out;
        hyb_token_attenuate_opts_init(&o);
        o.holder = holder;
        o.caps = caps;
        o.n_caps = (size_t)n_caps;
        o.ttl_s = (uint64_t)ttl;
        if (cli_opt(ctx, "aud")) {
                audbuf = strdup(cli_opt(ctx, "aud"));
                o.aud = aud;
                o.n_aud = audbuf ? (size_t)token_split_aud(audbuf, aud, 16) : 0;
                if (o.n_aud == 0) {
                        status = cli_usage(ctx, "--aud needs at least one ID");
                        goto out;
                }
        }
        r = hyb_token_attenuate(tok, key, &o, &out, &e);
        if (r == -EINVAL)
                status = cli_usage(ctx, "%s", e.message);
        else if (r < 0)
                status = cli_fail(EXIT_FAILED, "token attenuate", hyb_err_name(r), "%s",
                                  *e.message ? e.message : hyb_strerror(r));
        else
                cli_println("%s", out);
out:
        for (int i = 0; i < n_caps; i++)
                free(strings[i]);
        free(audbuf);
        free(tok);
        hyb_free(out);
        hyb_key_unref(key);
        hyb_key_unref(holder);
        return status;
}
