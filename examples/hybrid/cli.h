/* SPDX-License-Identifier: MIT */
/*
 * The `hybrid` tool's frame (doc/hybrid.md): options anywhere on the line, `--`
 * ends them, global options, exit statuses, error lines, flushed output.
 * Each command lives in its own cmd-<name>.c and is listed in commands[] (main.c).
 */
#ifndef HYBRID_CLI_H
#define HYBRID_CLI_H

#include <stdbool.h>
#include <stdio.h>

enum {
        EXIT_OK = 0,
        EXIT_FAILED = 1,      /* valid request that failed or found nothing */
        EXIT_USAGE = 2,       /* usage or parse error */
        EXIT_UNREACHABLE = 3, /* could not reach the daemon or open the database */
};

typedef struct cli_option {
        const char *name;     /* without the leading "--" */
        bool takes_value;
        const char *help;     /* "--name VALUE  what it does" line for --help */
        char short_name;      /* -x form, 0 if none */
} cli_option;

/* Which global options a command uses (its --help lists only those). */
enum {
        CLI_G_BUS = 1 << 0,
        CLI_G_DB = 1 << 1,
        CLI_G_APP = 1 << 2,
        CLI_G_RUNNER = 1 << 3,
        CLI_G_JSON = 1 << 4,
        CLI_G_CRED = 1 << 5, /* --token, --key: the credentials shown to the daemon */
        CLI_G_CLUSTER = 1 << 6, /* --cluster: the MQTT broker of //... without a daemon */
        CLI_G_BUSCMD = CLI_G_BUS | CLI_G_APP | CLI_G_RUNNER | CLI_G_JSON | CLI_G_CRED,
};

typedef struct cli_ctx {
        /* global options (already resolved with their defaults) */
        const char *bus;      /* --bus, $HYBRID_BUS, else NULL: the library default */
        const char *db;       /* --db, $HYBRID_DB, else $XDG_DATA_HOME/hybrid/store.db */
        bool db_default;      /* neither --db nor $HYBRID_DB: db is that default */
        const char *cluster;  /* --cluster URL, else NULL: $HYBRID_CLUSTER */
        const char *app;      /* --app, default org.hybridos.cli */
        const char *runner;   /* --runner, default cli<pid> */
        bool json;            /* --json */
        const char *token_file; /* --token, else $HYBRID_TOKEN, else NULL: no token */
        const char *key_file;   /* --key (bus and store commands), else $HYBRID_KEY */
        const char *ca_file;    /* --ca, else $HYBRID_CA: wss:// server verification */
        const char *pin;        /* --pin, else $HYBRID_PIN (neither --ca nor --pin given) */
        /* positionals after the command name, in order */
        char **args;
        int nargs;
        /* command-specific options, as given */
        const char *opt_names[32];
        const char *opt_values[32]; /* "" for flags */
        int nopts;
        const char *command;  /* e.g. "store" */
} cli_ctx;

typedef struct cli_command {
        const char *name;
        int (*run)(cli_ctx *ctx);
        const cli_option *options;  /* terminated by {NULL}; may be NULL */
        const char *summary;        /* one line for `hybrid help` */
        const char *usage;          /* full --help text of the command, subcommands included */
        unsigned globals;           /* CLI_G_* the command uses */
} cli_command;

/* The value of a command option, NULL if absent ("" for a given flag). */
const char *cli_opt(const cli_ctx *ctx, const char *name);
bool cli_flag(const cli_ctx *ctx, const char *name);

/*
 * "hybrid: <what>: <code name or status> <message>" on stderr; returns status.
 * Under --json the error is one JSON object on stderr instead:
 * {"error":{"command":..,"status":<bus status or null>,"name":..,"message":..,"exit":..}}.
 */
int cli_fail(int status, const char *what, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* Prints a usage error for the current command and returns EXIT_USAGE. */
int cli_usage(const cli_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Turns JSON error reports on (--json); set by main before anything can fail. */
void cli_set_json_errors(bool on);

/* The closest of n candidates to word (a likely typo), or NULL. */
const char *cli_suggest(const char *word, const char *const *candidates, size_t n);

/* Prints one line on stdout and flushes it. */
void cli_println(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parses a whole decimal integer option; returns false (and prints usage) if invalid. */
bool cli_opt_long(const cli_ctx *ctx, const char *name, long dflt, long min, long max, long *ret);

/* Commands (one file each). */
extern const cli_command cmd_furi;
extern const cli_command cmd_store;
extern const cli_command cmd_repl, cmd_run;
extern const cli_command cmd_call, cmd_serve, cmd_fire, cmd_listen, cmd_list, cmd_monitor;
extern const cli_command cmd_log;
extern const cli_command cmd_token;

/* `hybrid token` subcommands (cmd-token*.c), listed in cmd-token.c's table; args[0] is the
 * subcommand's name.  Each returns an exit status. */
int token_keygen(cli_ctx *ctx);
int token_issue(cli_ctx *ctx);
int token_attenuate(cli_ctx *ctx);
int token_inspect(cli_ctx *ctx);
int token_verify(cli_ctx *ctx);
int token_log(cli_ctx *ctx);
int token_revoke(cli_ctx *ctx);
int token_feed(cli_ctx *ctx);

#endif
