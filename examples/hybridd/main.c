/* SPDX-License-Identifier: MIT */
/*
 * hybridd - the bus daemon: a thin main around the embeddable broker
 * (include/hybrid/broker.h).  See doc/hybridd.md.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <event2/event.h>

#include <hybrid/hybrid.h>

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_LISTEN = 3 };

static const char usage[] =
        "usage: hybridd [--socket PATH] [--config FILE] [--foreground]\n"
        "  -s, --socket PATH   listen on this Unix socket (before listen.unix of the config,\n"
        "                      then $HYBRID_BUS, then $XDG_RUNTIME_DIR/hybrid/bus.sock\n"
        "                      or /run/hybrid/bus.sock)\n"
        "  -c, --config FILE   YAML configuration (host, listen, limits, policy, log, store,\n"
        "                      boot)\n"
        "  -f, --foreground    stay attached; without it hybridd detaches once the socket\n"
        "                      is ready\n"
        "  -h, --help          this text\n"
        "  -V, --version       the version\n"
        "SIGHUP reads the --config file again and applies it in place (a file that does\n"
        "not load changes nothing); SIGTERM/SIGINT shut down.\n"
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

/*
 * One sd_notify(3) message (newline-separated VAR=value lines) to $NOTIFY_SOCKET (a datagram
 * socket; `@name` is in the abstract namespace), when set: READY=1 once the socket exists
 * (after the boot), RELOADING=1 and READY=1 around a reload, STOPPING=1 at shutdown.  No
 * libsystemd needed for one datagram.
 */
static void notify(const char *msg)
{
        const char *path = getenv("NOTIFY_SOCKET");
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len;
        int fd;

        if (!path || (path[0] != '/' && path[0] != '@'))
                return;
        len = strlen(path);
        if (len >= sizeof(sa.sun_path))
                return;
        memcpy(sa.sun_path, path, len);
        if (path[0] == '@')
                sa.sun_path[0] = '\0';
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return;
        if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
                   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
                log_line(HYB_LOG_WARNING, "cannot notify NOTIFY_SOCKET", NULL);
        close(fd);
}

static struct event *sigterm, *sigint, *sighup;
/* What a reload reads again: the --config file (none: the defaults) and --socket. */
static const char *config_path, *socket_opt;
static int log_max = HYB_LOG_INFO;
static hyb_boot *boot; /* its events keep the loop going: freed at shutdown */
static hyb_broker *log_broker; /* once serving: boot lines go through it, to hybrid-logd too */

static void log_boot(int level, const char *msg, void *ud)
{
        if (log_broker)
                hyb_broker_log(log_broker, level, msg);
        else if (level <= log_max)
                log_line(level, msg, ud);
}

/*
 * The host store (the `store:` key; memory only without a path) and the boot
 * (the `boot:` key: data, then programs), before the socket appears.
 * main() then serves the store on the bus (hyb_broker_set_store).
 */
static int open_store_and_boot(hyb_broker_config *cfg, struct event_base *base,
                               hyb_store **ret_store, hyb_scope **ret_scope, hyb_boot **ret_boot)
{
        const char *path = hyb_broker_config_get_store_path(cfg);
        hyb_backend *host = NULL;
        hyb_error err;
        int r;

        if (hyb_broker_config_get_store_durability(cfg) == HYB_DURABILITY_MEMORY)
                path = NULL;
        /* path, durability and store.limits of the configuration */
        hyb_error_clear(&err);
        r = hyb_broker_config_open_store(cfg, ret_store, &err);
        if (r < 0) {
                fprintf(stderr, "hybridd: store %s: %s\n", path ? path : "(memory)",
                        err.message[0] ? err.message : hyb_strerror(r));
                return r;
        }
        r = hyb_backend_new_store(*ret_store, &host);
        if (r >= 0)
                r = hyb_scope_new(host, NULL, "hybridd", ret_scope);
        hyb_backend_unref(host); /* the scope holds its own reference */
        if (r >= 0)
                r = hyb_boot_new(*ret_scope, base, cfg, log_boot, NULL, ret_boot);
        if (r < 0)
                fprintf(stderr, "hybridd: boot: %s\n", hyb_strerror(r));
        return r;
}

/* The kernel's objs served to clients (hyb_broker_set_kernel): the boot VM's /sys/scheduler
 * and the built-in /type/... */
static int read_kernel(const hyb_furi *f, hyb_obj **ret, hyb_error *e, void *ud)
{
        return boot ? hyb_mmadt_read_kernel(hyb_boot_get_vm(boot), f, ret, e) : 0;
}

static void on_signal(evutil_socket_t sig, short what, void *ud)
{
        hyb_broker *b = ud;
        log_line(HYB_LOG_INFO, "shutting down", NULL);
        notify("STOPPING=1\nSTATUS=shutting down");
        /* Once no event is left, event_base_dispatch returns. */
        event_del(sigterm);
        event_del(sigint);
        event_del(sighup);
        hyb_broker_set_kernel(b, NULL, NULL);
        boot = hyb_boot_free(boot);
        hyb_broker_shutdown(b);
}

/*
 * SIGHUP: the configuration file is read again into a new configuration, with the loader of
 * the start; limits, policies and log.level take effect in place (hyb_broker_reload), new
 * boot.data keys are written where their fURI holds nothing (hyb_boot_reload).  A file that
 * does not load, or a configuration the broker refuses, is logged and changes nothing.
 */
static void on_reload(evutil_socket_t sig, short what, void *ud)
{
        hyb_broker *b = ud;
        hyb_broker_config *n = NULL;
        hyb_error err;
        char msg[sizeof(err.message) + 96];
        int r;

        snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
                 (unsigned long long)hyb_now_usec());
        notify(msg);
        log_boot(HYB_LOG_INFO, config_path ? "reloading the configuration" :
                               "reloading the configuration (no --config: the defaults)", NULL);
        hyb_error_clear(&err);
        r = hyb_broker_config_new(&n);
        if (r >= 0 && config_path)
                r = hyb_broker_config_load_file(n, config_path, &err);
        if (r >= 0 && socket_opt)
                r = hyb_broker_config_set_socket(n, socket_opt);
        if (r >= 0)
                r = hyb_broker_reload(b, n, &err);
        if (r < 0) {
                snprintf(msg, sizeof(msg), "reload failed, the configuration in force stays: %s",
                         err.message[0] ? err.message : hyb_strerror(r));
                log_line(HYB_LOG_ERROR, msg, NULL);
                hyb_broker_config_unref(n);
                notify("READY=1\nSTATUS=reload failed: the configuration in force stays");
                return;
        }
        log_max = hyb_broker_config_get_log_level(n);
        hyb_broker_set_log(b, log_max, log_line, NULL);
        if (boot)
                hyb_boot_reload(boot, n);
        hyb_broker_config_unref(n); /* the broker keeps a copy of its own */
        notify("READY=1\nSTATUS=configuration reloaded");
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
        hyb_scope *scope = NULL;
        struct event_base *base = NULL;
        struct event_config *ecfg;
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
        /* Until the reload handler is in place, a SIGHUP must not end the daemon. */
        signal(SIGHUP, SIG_IGN);
        config_path = config;
        socket_opt = sock;

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
                        ssize_t n;

                        while ((n = read(pipefd[0], &status, 1)) < 0 && errno == EINTR)
                                ;
                        if (n != 1)
                                status = EXIT_RUNTIME; /* the child died before it could say */
                        hyb_broker_config_unref(cfg);
                        return status;
                }
                close(pipefd[0]);
                setsid();
        }

        /*
         * The loop hands epoll the net change of a descriptor's events once per turn
         * (libevent's changelist): evhttp disarms and arms a connection's read and write
         * events in the same turn, so an HTTP request costs 3 epoll_ctl instead of 4.  The
         * changelist is unsafe only for descriptors cloned with dup(), which the daemon
         * never polls.
         */
        ecfg = event_config_new();
        if (ecfg) {
                event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
                base = event_base_new_with_config(ecfg);
                event_config_free(ecfg);
        }
        if (!base)
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
        log_max = hyb_broker_config_get_log_level(cfg);
        if ((r = open_store_and_boot(cfg, base, &store, &scope, &boot)) < 0) {
                r = EXIT_RUNTIME;
                goto report;
        }
        /* The host store is served on the bus (doc/protocol.md "Store") from the start. */
        if ((r = hyb_broker_set_store(b, store)) < 0) {
                log_line(HYB_LOG_ERROR, hyb_strerror(r), NULL);
                r = EXIT_RUNTIME;
                goto report;
        }
        hyb_broker_set_kernel(b, read_kernel, NULL);
        /* SIGTERM and SIGINT are caught before the socket appears: one sent as soon as it is
         * there (a service manager, a test) is a clean shutdown, run once the loop starts,
         * not the default death that leaves the socket file behind. */
        sigterm = evsignal_new(base, SIGTERM, on_signal, b);
        sigint = evsignal_new(base, SIGINT, on_signal, b);
        evsignal_add(sigterm, NULL);
        evsignal_add(sigint, NULL);
        hyb_error_clear(&err);
        if ((r = hyb_broker_start(b, &err)) < 0) {
                log_line(HYB_LOG_ERROR, err.message[0] ? err.message : hyb_strerror(r), NULL);
                r = EXIT_LISTEN;
                goto report;
        }
        sighup = evsignal_new(base, SIGHUP, on_reload, b);
        log_broker = b;
        evsignal_add(sighup, NULL);
        notify("READY=1");
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
                if (sigterm)
                        event_free(sigterm);
                if (sigint)
                        event_free(sigint);
                boot = hyb_boot_free(boot);
                hyb_scope_unref(scope);
                hyb_store_unref(store);
                hyb_broker_free(b);
                hyb_broker_config_unref(cfg);
                if (base)
                        event_base_free(base);
                return r;
        }
        /* Signals stay registered; dispatch returns once shutdown released every connection. */
        r = event_base_dispatch(base) < 0 ? EXIT_RUNTIME : 0;
        log_broker = NULL;
        event_free(sigterm);
        event_free(sigint);
        event_free(sighup);
        boot = hyb_boot_free(boot);
        hyb_scope_unref(scope);
        hyb_store_unref(store);
        hyb_broker_free(b);
        hyb_broker_config_unref(cfg);
        event_base_free(base);
        return r;
}
