/* SPDX-License-Identifier: MIT */
/*
 * hybrid token revoke --key ISSUER_KEY (--jti ID | --holder PUBFILE | --min-epoch N)
 * hybrid token feed [--push FILE]
 *
 * The daemon's revocation feed (doc/token.md "Revocation feed").  revoke asks
 * the daemon for the feed's head (builtin listRevocations), signs entry
 * head+1 with the issuer key and delivers it (builtin deliverRevocation); if
 * another entry took that seq in between, it signs the next one (a few
 * times).  feed lists the daemon's entries, oldest first; feed --push resyncs a
 * daemon whose feed has a gap: it delivers, in order, the entries of FILE (what
 * `token feed --json` printed for another daemon) that lie after the daemon's head.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli-bus.h"
#include "cmd-token-util.h"

#define REVOKE_TRIES 5

/* Calls a builtin with params; *ret gets its JSON answer.  An exit status (error printed). */
static int call_builtin(hyb_bus *bus, const char *what, const char *method, json_t *params,
                        json_t **ret)
{
        hyb_bus_reply *reply = NULL;
        char *text = json_dumps(params, JSON_COMPACT);
        const void *body;
        hyb_error e;
        size_t len;
        int r;

        *ret = NULL;
        if (!text)
                return cli_fail(EXIT_FAILED, what, "ENOMEM", "out of memory");
        hyb_error_clear(&e);
        r = hyb_bus_call_builtin(bus, method, text, &reply, &e);
        free(text);
        if (r < 0)
                return clibus_fail(clibus_exit_status(r), what, r, &e);
        body = hyb_bus_reply_get_body(reply, &len);
        *ret = json_loadb(body, len, 0, NULL);
        hyb_bus_reply_unref(reply);
        if (!*ret)
                return cli_fail(EXIT_FAILED, what, "HYB_E_PROTOCOL",
                                "%s answered something other than JSON", method);
        return EXIT_OK;
}

static int feed_head(hyb_bus *bus, const char *what, uint64_t *ret)
{
        json_t *params = json_pack("{s:i}", "limit", 1), *res = NULL;
        int status = call_builtin(bus, what, "listRevocations", params, &res);

        json_decref(params);
        if (status == EXIT_OK) {
                json_t *h = json_object_get(res, "head");

                if (!json_is_integer(h) || json_integer_value(h) < 0)
                        status = cli_fail(EXIT_FAILED, what, "HYB_E_PROTOCOL",
                                          "listRevocations gave no head");
                else
                        *ret = (uint64_t)json_integer_value(h);
        }
        json_decref(res);
        return status;
}

/* --log FILE: a `revoke` row naming what was revoked and the feed entry. */
static int log_revoke(cli_ctx *ctx, const hyb_key *issuer, const hyb_token_feed_rev *rev)
{
        char subject[64], detail[64];
        const char *what = rev->jti ? rev->jti : rev->holder_kid;

        if (!what) {
                snprintf(subject, sizeof subject, "min_epo=%" PRIu64, rev->min_epo);
                what = subject;
        }
        snprintf(detail, sizeof detail, "feed seq %" PRIu64 "%s", rev->seq,
                 rev->holder_kid ? " (holder key)" : "");
        return token_log_row(ctx, "token revoke", issuer, "revoke", what, detail);
}

int token_revoke(cli_ctx *ctx)
{
        const char *jti = cli_opt(ctx, "jti"), *holder = cli_opt(ctx, "holder");
        const char *min = cli_opt(ctx, "min-epoch");
        hyb_key *issuer = NULL, *hkey = NULL;
        hyb_token_feed_rev rev;
        hyb_bus *bus = NULL;
        long min_epo = 0;
        int status;

        if (ctx->nargs != 1)
                return cli_usage(ctx, "'token revoke' takes no arguments");
        if ((jti != NULL) + (holder != NULL) + (min != NULL) != 1)
                return cli_usage(
                        ctx,
                        "'token revoke' needs one of --jti ID, --holder PUBFILE, --min-epoch N");
        if (jti && !*jti)
                return cli_usage(ctx, "--jti needs a token id");
        if (min && !cli_opt_long(ctx, "min-epoch", 0, 1, (1L << 53) - 1, &min_epo))
                return EXIT_USAGE;
        status = token_load_key(ctx, "token revoke", "key", true, &issuer);
        if (status == EXIT_OK && holder)
                status = token_load_key(ctx, "token revoke", "holder", false, &hkey);
        if (status == EXIT_OK)
                status = clibus_connect(ctx, &bus);
        hyb_token_feed_rev_init(&rev);
        rev.jti = jti;
        rev.holder_kid = hkey ? hyb_key_get_kid(hkey) : NULL;
        rev.min_epo = (uint64_t)min_epo;
        for (int i = 0; status == EXIT_OK && i < REVOKE_TRIES; i++) {
                json_t *params, *res = NULL;
                char *entry = NULL;
                hyb_error e = {0};
                int r;

                status = feed_head(bus, "token revoke", &rev.seq);
                if (status != EXIT_OK)
                        break;
                rev.seq++;
                r = hyb_token_feed_entry_make(issuer, &rev, &entry, &e);
                if (r < 0) {
                        status = cli_fail(EXIT_FAILED, "token revoke", hyb_err_name(r), "%s",
                                          e.message);
                        break;
                }
                params = json_pack("{s:s}", "entry", entry);
                hyb_free(entry);
                status = call_builtin(bus, "token revoke", "deliverRevocation", params, &res);
                json_decref(params);
                if (status != EXIT_OK)
                        break;
                if (strcmp(json_string_value(json_object_get(res, "result")) ?: "", "applied") !=
                    0) {
                        /* another entry took this seq first: sign the next one */
                        json_decref(res);
                        status = i + 1 < REVOKE_TRIES
                                         ? EXIT_OK
                                         : cli_fail(EXIT_FAILED, "token revoke", "HYB_E_CONFLICT",
                                                    "the feed kept moving: try again");
                        continue;
                }
                status = log_revoke(ctx, issuer, &rev);
                if (status != EXIT_OK) {
                        json_decref(res);
                        break;
                }
                if (ctx->json) {
                        char *s = json_dumps(res, JSON_COMPACT);

                        cli_println("%s", s ? s : "{}");
                        free(s);
                } else {
                        cli_println("%" PRIu64, rev.seq);
                }
                json_decref(res);
                break;
        }
        hyb_bus_unref(bus);
        hyb_key_unref(issuer);
        hyb_key_unref(hkey);
        return status;
}

/* One entry as a line: SEQ ISSUER what=value ... */
static void print_entry(json_t *item)
{
        static const char *const what[] = {"jti", "sig_hash", "holder", "issuer", "min_epo"};
        json_t *c = json_object_get(item, "content");
        char line[1024];
        size_t n;

        n = (size_t)snprintf(line, sizeof line, "%" JSON_INTEGER_FORMAT " %s",
                             json_integer_value(json_object_get(item, "seq")),
                             json_string_value(json_object_get(c, "iss")) ?: "?");
        for (size_t i = 0; i < sizeof what / sizeof *what && n < sizeof line; i++) {
                json_t *v = json_object_get(c, what[i]);

                if (json_is_string(v))
                        n += (size_t)snprintf(line + n, sizeof line - n, " %s=%s", what[i],
                                              json_string_value(v));
                else if (json_is_integer(v))
                        n += (size_t)snprintf(line + n, sizeof line - n,
                                              " %s=%" JSON_INTEGER_FORMAT, what[i],
                                              json_integer_value(v));
        }
        cli_println("%s", line);
}

/*
 * --push FILE: the entries of FILE (a JSON array as `token feed --json` prints it: objects
 * with "seq" and "entry", or entry texts) that lie after the daemon's head, delivered in
 * the order of their seq.  Prints "SEQ applied|ignored" per entry delivered.
 */
static int feed_push(cli_ctx *ctx, const char *path)
{
        const char *what = "token feed";
        json_t *all, *item, *res = NULL;
        json_error_t je;
        hyb_bus *bus = NULL;
        uint64_t head = 0;
        size_t i;
        int status;

        all = strcmp(path, "-") == 0 ? json_loadf(stdin, JSON_REJECT_DUPLICATES, &je)
                                     : json_load_file(path, JSON_REJECT_DUPLICATES, &je);
        if (!all)
                return cli_fail(EXIT_FAILED, what, "HYB_E_BAD_REQUEST", "--push %s: %s", path,
                                je.text);
        if (!json_is_array(all)) {
                json_decref(all);
                return cli_fail(EXIT_FAILED, what, "HYB_E_BAD_REQUEST",
                                "--push %s: not a JSON array of feed entries", path);
        }
        json_array_foreach(all, i, item)
        {
                json_t *e = json_is_object(item) ? json_object_get(item, "entry") : item;
                json_t *q = json_is_object(item) ? json_object_get(item, "seq") : NULL;

                if (!json_is_string(e) || (q && json_integer_value(q) < 1)) {
                        json_decref(all);
                        return cli_fail(EXIT_FAILED, what, "HYB_E_BAD_REQUEST",
                                        "--push %s: item %zu is not a feed entry", path, i);
                }
        }
        status = clibus_connect(ctx, &bus);
        if (status == EXIT_OK)
                status = feed_head(bus, what, &head);
        /* in seq order (an entry without a seq is tried where it stands); the daemon checks
         * each entry's signature and its real seq, so this order is only the efficient one */
        for (uint64_t want = head + 1; status == EXIT_OK; want++) {
                json_t *pick = NULL, *params;
                const char *result;

                json_array_foreach(all, i, item)
                {
                        json_t *q = json_is_object(item) ? json_object_get(item, "seq") : NULL;

                        if (!q || (uint64_t)json_integer_value(q) == want) {
                                pick = item;
                                break;
                        }
                }
                if (!pick)
                        break;
                params = json_pack("{s:O}", "entry",
                                   json_is_object(pick) ? json_object_get(pick, "entry") : pick);
                json_array_remove(all, i);
                status = call_builtin(bus, what, "deliverRevocation", params, &res);
                json_decref(params);
                if (status != EXIT_OK)
                        break;
                result = json_string_value(json_object_get(res, "result")) ?: "?";
                cli_println("%" JSON_INTEGER_FORMAT " %s",
                            json_integer_value(json_object_get(res, "seq")), result);
                if (strcmp(result, "applied") != 0)
                        want--; /* an old entry (or one without a seq): the head did not move */
                json_decref(res);
                res = NULL;
        }
        json_decref(all);
        hyb_bus_unref(bus);
        return status;
}

int token_feed(cli_ctx *ctx)
{
        json_t *all;
        hyb_bus *bus = NULL;
        uint64_t after = 0;
        int status;

        if (ctx->nargs != 1)
                return cli_usage(ctx, "'token feed' takes no arguments");
        if (cli_opt(ctx, "push"))
                return feed_push(ctx, cli_opt(ctx, "push"));
        all = json_array();
        if (!all)
                return cli_fail(EXIT_FAILED, "token feed", "ENOMEM", "out of memory");
        status = clibus_connect(ctx, &bus);
        while (status == EXIT_OK) {
                json_t *params = json_pack("{s:I}", "after", (json_int_t)after), *res = NULL;
                json_t *items, *item;
                size_t i;

                status = call_builtin(bus, "token feed", "listRevocations", params, &res);
                json_decref(params);
                if (status != EXIT_OK)
                        break;
                items = json_object_get(res, "entries");
                json_array_foreach(items, i, item)
                {
                        after = (uint64_t)json_integer_value(json_object_get(item, "seq"));
                        if (ctx->json)
                                json_array_append(all, item);
                        else
                                print_entry(item);
                }
                if (json_array_size(items) == 0 ||
                    after >= (uint64_t)json_integer_value(json_object_get(res, "head"))) {
                        json_decref(res);
                        break;
                }
                json_decref(res);
        }
        if (status == EXIT_OK && ctx->json) {
                char *s = json_dumps(all, JSON_COMPACT);

                cli_println("%s", s ? s : "[]");
                free(s);
        }
        json_decref(all);
        hyb_bus_unref(bus);
        return status;
}
