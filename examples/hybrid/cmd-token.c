/* SPDX-License-Identifier: MIT */
/*
 * hybrid token <subcommand>: keys and security tokens (doc/token.md).
 *
 * This file is the dispatcher and `keygen`.  Each subcommand is one function
 * `int token_<name>(cli_ctx *)` (declared in cli.h, defined in
 * cmd-token-<name>.c or here) and one row of token_subcommands[] naming the
 * command options it accepts: an option the subcommand does not take is a
 * usage error (exit 2) before it runs.  ctx->args[0] is the subcommand name,
 * its own arguments follow.  The options themselves (name, value or flag,
 * help line) are rows of token_options[], shared by all subcommands.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <hybrid/hybrid.h>

#include "cli.h"

typedef struct token_subcommand {
        const char *name;
        int (*run)(cli_ctx *ctx);
        const char *const *options; /* command options it takes, NULL-terminated; NULL: none */
        bool bus;                   /* talks to the daemon: takes --bus */
} token_subcommand;

static const char *const issue_opts[] = { "key", "iss", "sub", "aud", "holder", "cap", "ttl", "dlg",
                                          "log", NULL };
static const char *const attenuate_opts[] = { "key", "holder", "cap", "aud", "ttl", NULL };
static const char *const verify_opts[] = { "trust", "aud", "at", "check", NULL };
static const char *const revoke_opts[] = { "key", "jti", "holder", "min-epoch", "log", NULL };
static const char *const feed_opts[] = { "push", NULL };
static const char *const log_opts[] = { "key", "kind", "subject", "detail", "verify", "trust", "head", NULL };

static const token_subcommand token_subcommands[] = {
        { "keygen", token_keygen, NULL },
        { "issue", token_issue, issue_opts },
        { "attenuate", token_attenuate, attenuate_opts },
        { "inspect", token_inspect, NULL },
        { "verify", token_verify, verify_opts },
        { "revoke", token_revoke, revoke_opts, true },
        { "feed", token_feed, feed_opts, true },
        { "log", token_log, log_opts },
};

#define N_SUBCOMMANDS (sizeof(token_subcommands) / sizeof(token_subcommands[0]))

/* Every option any subcommand takes (the frame parses them; the row says who may). */
static const cli_option token_options[] = {
        { "key", true, "--key FILE      the signing key: the issuer's (issue), the holder's (attenuate)", 0 },
        { "iss", true, "--iss NAME      the issuer name verifiers trust the key under (issue)", 0 },
        { "sub", true, "--sub NAME      the principal: user, device or app (issue)", 0 },
        { "aud", true, "--aud ID[,ID]   the verifiers the token is for; verify: this verifier", 0 },
        { "holder", true, "--holder PUB    the public key of the (new) holder", 0 },
        { "cap", true, "--cap 'PATTERN=ACTION[,ACTION...]'  a capability (repeatable)", 0 },
        { "ttl", true, "--ttl SECONDS   lifetime (issue: default 3600)", 0 },
        { "dlg", true, "--dlg N         attenuations that may follow (issue: default 0, at most 3)", 0 },
        { "trust", true, "--trust NAME=PUBFILE  an issuer and its public key (repeatable)", 0 },
        { "at", true, "--at SECONDS    verify as of this Unix time (default now)", 0 },
        { "check", true, "--check 'FURI=ACTION'  require this right (repeatable)", 0 },
        { "jti", true, "--jti ID        revoke: the token id (jti) to revoke", 0 },
        { "min-epoch", true, "--min-epoch N   revoke: every token of this issuer with an epoch below N", 0 },
        { "log", true, "--log FILE      issue, revoke: also record a grant / revoke row in the identity log FILE", 0 },
        { "push", true, "--push FILE     feed: deliver the entries of FILE (another daemon's 'token feed --json', - for stdin) after the daemon's head, in order", 0 },
        { "kind", true, "--kind KIND     log add: enroll, rotate, grant or revoke", 0 },
        { "subject", true, "--subject NAME  log add: who or what the row is about", 0 },
        { "detail", true, "--detail TEXT   log add: free text kept in the row", 0 },
        { "verify", false, "--verify        log: check every row's chain and signature (needs --trust), and the head its witness FILE.head names", 0 },
        { "head", true, "--head SEQ:HASH log --verify: the log must still hold this row (a head remembered elsewhere)", 0 },
        { NULL, false, NULL, 0 },
};

int token_keygen(cli_ctx *ctx)
{
        hyb_key *key = NULL;
        hyb_error e = { 0 };
        char *pub = NULL;
        int r, status = EXIT_FAILED;

        if (ctx->nargs != 2)
                return cli_usage(ctx, "'token keygen' takes one FILE (the private key; the public "
                                      "key goes to FILE.pub)");
        const char *file = ctx->args[1];
        if (!*file)
                return cli_usage(ctx, "'token keygen' needs a non-empty FILE");
        if (asprintf(&pub, "%s.pub", file) < 0)
                return cli_fail(EXIT_FAILED, "token keygen", "ENOMEM", "out of memory");

        r = hyb_key_generate(&key);
        if (r < 0) {
                cli_fail(EXIT_FAILED, "token keygen", hyb_err_name(r), "%s", hyb_strerror(r));
                goto out;
        }
        /* the public file first: a failure then leaves no private key without its public one */
        r = hyb_key_save_public(key, pub, &e);
        if (r >= 0)
                r = hyb_key_save_private(key, file, &e);
        if (r < 0) {
                cli_fail(EXIT_FAILED, "token keygen", hyb_err_name(r), "%s", e.message);
                goto out;
        }
        if (ctx->json) {
                json_t *j = json_pack("{s:s, s:s, s:s}", "kid", hyb_key_get_kid(key), "key", file,
                                      "pub", pub);
                char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
                json_decref(j);
                if (!s) {
                        cli_fail(EXIT_FAILED, "token keygen", "ENOMEM", "out of memory");
                        goto out;
                }
                cli_println("%s", s);
                free(s);
        } else {
                cli_println("%s", hyb_key_get_kid(key));
        }
        status = EXIT_OK;
out:
        hyb_key_unref(key);
        free(pub);
        return status;
}

static bool sub_takes(const token_subcommand *sub, const char *option)
{
        for (const char *const *o = sub->options; o && *o; o++)
                if (strcmp(*o, option) == 0)
                        return true;
        return false;
}

static int run_token(cli_ctx *ctx)
{
        const char *names[N_SUBCOMMANDS];
        const char *name = ctx->nargs > 0 ? ctx->args[0] : NULL, *s;

        if (!name)
                return cli_usage(ctx, "a subcommand is needed: %s",
                                 "keygen, issue, attenuate, inspect, verify, revoke, feed, log");
        for (size_t i = 0; i < N_SUBCOMMANDS; i++) {
                const token_subcommand *sub = &token_subcommands[i];

                names[i] = sub->name;
                if (strcmp(sub->name, name) != 0)
                        continue;
                /* --bus is resolved before we run: given on the line when it is not the
                 * very string $HYBRID_BUS points to (getenv gives the same pointer). */
                if (!sub->bus && ctx->bus && ctx->bus != getenv("HYBRID_BUS"))
                        return cli_usage(ctx, "option '--bus' is not used by 'token %s'", name);
                for (int o = 0; o < ctx->nopts; o++)
                        if (!sub_takes(sub, ctx->opt_names[o]))
                                return cli_usage(ctx, "option '--%s' is not used by 'token %s'",
                                                 ctx->opt_names[o], name);
                return sub->run(ctx);
        }
        s = cli_suggest(name, names, N_SUBCOMMANDS);
        if (s)
                return cli_usage(ctx, "unknown subcommand '%s'; did you mean '%s'?", name, s);
        return cli_usage(ctx, "unknown subcommand '%s'", name);
}

const cli_command cmd_token = {
        .name = "token",
        .run = run_token,
        .options = token_options,
        .summary = "keys and security tokens: keygen, issue, attenuate, inspect, verify, revoke, feed, log",
        .usage = "usage: hybrid token keygen FILE\n"
                 "       hybrid token issue --key ISSUER_KEY --iss NAME --sub NAME --aud ID[,ID...]\n"
                 "                          --holder HOLDER_PUB --cap 'PATTERN=ACTION[,ACTION...]'...\n"
                 "                          [--ttl SECONDS] [--dlg N] [--log FILE]\n"
                 "       hybrid token attenuate --key HOLDER_KEY --holder NEW_HOLDER_PUB [--cap ...]...\n"
                 "                          [--aud ID[,ID...]] [--ttl SECONDS] TOKEN|-\n"
                 "       hybrid token inspect TOKEN|-\n"
                 "       hybrid token verify --trust NAME=PUBFILE... --aud ID [--at UNIX_SECONDS]\n"
                 "                          [--check 'FURI=ACTION']... TOKEN|-\n"
                 "       hybrid token revoke --key ISSUER_KEY (--jti ID | --holder PUBFILE | --min-epoch N)\n"
                 "                          [--log FILE]\n"
                 "       hybrid token feed [--push FILE|-]\n"
                 "       hybrid token log add --key ISSUER_KEY --kind enroll|rotate|grant|revoke\n"
                 "                          --subject NAME [--detail TEXT] FILE\n"
                 "       hybrid token log [--verify --trust NAME=PUBFILE... [--head SEQ:HASH]] FILE\n"
                 "keygen makes a P-256 key pair: FILE gets the private key (PKCS#8 PEM, mode\n"
                 "0600; an existing FILE is replaced atomically and its mode never widened),\n"
                 "FILE.pub the public key (SubjectPublicKeyInfo PEM); prints the key id (kid,\n"
                 "the RFC 7638 thumbprint, base64url).  --json prints {\"kid\",\"key\",\"pub\"}.\n"
                 "issue prints a token on one line; attenuate prints it with one more block,\n"
                 "signed by the current holder, naming the new holder and only narrowing the\n"
                 "rights (TOKEN - reads stdin).  inspect prints every block as JSON, unverified.\n"
                 "verify exits 0 when the token is valid for --aud at --at (default now) and\n"
                 "every --check is allowed (FURI may be a pattern within a granted one), printing\n"
                 "{\"sub\",\"exp\",\"holder\",\"cap\"}; 1 when not, with the reason on stderr;\n"
                 "2 for usage errors.  Actions: call reg sub pub read write delete admin.\n"
                 "revoke signs the next entry of the daemon's revocation feed with the issuer\n"
                 "key and delivers it (prints its seq; --json the daemon's answer); sessions\n"
                 "it touches end at once.  --holder revokes every token held by that key,\n"
                 "--min-epoch every token of that issuer with a lower epo.  feed lists the\n"
                 "daemon's feed, a line per entry: SEQ ISSUER what=value (--json: an array).\n"
                 "A daemon refuses an entry after a gap (409); feed --push FILE resyncs it: the\n"
                 "entries of FILE (another daemon's 'token feed --json') after its head are\n"
                 "delivered in order, a line per entry: SEQ applied|ignored.\n"
                 "The daemon connection uses --bus and, for credentials, $HYBRID_TOKEN and\n"
                 "$HYBRID_KEY (--key is the signing key here).\n"
                 "--log FILE on issue and revoke also appends a grant / revoke row to the\n"
                 "identity log FILE, signed by the same issuer key.\n"
                 "log add appends a signed, hash-chained row to the identity log FILE (SQLite,\n"
                 "created when missing) and prints its seq; log lists the rows (--json: one\n"
                 "object a line); with --verify it first checks every row against the trusted\n"
                 "issuers and exits 1 at the first rewritten, missing or forged row.\n",
        .globals = CLI_G_JSON | CLI_G_BUS,
};
