/* SPDX-License-Identifier: MIT */
/*
 * hybrid - the command-line tool: `hybrid <command> [<subcommand>] [options] [arguments]`.
 * Conventions (doc/hybrid.md): options anywhere, `--` ends them, short forms for the
 * global options (-b -d -a -j -h -V), exit 0/1/2/3, errors as JSON under --json.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <hybrid/hybrid.h>

#include "cli.h"

#define ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static const cli_command *commands[] = {
        &cmd_furi,
        &cmd_store,
        &cmd_repl, &cmd_run,
        &cmd_call, &cmd_serve, &cmd_fire, &cmd_listen, &cmd_list, &cmd_monitor,
        &cmd_log,
        &cmd_token,
};

static const cli_option global_options[] = {
        { "bus", true, "--bus PATH|URL  the bus socket, or ws[s]://host:port/bus/ws (default $HYBRID_BUS, then the daemon's default)", 'b' },
        { "db", true, "--db FILE       the store database (default $HYBRID_DB, then $XDG_DATA_HOME/hybrid/store.db)", 'd' },
        { "cluster", true, "--cluster URL   without a daemon: the MQTT broker of //..., mqtt://HOST:PORT[?OPTIONS] (default $HYBRID_CLUSTER)", 0 },
        { "app", true, "--app NAME      the app name of this client (default org.hybridos.cli)", 'a' },
        { "runner", true, "--runner NAME   the runner name (default cli<pid>)", 0 },
        { "json", false, "--json          JSON output, one document per line; errors as JSON on stderr", 'j' },
        { "token", true, "--token FILE    connect with the security token in FILE (default $HYBRID_TOKEN)", 0 },
        { "key", true, "--key FILE      the token holder's private key (default $HYBRID_KEY)", 0 },
        { "ca", true, "--ca FILE       wss://: trust the CA certificates of this PEM file (default $HYBRID_CA)", 0 },
        { "pin", true, "--pin SHA256    wss://: the server's pinned public key, sha256//BASE64 or hex (default $HYBRID_PIN)", 0 },
        { "help", false, "--help          this help", 'h' },
        { "version", false, "--version       print the version", 'V' },
        { NULL, false, NULL, 0 },
};
/* The CLI_G_* bit of each global option above (help and version: every command). */
static const unsigned global_bits[] = { CLI_G_BUS,  CLI_G_DB,   CLI_G_CLUSTER, CLI_G_APP, CLI_G_RUNNER, CLI_G_JSON,
                                        CLI_G_CRED, CLI_G_CRED, CLI_G_CRED, CLI_G_CRED,
                                        ~0u,        ~0u };

static const cli_option *find_option(const cli_option *opts, const char *name)
{
        for (; opts && opts->name; opts++)
                if (strcmp(opts->name, name) == 0)
                        return opts;
        return NULL;
}

static const cli_option *find_short(const cli_option *opts, char c)
{
        for (; opts && opts->name; opts++)
                if (opts->short_name && opts->short_name == c)
                        return opts;
        return NULL;
}

static const cli_command *find_command(const char *name)
{
        for (size_t c = 0; c < ELEMS(commands); c++)
                if (strcmp(commands[c]->name, name) == 0)
                        return commands[c];
        return NULL;
}

/* "--name[=value]" */
static bool is_long(const char *a)
{
        return a[0] == '-' && a[1] == '-' && a[2];
}

/* "-x", "-xy", "-bPATH"; "-", "-5" and "-.5" are arguments (negative numbers). */
static bool is_short(const char *a)
{
        return a[0] == '-' && isalpha((unsigned char)a[1]);
}

static bool option_takes_value(const char *name)
{
        const cli_option *o = find_option(global_options, name);

        for (size_t c = 0; !o && c < ELEMS(commands); c++)
                o = find_option(commands[c]->options, name);
        return o && o->takes_value;
}

/* Does the short cluster a (e.g. "-jb") end with an option that takes the next argument? */
static bool short_takes_next(const char *a)
{
        for (const char *p = a + 1; *p; p++) {
                const cli_option *o = find_short(global_options, *p);

                if (!o)
                        return false;
                if (o->takes_value)
                        return p[1] == '\0';
        }
        return false;
}

static void print_option(FILE *f, const cli_option *o)
{
        if (o->short_name)
                fprintf(f, "  -%c, %s\n", o->short_name, o->help);
        else
                fprintf(f, "      %s\n", o->help);
}

static void print_help(FILE *f, const cli_command *cmd)
{
        if (cmd) {
                fprintf(f, "%s", cmd->usage);
                fprintf(f, "\noptions:\n");
                for (const cli_option *o = cmd->options; o && o->name; o++)
                        print_option(f, o);
                for (size_t i = 0; global_options[i].name; i++)
                        if (global_bits[i] & (cmd->globals | ~(unsigned)(CLI_G_BUS | CLI_G_DB |
                                                                       CLI_G_APP | CLI_G_RUNNER |
                                                                       CLI_G_JSON | CLI_G_CRED)))
                                print_option(f, &global_options[i]);
                fprintf(f, "\nSee doc/hybrid.md for exit statuses and output formats.\n");
        } else {
                fprintf(f, "usage: hybrid <command> [<subcommand>] [options] [arguments]\n\ncommands:\n");
                for (size_t i = 0; i < ELEMS(commands); i++)
                        fprintf(f, "  %-9s %s\n", commands[i]->name, commands[i]->summary);
                fprintf(f, "  %-9s %s\n", "help", "help for a command: hybrid help <command>");
                fprintf(f, "\nglobal options (each command's help lists those it uses):\n");
                for (const cli_option *o = global_options; o->name; o++)
                        print_option(f, o);
                fprintf(f, "\nOptions may stand anywhere on the line; '--' ends them.\n"
                           "Exit status: 0 success, 1 failed or found nothing, 2 usage or parse error,\n"
                           "3 daemon or database unreachable.  See doc/hybrid.md.\n");
        }
        fflush(f);
}

static int unknown_command(const cli_ctx *ctx, const char *name)
{
        const char *names[ELEMS(commands) + 1], *s;

        for (size_t i = 0; i < ELEMS(commands); i++)
                names[i] = commands[i]->name;
        names[ELEMS(commands)] = "help";
        s = cli_suggest(name, names, ELEMS(names));
        if (s)
                return cli_usage(ctx, "unknown command '%s'; did you mean '%s'?", name, s);
        return cli_usage(ctx, "unknown command '%s'", name);
}

static int unknown_option(const cli_ctx *ctx, const cli_command *cmd, const char *a)
{
        const char *names[64], *s;
        size_t n = 0;

        if (a[1] != '-')
                return cli_usage(ctx, "unknown option '%s'", a);
        /* only what this command takes: suggesting --bus to furi would be refused next */
        for (size_t i = 0; global_options[i].name; i++)
                if (!cmd || (global_bits[i] & cmd->globals))
                        names[n++] = global_options[i].name;
        for (const cli_option *o = cmd ? cmd->options : NULL; o && o->name && n < ELEMS(names); o++)
                names[n++] = o->name;
        s = cli_suggest(a + 2, names, n);
        if (s)
                return cli_usage(ctx, "unknown option '%s'; did you mean '--%s'?", a, s);
        return cli_usage(ctx, "unknown option '%s'", a);
}

static const char *default_db(void)
{
        static char buf[4096];
        const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");

        if (xdg && *xdg)
                snprintf(buf, sizeof(buf), "%s/hybrid/store.db", xdg);
        else
                snprintf(buf, sizeof(buf), "%s/.local/share/hybrid/store.db", home ? home : ".");
        return buf;
}

/* Applies one recognised option; false (usage printed in *st) on a misuse. */
static bool apply(cli_ctx *ctx, const cli_command *cmd, const cli_option *o, const char *val,
                  bool *help, bool *version, int *st)
{
        if (cmd && o >= global_options && o < global_options + ELEMS(global_bits) &&
            !(global_bits[o - global_options] & cmd->globals)) {
                /* e.g. --bus for furi: accepting it silently would hide a mistake */
                *st = cli_usage(ctx, "option '--%s' is not used by '%s'", o->name, cmd->name);
                return false;
        }
        bool global = o >= global_options && o < global_options + ELEMS(global_bits);

        if (!global)
                goto command_option; /* a command's own option, even under a global's name */
        if (strcmp(o->name, "bus") == 0)
                ctx->bus = val;
        else if (strcmp(o->name, "db") == 0)
                ctx->db = val;
        else if (strcmp(o->name, "cluster") == 0)
                ctx->cluster = val;
        else if (strcmp(o->name, "app") == 0)
                ctx->app = val;
        else if (strcmp(o->name, "runner") == 0)
                ctx->runner = val;
        else if (strcmp(o->name, "json") == 0)
                ctx->json = true;
        else if (strcmp(o->name, "token") == 0)
                ctx->token_file = val;
        else if (strcmp(o->name, "key") == 0)
                ctx->key_file = val;
        else if (strcmp(o->name, "ca") == 0)
                ctx->ca_file = val;
        else if (strcmp(o->name, "pin") == 0)
                ctx->pin = val;
        else if (strcmp(o->name, "help") == 0)
                *help = true;
        else if (strcmp(o->name, "version") == 0)
                *version = true;
        else {
        command_option:
                if (ctx->nopts >= (int)ELEMS(ctx->opt_names)) {
                        *st = cli_usage(ctx, "too many options");
                        return false;
                }
                ctx->opt_names[ctx->nopts] = o->name;
                ctx->opt_values[ctx->nopts++] = val;
        }
        return true;
}

/* Parses argv into ctx (the command already found and removed); 0 or the exit status. */
static int parse(cli_ctx *ctx, const cli_command *cmd, int argc, char **argv, bool *help,
                 bool *version)
{
        bool dashdash = false;
        int st = 0;

        for (int i = 1; i < argc; i++) {
                char *a = argv[i], *eq;
                const cli_option *o;
                const char *val = "";

                if (!a)
                        continue;
                if (dashdash || (!is_long(a) && !is_short(a))) {
                        if (!dashdash && strcmp(a, "--") == 0) {
                                dashdash = true;
                                continue;
                        }
                        ctx->args[ctx->nargs++] = a;
                        continue;
                }
                if (is_short(a)) {
                        for (const char *p = a + 1; *p; p++) {
                                o = find_short(global_options, *p);
                                if (!o) {
                                        char bad[3] = { '-', *p, '\0' };

                                        return unknown_option(ctx, cmd, bad);
                                }
                                if (o->takes_value) {
                                        if (p[1])
                                                val = p + 1;
                                        else if (i + 1 < argc && argv[i + 1])
                                                val = argv[++i];
                                        else
                                                return cli_usage(ctx, "option '-%c' needs a value", *p);
                                        if (!apply(ctx, cmd, o, val, help, version, &st))
                                                return st;
                                        break;
                                }
                                if (!apply(ctx, cmd, o, "", help, version, &st))
                                        return st;
                        }
                        continue;
                }
                eq = strchr(a, '=');
                if (eq)
                        *eq = '\0';
                /* A command's own option first: under `hybrid token`, --key is the signing
                 * key, not the global holder key of the bus commands. */
                o = cmd ? find_option(cmd->options, a + 2) : NULL;
                if (!o)
                        o = find_option(global_options, a + 2);
                if (!o)
                        return unknown_option(ctx, cmd, a);
                if (o->takes_value) {
                        if (eq)
                                val = eq + 1;
                        else if (i + 1 < argc && argv[i + 1])
                                val = argv[++i];
                        else
                                return cli_usage(ctx, "option '--%s' needs a value", o->name);
                } else if (eq) {
                        return cli_usage(ctx, "option '--%s' takes no value", o->name);
                }
                if (!apply(ctx, cmd, o, val, help, version, &st))
                        return st;
        }
        return 0;
}

/* --json is honoured for errors found while parsing too. */
static bool wants_json(int argc, char **argv)
{
        for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
                if (strcmp(argv[i], "--json") == 0 || strcmp(argv[i], "-j") == 0)
                        return true;
        return false;
}

int main(int argc, char **argv)
{
        static char runner[32];
        cli_ctx ctx = { 0 };
        const cli_command *cmd = NULL;
        bool help = false, version = false, help_cmd = false;
        const char *env;
        int r;

        cli_set_json_errors(wants_json(argc, argv));
        ctx.args = calloc(argc + 1, sizeof(char *));
        if (!ctx.args)
                return cli_fail(EXIT_FAILED, "main", "ENOMEM", "out of memory");

        /* First pass: the command is the first positional. */
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--") == 0)
                        break;
                if (is_long(argv[i])) {
                        /* The command is not known yet: an option before it may belong to
                         * any command (`hybrid --timeout 2000 call ...`), so look in all. */
                        if (!strchr(argv[i], '=') && option_takes_value(argv[i] + 2))
                                i++;
                        continue;
                }
                if (is_short(argv[i])) {
                        if (short_takes_next(argv[i]))
                                i++;
                        continue;
                }
                if (strcmp(argv[i], "help") == 0) {
                        help_cmd = true;
                        argv[i] = NULL;
                        break;
                }
                cmd = find_command(argv[i]);
                if (!cmd) {
                        r = unknown_command(&ctx, argv[i]);
                        goto out;
                }
                ctx.command = cmd->name;
                argv[i] = NULL; /* consumed */
                break;
        }

        r = parse(&ctx, cmd, argc, argv, &help, &version);
        if (r)
                goto out;
        cli_set_json_errors(ctx.json);

        if (help_cmd) {
                /* hybrid help [<command>] */
                if (ctx.nargs > 1) {
                        r = cli_usage(&ctx, "help takes at most one command");
                        goto out;
                }
                if (ctx.nargs == 1 && !(cmd = find_command(ctx.args[0]))) {
                        r = strcmp(ctx.args[0], "help") == 0 ? (print_help(stdout, NULL), EXIT_OK)
                                                             : unknown_command(&ctx, ctx.args[0]);
                        goto out;
                }
                print_help(stdout, cmd);
                r = EXIT_OK;
                goto out;
        }
        if (version) {
                cli_println("hybrid %s", hyb_version());
                r = EXIT_OK;
                goto out;
        }
        if (!cmd && !help && ctx.json) {
                r = cli_usage(&ctx, "a command is needed");
                goto out;
        }
        if (help || !cmd) {
                /* `hybrid` alone: the help, on stderr as it is a usage error */
                print_help(cmd || help ? stdout : stderr, cmd);
                r = cmd || help ? EXIT_OK : EXIT_USAGE;
                goto out;
        }

        if (!ctx.bus && (env = getenv("HYBRID_BUS")) && *env)
                ctx.bus = env;
        if (!ctx.db && (env = getenv("HYBRID_DB")) && *env)
                ctx.db = env;
        if (!ctx.token_file && (env = getenv("HYBRID_TOKEN")) && *env)
                ctx.token_file = env;
        if (!ctx.key_file && (env = getenv("HYBRID_KEY")) && *env)
                ctx.key_file = env;
        /* --ca or --pin replaces both variables: the trust is what the line says */
        if (!ctx.ca_file && !ctx.pin) {
                if ((env = getenv("HYBRID_CA")) && *env)
                        ctx.ca_file = env;
                if ((env = getenv("HYBRID_PIN")) && *env)
                        ctx.pin = env;
        }
        if (!ctx.db) {
                ctx.db = default_db();
                ctx.db_default = true;
        }
        if (!ctx.app)
                ctx.app = "org.hybridos.cli";
        if (!ctx.runner) {
                /* cli<pid> is a local process's name: a remote broker refuses it to us
                 * (doc/protocol.md "Names"), so over ws:// and wss:// the default is
                 * w<pid>_<8 random hex digits>, unlikely to meet another host's */
                uint32_t rnd = 0;

                if (ctx.bus && (strncasecmp(ctx.bus, "ws://", 5) == 0 ||
                                strncasecmp(ctx.bus, "wss://", 6) == 0)) {
                        if (getentropy(&rnd, sizeof rnd) < 0)
                                rnd = (uint32_t)time(NULL) ^ (uint32_t)getpid();
                        snprintf(runner, sizeof(runner), "w%ld_%08" PRIx32, (long)getpid(), rnd);
                } else {
                        snprintf(runner, sizeof(runner), "cli%ld", (long)getpid());
                }
                ctx.runner = runner;
        }
        r = cmd->run(&ctx);
        fflush(stdout);
out:
        free(ctx.args);
        return r;
}
