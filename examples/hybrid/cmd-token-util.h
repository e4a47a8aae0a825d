/* SPDX-License-Identifier: MIT */
/*
 * Helpers the token subcommands share (cmd-token-util.c): repeated options,
 * the TOKEN argument, key files and `PATTERN=ACTION[,ACTION...]` values.
 */
#ifndef HYBRID_CMD_TOKEN_UTIL_H
#define HYBRID_CMD_TOKEN_UTIL_H

#include <hybrid/token.h>

#include "cli.h"

/* Every value of a repeatable option, in order, into vals (at most max); the count. */
int token_opt_all(const cli_ctx *ctx, const char *name, const char **vals, int max);

/*
 * The TOKEN positional (args[1]): the text itself, or `-` for one line of
 * stdin.  *ret is a new string (free()); surrounding blanks are removed.
 * An exit status: EXIT_OK, EXIT_USAGE (missing or extra arguments),
 * EXIT_FAILED (stdin could not be read).
 */
int token_arg(cli_ctx *ctx, const char *what, char **ret);

/* Loads a key file named by option `opt`; prints the error (exit 1) or usage (exit 2). */
int token_load_key(cli_ctx *ctx, const char *what, const char *opt, bool need_private,
                   hyb_key **ret);

/*
 * Splits `TEXT=ACTION[,ACTION...]` at its last `=`: *ret_text (a new
 * string, free()) and the action set.  false (after a usage message) when
 * malformed.
 */
bool token_split_rights(cli_ctx *ctx, const char *opt, const char *value, char **ret_text,
                        unsigned *ret_actions);

/* The --cap values as hyb_token_cap (resources owned by *ret_strings, free each and it). */
int token_caps_from_opts(cli_ctx *ctx, hyb_token_cap *caps, char **strings, int max, int *ret_n);

/* Splits a comma-separated --aud into up to max pointers into buf (modified in place). */
int token_split_aud(char *buf, const char **aud, int max);

/* Fills trust from the --trust NAME=PUBFILE options (at least one); an exit status. */
int token_load_trust(cli_ctx *ctx, const char *what, hyb_token_trust *trust);

/*
 * With --log FILE, appends a row (kind, subject, detail) signed by issuer to the identity
 * log FILE; without it does nothing.  An exit status (the error printed under `what`).
 */
int token_log_row(cli_ctx *ctx, const char *what, const hyb_key *issuer, const char *kind,
                  const char *subject, const char *detail);

#endif
