/* SPDX-License-Identifier: MIT */
/* bus_suite helpers: an in-process broker on its own thread, service threads, raw sockets. */
#ifndef HYB_TEST_BUS_H
#define HYB_TEST_BUS_H

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>

#include <hybrid/hybrid.h>

typedef struct tbroker {
        pthread_t thread;
        struct event_base *base;
        struct event *stop_ev;
        hyb_broker *broker;
        hyb_broker_config *cfg;
        char *dir;
        char sock[256];
        int stop_pipe[2];
} tbroker;

/* Starts a broker with the given limits ("name=value,name=value"; NULL: defaults). */
void tb_start(tbroker *t, const char *limits, bool admin_self);
/* The same, with a YAML config loaded over it (NULL: none) and a host store served (NULL: none;
 * the broker takes a reference). */
void tb_start_store(tbroker *t, const char *limits, bool admin_self, const char *yaml,
                    hyb_store *st);
void tb_stop(tbroker *t);
/* Stops the broker's thread (its loop returns; connections stay open but unserved) so the
 * test thread may call broker functions; tb_resume runs the loop again on a new thread. */
void tb_pause(tbroker *t);
void tb_resume(tbroker *t);

hyb_bus *tb_connect(tbroker *t, const char *app, const char *runner);

/*
 * Token sessions.  tkeys_make: a new issuer key (saved as dir/iss.pub), holder key and
 * other key, and yaml, an auth section with auth.tokens MODE, audience hub-test and issuer
 * "acme" (that key); tkeys_free frees them and removes dir.
 */
typedef struct tkeys {
        char *dir;
        hyb_key *iss, *holder, *other;
        char yaml[1024];
} tkeys;
void tkeys_make(tkeys *k, const char *mode);
void tkeys_free(tkeys *k);
/* A token (caller frees) of acme for sub alice and k->holder, audience aud, ttl seconds,
 * with the caps "PATTERN=ACTIONS;..." (at most 8). */
char *tk_issue(tkeys *k, const char *aud, uint64_t ttl, const char *caps);
/* Connects app/runner to t with the token tok held by key: hyb_bus_connect_with's result. */
int tk_connect(tbroker *t, const char *app, const char *runner, const char *tok,
               const hyb_key *key, hyb_bus **ret);
/* tb_start_store with default limits, a config (yaml) and an in-memory host store. */
void tb_start_yaml(tbroker *t, const char *yaml);
/*
 * The direct-channel tests' session: tb_start_token_session starts a broker on t with the
 * keys' auth section (auth.tokens accept) and issues ts->tok, which may call add of
 * org.test.svc/main and register on org.test.cli/main; tsession_connect connects
 * org.test.cli/main with it; tsession_free frees the session (stop t first).
 */
typedef struct tsession {
        tkeys k;
        char *tok;
} tsession;
void tb_start_token_session(tbroker *t, tsession *ts);
hyb_bus *tsession_connect(tbroker *t, tsession *ts);
void tsession_free(tsession *ts);
/* Ends every token session on t at once (all tokens revoked, the broker swept). */
void tb_revoke_all(tbroker *t);

/* Runs a bus on its own thread (process/wait loop) until svc_stop. */
typedef struct tsvc {
        pthread_t thread;
        hyb_bus *bus;
        atomic_bool stop;
} tsvc;
void svc_start(tsvc *s, hyb_bus *bus);
void svc_stop(tsvc *s);

/* Pumps a bus from the current thread for up to ms milliseconds or until *flag. */
void pump_until(hyb_bus *bus, atomic_int *flag, int want, int ms);

/* Raw socket: connect and complete the handshake by hand. Returns the fd. */
int raw_connect(tbroker *t, const char *app, const char *runner, bool authenticate);
/* Reads exactly len bytes, each wait at most timeout_ms; 0, or -1 at EOF/timeout. */
int raw_read_exact(int fd, void *buf, size_t len, int timeout_ms);
/* Reads one frame header (type, status); returns type or -1 at EOF/timeout. */
int raw_read_frame(int fd, int *status, int timeout_ms);

void bus_tcase_events(Suite *s);
void bus_tcase_limits(Suite *s);
void bus_tcase_review(Suite *s);
void bus_tcase_slots(Suite *s);
void bus_tcase_builtin(Suite *s);
void bus_tcase_store(Suite *s);
void bus_tcase_log(Suite *s);
void bus_tcase_reload(Suite *s);
void bus_tcase_token(Suite *s);
void bus_tcase_wait(Suite *s);
void bus_tcase_channel(Suite *s);
void bus_tcase_direct(Suite *s);

#endif
