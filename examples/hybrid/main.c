/* SPDX-License-Identifier: MIT */
/*
 * hybrid - the command-line tool: `hybrid <command> [<subcommand>] [options] [arguments]`.
 * Conventions in spec/cli.md: options anywhere, `--` ends them, exit 0/1/2/3.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hybrid/hybrid.h>

#include "cli.h"

#define ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static const cli_command *commands[] = {
        &cmd_furi,
        &cmd_store,
        &cmd_repl, &cmd_run,
        &cmd_call, &cmd_serve, &cmd_fire, &cmd_listen, &cmd_list, &cmd_monitor,
};

static const cli_option global_options[] = {
        { "bus", true, "--bus PATH      the bus socket (default $HYBRID_BUS, then the daemon's default)" },
        { "db", true, "--db FILE       the store database (default $HYBRID_DB, then $XDG_DATA_HOME/hybrid/store.db)" },
        { "app", true, "--app NAME      the app name of this client (default org.hybridos.cli)" },
        { "runner", true, "--runner NAME   the runner name (default cli<pid>)" },
        { "json", false, "--json          print objs and documents as JSON, one per line" },
        { "help", false, "--help          help for the command" },
        { "version", false, "--version       print the version" },
        { NULL, false, NULL },
};

static const cli_option *find_option(const cli_option *opts, const char *name)
{
        for (; opts && opts->name; opts++)
                if (strcmp(opts->name, name) == 0)
                        return opts;
        return NULL;
}

static bool option_takes_value(const char *name)
{
        const cli_option *o = find_option(global_options, name);

        for (size_t c = 0; !o && c < ELEMS(commands); c++)
                o = find_option(commands[c]->options, name);
        return o && o->takes_value;
}

static void print_help(const cli_command *cmd)
{
        if (cmd) {
                printf("%s", cmd->usage);
                for (const cli_option *o = cmd->options; o && o->name; o++)
                        printf("  %s\n", o->help);
        } else {
                printf("usage: hybrid <command> [<subcommand>] [options] [arguments]\n\ncommands:\n");
                for (size_t i = 0; i < ELEMS(commands); i++) {
                        const char *u = commands[i]->usage, *nl = strchr(u, '\n');
                        printf("  %.*s\n", nl ? (int)(nl - u) : (int)strlen(u), u);
                }
        }
        printf("\nglobal options:\n");
        for (const cli_option *o = global_options; o->name; o++)
                printf("  %s\n", o->help);
        fflush(stdout);
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

int main(int argc, char **argv)
{
        static char runner[32];
        cli_ctx ctx = { 0 };
        const cli_command *cmd = NULL;
        bool help = false, version = false, dashdash = false;
        const char *env;
        int r;

        ctx.args = calloc(argc + 1, sizeof(char *));
        if (!ctx.args)
                return cli_fail(EXIT_FAILED, "main", "ENOMEM", "out of memory");

        /* First pass: the command is the first positional. */
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--") == 0)
                        break;
                if (strncmp(argv[i], "--", 2) == 0) {
                        /* The command is not known yet: an option before it may belong to
                         * any command (`hybrid --timeout 2000 call ...`), so look in all. */
                        if (!strchr(argv[i], '=') && option_takes_value(argv[i] + 2))
                                i++;
                        continue;
                }
                for (size_t c = 0; c < ELEMS(commands); c++)
                        if (strcmp(commands[c]->name, argv[i]) == 0)
                                cmd = commands[c];
                if (!cmd) {
                        fprintf(stderr, "hybrid: usage: unknown command '%s' (see 'hybrid --help')\n",
                                argv[i]);
                        return EXIT_USAGE;
                }
                ctx.command = cmd->name;
                argv[i] = NULL; /* consumed */
                break;
        }

        for (int i = 1; i < argc; i++) {
                char *a = argv[i], *eq;
                const cli_option *o;
                const char *val = "";

                if (!a)
                        continue;
                if (dashdash || strncmp(a, "--", 2) != 0 || a[2] == '\0') {
                        if (!dashdash && strcmp(a, "--") == 0) {
                                dashdash = true;
                                continue;
                        }
                        ctx.args[ctx.nargs++] = a;
                        continue;
                }
                eq = strchr(a, '=');
                if (eq)
                        *eq = '\0';
                o = find_option(global_options, a + 2);
                if (!o && cmd)
                        o = find_option(cmd->options, a + 2);
                if (!o) {
                        fprintf(stderr, "hybrid: %s: usage unknown option '%s' (see 'hybrid %s --help')\n",
                                cmd ? cmd->name : "usage", a, cmd ? cmd->name : "");
                        return EXIT_USAGE;
                }
                if (o->takes_value) {
                        if (eq)
                                val = eq + 1;
                        else if (i + 1 < argc && argv[i + 1])
                                val = argv[++i];
                        else {
                                fprintf(stderr, "hybrid: %s: usage option '--%s' needs a value\n",
                                        cmd ? cmd->name : "usage", o->name);
                                return EXIT_USAGE;
                        }
                } else if (eq) {
                        fprintf(stderr, "hybrid: %s: usage option '--%s' takes no value\n",
                                cmd ? cmd->name : "usage", o->name);
                        return EXIT_USAGE;
                }
                if (strcmp(o->name, "bus") == 0)
                        ctx.bus = val;
                else if (strcmp(o->name, "db") == 0)
                        ctx.db = val;
                else if (strcmp(o->name, "app") == 0)
                        ctx.app = val;
                else if (strcmp(o->name, "runner") == 0)
                        ctx.runner = val;
                else if (strcmp(o->name, "json") == 0)
                        ctx.json = true;
                else if (strcmp(o->name, "help") == 0)
                        help = true;
                else if (strcmp(o->name, "version") == 0)
                        version = true;
                else {
                        if (ctx.nopts >= (int)(sizeof(ctx.opt_names) / sizeof(ctx.opt_names[0]))) {
                                fprintf(stderr, "hybrid: %s: usage too many options\n", cmd->name);
                                return EXIT_USAGE;
                        }
                        ctx.opt_names[ctx.nopts] = o->name;
                        ctx.opt_values[ctx.nopts++] = val;
                }
        }

        if (version) {
                cli_println("hybrid %s", hyb_version());
                return EXIT_OK;
        }
        if (help || !cmd) {
                print_help(cmd);
                return cmd || help ? EXIT_OK : EXIT_USAGE;
        }

        if (!ctx.bus && (env = getenv("HYBRID_BUS")) && *env)
                ctx.bus = env;
        if (!ctx.db)
                ctx.db = (env = getenv("HYBRID_DB")) && *env ? env : default_db();
        if (!ctx.app)
                ctx.app = "org.hybridos.cli";
        if (!ctx.runner) {
                snprintf(runner, sizeof(runner), "cli%ld", (long)getpid());
                ctx.runner = runner;
        }
        r = cmd->run(&ctx);
        fflush(stdout);
        free(ctx.args);
        return r;
}
