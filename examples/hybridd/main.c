/* SPDX-License-Identifier: MIT */
/*
 * hybridd - the bus daemon: a thin main around the embeddable broker
 * (include/hybrid/broker.h).  See doc/hybridd.md.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>
#include <fcntl.h>

#include <event2/event.h>

#include <hybrid/hybrid.h>

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_LISTEN = 3 };

static const char usage[] =
        "usage: hybridd [--socket PATH] [--config FILE] [--foreground]\n"
        "  -s, --socket PATH   listen on this Unix socket (before listen.unix of the config,\n"
        "                      then $HYBRID_BUS, then $XDG_RUNTIME_DIR/hybrid/bus.sock\n"
        "                      or /run/hybrid/bus.sock)\n"
        "  -c, --config FILE   YAML configuration (host, listen, limits, policy, log)\n"
        "  -f, --foreground    stay attached; without it hybridd detaches once the socket\n"
        "                      is ready\n"
        "  -h, --help          this text\n"
        "  -V, --version       the version\n"
        "exit status: 0 ok (clean shutdown on SIGTERM/SIGINT, or detached and listening),\n"
        "             1 runtime failure, 2 usage or configuration error,\n"
        "             3 cannot listen on the socket\n";

static bool use_syslog;

static void log_line(int level, const char *msg, void *ud)
{
        static const char *const names[8] = { "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug" };
        if (use_syslog)
                syslog(level, "%s", msg);
        else
                fprintf(stderr, "hybridd: %s: %s\n", names[level & 7], msg);
}

/* libevent's own complaints ("[warn] ...") in the same one-line form as ours. */
static void log_libevent(int severity, const char *msg)
{
        int level = severity >= EVENT_LOG_ERR ? HYB_LOG_ERROR :
                    severity == EVENT_LOG_WARN ? HYB_LOG_WARNING : HYB_LOG_DEBUG;

        if (level <= HYB_LOG_WARNING)
                log_line(level, msg, NULL);
}

static struct event *sigterm, *sigint;

static void on_signal(evutil_socket_t sig, short what, void *ud)
{
        hyb_broker *b = ud;
        log_line(HYB_LOG_INFO, "shutting down", NULL);
        /* Once no event is left, event_base_dispatch returns. */
        event_del(sigterm);
        event_del(sigint);
        hyb_broker_shutdown(b);
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "socket", required_argument, NULL, 's' },
                { "config", required_argument, NULL, 'c' },
                { "foreground", no_argument, NULL, 'f' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        const char *sock = NULL, *config = NULL;
        bool foreground = false;
        hyb_broker_config *cfg = NULL;
        hyb_broker *b = NULL;
        hyb_store *store = NULL;
        struct event_base *base;
        hyb_error err;
        int c, r, pipefd[2] = { -1, -1 };

        opterr = 0; /* one message of our own per error */
        event_set_log_callback(log_libevent);
        while ((c = getopt_long(argc, argv, ":s:c:fhV", opts, NULL)) != -1) {
                switch (c) {
                case 's':
                        sock = optarg;
                        break;
                case 'c':
                        config = optarg;
                        break;
                case 'f':
                        foreground = true;
                        break;
                case 'h':
                        fputs(usage, stdout);
                        return 0;
                case 'V':
                        printf("hybridd %s\n", hyb_version());
                        return 0;
                case ':':
                        fprintf(stderr,
                                "hybridd: option '%s' needs an argument (see hybridd --help)\n",
                                argv[optind - 1]);
                        return EXIT_USAGE;
                default:
                        fprintf(stderr, "hybridd: unknown option '%s' (see hybridd --help)\n",
                                argv[optind - 1]);
                        return EXIT_USAGE;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "hybridd: unexpected argument '%s' (see hybridd --help)\n",
                        argv[optind]);
                return EXIT_USAGE;
        }
        if (hyb_broker_config_new(&cfg) < 0) {
                fprintf(stderr, "hybridd: %s\n", hyb_strerror(-ENOMEM));
                return EXIT_RUNTIME;
        }
        hyb_error_clear(&err);
        if (config && (r = hyb_broker_config_load_file(cfg, config, &err)) < 0) {
                /* The message names the file, the key and the position once each. */
                fprintf(stderr, "hybridd: %s\n", err.message[0] ? err.message : hyb_strerror(r));
                hyb_broker_config_unref(cfg);
                return r == -ENOMEM ? EXIT_RUNTIME : EXIT_USAGE;
        }
        /* --socket, else listen.unix of the config, else $HYBRID_BUS (the library's
         * hyb_broker_config_get_socket), else the default. */
        if (sock && hyb_broker_config_set_socket(cfg, sock) < 0) {
                fprintf(stderr, "hybridd: bad socket path '%s' (empty or longer than 107 bytes)\n",
                        sock);
                hyb_broker_config_unref(cfg);
                return EXIT_USAGE;
        }
        use_syslog = hyb_broker_config_get_syslog(cfg);
        if (use_syslog)
                openlog("hybridd", LOG_PID, LOG_DAEMON);
        signal(SIGPIPE, SIG_IGN);

        if (!foreground) {
                /* The parent exits only once the child listens (or reports why it cannot). */
                pid_t pid = -1;

                if (pipe2(pipefd, O_CLOEXEC) == 0)
                        pid = fork();
                if (pid < 0) {
                        fprintf(stderr, "hybridd: cannot detach: %s\n", strerror(errno));
                        hyb_broker_config_unref(cfg);
                        return EXIT_RUNTIME;
                }
                if (pid > 0) {
                        unsigned char status = EXIT_RUNTIME;
                        close(pipefd[1]);
                        if (read(pipefd[0], &status, 1) != 1)
                                status = EXIT_RUNTIME;
                        return status;
                }
                close(pipefd[0]);
                setsid();
        }

        base = event_base_new();
        hyb_error_clear(&err);
        if (!base) {
                fprintf(stderr, "hybridd: cannot create the event loop\n");
                r = EXIT_RUNTIME;
                goto report;
        }
        if ((r = hyb_broker_new(cfg, base, &b, &err)) < 0) {
                fprintf(stderr, "hybridd: %s\n", err.message[0] ? err.message : hyb_strerror(r));
                r = r == HYB_E_CONFIG ? EXIT_USAGE : EXIT_RUNTIME;
                goto report;
        }
        hyb_broker_set_log(b, hyb_broker_config_get_log_level(cfg), log_line, NULL);
        /* The host store (`store:` of the config; memory when it names no path), served on
         * the bus before the socket appears. */
        hyb_error_clear(&err);
        if ((r = hyb_broker_config_open_store(cfg, &store, &err)) < 0 ||
            (r = hyb_broker_set_store(b, store)) < 0) {
                char msg[400];
                snprintf(msg, sizeof msg, "cannot open the store: %s",
                         err.message[0] ? err.message : hyb_strerror(r));
                log_line(HYB_LOG_ERROR, msg, NULL);
                r = EXIT_RUNTIME;
                goto report;
        }
        store = hyb_store_unref(store); /* the broker holds it */
        hyb_error_clear(&err);
        if ((r = hyb_broker_start(b, &err)) < 0) {
                log_line(HYB_LOG_ERROR, err.message[0] ? err.message : hyb_strerror(r), NULL);
                r = EXIT_LISTEN;
                goto report;
        }
        sigterm = evsignal_new(base, SIGTERM, on_signal, b);
        sigint = evsignal_new(base, SIGINT, on_signal, b);
        evsignal_add(sigterm, NULL);
        evsignal_add(sigint, NULL);
        r = 0;
report:
        if (pipefd[1] >= 0) {
                unsigned char st = (unsigned char)r;
                if (write(pipefd[1], &st, 1) < 0) {
                        /* parent gone; keep serving */
                }
                close(pipefd[1]);
                if (r == 0) {
                        int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
                        if (devnull >= 0) {
                                dup2(devnull, 0);
                                dup2(devnull, 1);
                                if (!use_syslog)
                                        dup2(devnull, 2);
                                close(devnull);
                        }
                }
        }
        if (r != 0) {
                hyb_store_unref(store);
                hyb_broker_free(b);
                hyb_broker_config_unref(cfg);
                if (base)
                        event_base_free(base);
                return r;
        }
        /* Signals stay registered; dispatch returns once shutdown released every connection. */
        r = event_base_dispatch(base) < 0 ? EXIT_RUNTIME : 0;
        event_free(sigterm);
        event_free(sigint);
        hyb_broker_free(b);
        hyb_broker_config_unref(cfg);
        event_base_free(base);
        return r;
}
