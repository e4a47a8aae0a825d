/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd-token-util.h"

int token_opt_all(const cli_ctx *ctx, const char *name, const char **vals, int max)
{
        int n = 0;

        for (int i = 0; i < ctx->nopts && n < max; i++)
                if (strcmp(ctx->opt_names[i], name) == 0)
                        vals[n++] = ctx->opt_values[i];
        return n;
}

static char *trim(char *s)
{
        size_t n;

        while (isspace((unsigned char)*s))
                s++;
        n = strlen(s);
        while (n && isspace((unsigned char)s[n - 1]))
                s[--n] = 0;
        return s;
}

int token_arg(cli_ctx *ctx, const char *what, char **ret)
{
        char buf[16384], *t;
        size_t n;

        if (ctx->nargs != 2)
                return cli_usage(ctx, "'token %s' takes one TOKEN (or - for stdin)", what);
        if (strcmp(ctx->args[1], "-") != 0) {
                t = strdup(trim(ctx->args[1]));
        } else {
                n = fread(buf, 1, sizeof buf - 1, stdin);
                if (ferror(stdin))
                        return cli_fail(EXIT_FAILED, what, "EIO",
                                        "cannot read the token from stdin");
                buf[n] = 0;
                t = strdup(trim(buf));
        }
        if (!t)
                return cli_fail(EXIT_FAILED, what, "ENOMEM", "out of memory");
        *ret = t;
        return EXIT_OK;
}

int token_load_key(cli_ctx *ctx, const char *what, const char *opt, bool need_private,
                   hyb_key **ret)
{
        const char *path = cli_opt(ctx, opt);
        hyb_error e = {0};
        int r;

        if (!path || !*path)
                return cli_usage(ctx, "'token %s' needs --%s FILE", what, opt);
        r = hyb_key_load_file(path, ret, &e);
        if (r < 0)
                return cli_fail(EXIT_FAILED, what, hyb_err_name(r), "--%s %s: %s", opt, path,
                                e.message);
        if (need_private && !hyb_key_has_private(*ret)) {
                *ret = hyb_key_unref(*ret);
                return cli_fail(EXIT_FAILED, what, "ENOKEY",
                                "--%s %s is a public key: the private "
                                "key is needed to sign",
                                opt, path);
        }
        return EXIT_OK;
}

bool token_split_rights(cli_ctx *ctx, const char *opt, const char *value, char **ret_text,
                        unsigned *ret_actions)
{
        const char *eq = strrchr(value, '=');

        if (!eq || eq == value || hyb_token_actions_parse(eq + 1, ret_actions) < 0) {
                cli_usage(ctx,
                          "--%s '%s': expected 'FURI=ACTION[,ACTION...]' with actions from "
                          "call, reg, sub, pub, read, write, delete, admin",
                          opt, value);
                return false;
        }
        *ret_text = strndup(value, (size_t)(eq - value));
        return *ret_text != NULL;
}

int token_caps_from_opts(cli_ctx *ctx, hyb_token_cap *caps, char **strings, int max, int *ret_n)
{
        const char *vals[32];
        int n = token_opt_all(ctx, "cap", vals, 32);

        if (n > max)
                return cli_usage(ctx, "at most %d --cap", max);
        for (int i = 0; i < n; i++) {
                if (!token_split_rights(ctx, "cap", vals[i], &strings[i], &caps[i].actions)) {
                        for (int k = 0; k < i; k++)
                                free(strings[k]);
                        return EXIT_USAGE;
                }
                caps[i].resource = strings[i];
        }
        *ret_n = n;
        return EXIT_OK;
}

int token_split_aud(char *buf, const char **aud, int max)
{
        int n = 0;

        for (char *save = NULL, *a = strtok_r(buf, ",", &save); a && n < max;
             a = strtok_r(NULL, ",", &save))
                aud[n++] = a;
        return n;
}

int token_load_trust(cli_ctx *ctx, const char *what, hyb_token_trust *trust)
{
        const char *vals[32];
        int n = token_opt_all(ctx, "trust", vals, 32);
        char label[64];

        snprintf(label, sizeof label, "token %s", what);

        if (n == 0)
                return cli_usage(ctx, "'token %s' needs at least one --trust NAME=PUBFILE", what);
        for (int i = 0; i < n; i++) {
                const char *eq = strchr(vals[i], '=');
                hyb_key *key = NULL;
                hyb_error e = {0};
                char *name;
                int r;

                if (!eq || eq == vals[i] || !eq[1])
                        return cli_usage(ctx, "--trust '%s': expected NAME=PUBFILE", vals[i]);
                r = hyb_key_load_file(eq + 1, &key, &e);
                if (r < 0)
                        return cli_fail(EXIT_FAILED, label, hyb_err_name(r),
                                        "--trust %s: %s", vals[i], e.message);
                name = strndup(vals[i], (size_t)(eq - vals[i]));
                r = name ? hyb_token_trust_add(trust, name, key) : -ENOMEM;
                free(name);
                hyb_key_unref(key);
                if (r == -EEXIST || r == -EINVAL)
                        return cli_usage(ctx, "--trust '%s': issuer given twice or invalid",
                                         vals[i]);
                if (r < 0)
                        return cli_fail(EXIT_FAILED, label, hyb_err_name(r), "%s",
                                        hyb_strerror(r));
        }
        return EXIT_OK;
}
