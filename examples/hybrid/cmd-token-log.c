/* SPDX-License-Identifier: MIT */
/*
 * hybrid token log add --key ISSUER_KEY --kind KIND --subject NAME [--detail TEXT] FILE
 * hybrid token log [--verify --trust NAME=PUBFILE... [--head SEQ:HASH]] FILE
 *
 * The identity log (doc/token.md "Identity log"): `add` appends one signed,
 * hash-chained row (enroll, rotate, grant, revoke) to the SQLite file FILE
 * and prints its seq; without `add` the rows are listed (text, or --json
 * one object per line), and with --verify every row is checked first against
 * the trusted issuer keys, and the log must still hold the head its witness
 * FILE.head names and the --head given: exit 1 with the first broken row, or
 * the head that is missing, on stderr.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd-token-util.h"

int token_log_row(cli_ctx *ctx, const char *what, const hyb_key *issuer, const char *kind,
                  const char *subject, const char *detail)
{
        const char *file = cli_opt(ctx, "log");
        hyb_error e = {0};
        int r;

        if (!file)
                return EXIT_OK;
        if (!*file)
                return cli_usage(ctx, "--log needs a FILE");
        r = hyb_token_log_append(file, issuer, kind, subject, detail, 0, NULL, &e);
        if (r < 0)
                return cli_fail(EXIT_FAILED, what, hyb_err_name(r), "--log %s: %s", file,
                                *e.message ? e.message : hyb_strerror(r));
        return EXIT_OK;
}

static int log_add(cli_ctx *ctx)
{
        const char *kind = cli_opt(ctx, "kind"), *subject = cli_opt(ctx, "subject");
        hyb_key *key = NULL;
        hyb_error e = {0};
        uint64_t seq = 0;
        int status, r;

        if (ctx->nargs != 3)
                return cli_usage(ctx, "'token log add' takes one FILE (the log)");
        if (!kind || !*kind || !subject || !*subject)
                return cli_usage(ctx, "'token log add' needs --kind KIND and --subject NAME");
        if (cli_opt(ctx, "verify") || cli_opt(ctx, "trust") || cli_opt(ctx, "head"))
                return cli_usage(ctx, "'token log add' takes neither --verify, --trust nor --head");
        status = token_load_key(ctx, "log add", "key", true, &key);
        if (status != EXIT_OK)
                return status;
        r = hyb_token_log_append(ctx->args[2], key, kind, subject, cli_opt(ctx, "detail"), 0, &seq,
                                 &e);
        hyb_key_unref(key);
        if (r == -EINVAL)
                return cli_usage(ctx, "%s", e.message);
        if (r < 0)
                return cli_fail(EXIT_FAILED, "token log add", hyb_err_name(r), "%s",
                                *e.message ? e.message : hyb_strerror(r));
        cli_println("%" PRIu64, seq);
        return EXIT_OK;
}

static int print_row(const hyb_token_log_row *row, void *userdata)
{
        const cli_ctx *ctx = userdata;

        if (ctx->json) {
                json_t *j =
                        json_pack("{s:I,s:I,s:s,s:s,s:s,s:s,s:s,s:s}", "seq", (json_int_t)row->seq,
                                  "at", (json_int_t)row->at, "kind", row->kind, "subject",
                                  row->subject, "detail", row->detail, "issuer", row->issuer_kid,
                                  "prev", row->prev, "hash", row->hash);
                char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

                json_decref(j);
                if (!s)
                        return -ENOMEM;
                cli_println("%s", s);
                free(s);
        } else {
                cli_println("%" PRIu64 " %" PRId64 " %s %s %s%s%s", row->seq, row->at, row->kind,
                            row->subject, row->issuer_kid, *row->detail ? " " : "", row->detail);
        }
        return 0;
}

int token_log(cli_ctx *ctx)
{
        hyb_token_trust *trust = NULL;
        hyb_error e = {0};
        int status = EXIT_OK, r;

        if (ctx->nargs >= 2 && strcmp(ctx->args[1], "add") == 0)
                return log_add(ctx);
        if (ctx->nargs != 2)
                return cli_usage(ctx, "'token log' takes one FILE (or 'add ... FILE')");
        if (cli_opt(ctx, "key") || cli_opt(ctx, "kind") || cli_opt(ctx, "subject") ||
            cli_opt(ctx, "detail"))
                return cli_usage(ctx,
                                 "--key, --kind, --subject and --detail are for 'token log add'");
        if (cli_flag(ctx, "verify")) {
                if (hyb_token_trust_new(&trust) < 0)
                        return cli_fail(EXIT_FAILED, "token log", "ENOMEM", "out of memory");
                status = token_load_trust(ctx, "log --verify", trust);
        } else if (cli_opt(ctx, "trust") || cli_opt(ctx, "head")) {
                status = cli_usage(ctx, "--trust and --head are for 'token log --verify'");
        }
        if (status != EXIT_OK)
                goto out;
        /* Verified first, then listed: nothing of a broken log is printed as if it were good. */
        if (trust) {
                r = hyb_token_log_verify(ctx->args[1], trust, cli_opt(ctx, "head"), &e);
                if (r == -EINVAL) {
                        status = cli_usage(ctx, "%s", e.message);
                        goto out;
                }
                if (r < 0) {
                        status = cli_fail(EXIT_FAILED, "token log", hyb_err_name(r), "%s",
                                          *e.message ? e.message : hyb_strerror(r));
                        goto out;
                }
        }
        r = hyb_token_log_read(ctx->args[1], NULL, print_row, ctx, &e);
        if (r < 0)
                status = cli_fail(EXIT_FAILED, "token log", hyb_err_name(r), "%s",
                                  *e.message ? e.message : hyb_strerror(r));
out:
        hyb_token_trust_unref(trust);
        return status;
}
