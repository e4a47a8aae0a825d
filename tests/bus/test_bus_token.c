/* SPDX-License-Identifier: MIT */
/*
 * Token sessions against an in-process broker, through the public API
 * (hyb_bus_connect_with, the bus and store calls): auth.* config keys, the
 * connect-level refusals (one HYB_E_UNAUTHORIZED, the daemon keeps serving),
 * per-operation 403s, a session closed at the token's exp and one closed by the
 * revocation hook (broker_auth_set_revoked + broker_auth_sweep, the interface the
 * revocation feed uses).  doc/token.md "Connecting with a token".
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hybrid/hybrid.h>

#include "broker/broker-internal.h"
#include "test_bus.h"
#include "testutil.h"

static int put_int(hyb_bus *bus, const char *furi, int64_t v)
{
        hyb_obj *o = NULL;
        hyb_error e;
        int r;

        ck_assert_int_eq(hyb_obj_new_int(v, &o), 0);
        hyb_error_clear(&e);
        r = hyb_bus_store_write(bus, furi, o, 0, &e);
        hyb_obj_unref(o);
        return r;
}

static int nop_method(hyb_bus_request *req, void *ud)
{
        (void)ud;
        return hyb_bus_request_reply(req, 200, "{}", 2, 0);
}

static void nop_event(hyb_bus *bus, const hyb_bus_event *ev, void *ud)
{
        (void)bus;
        (void)ev;
        (void)ud;
}

static void nop_msg(const hyb_furi *target, const hyb_obj *payload, bool retain, void *ud)
{
        (void)target;
        (void)payload;
        (void)retain;
        (void)ud;
}

static void nop_monitor(hyb_bus *bus, const hyb_bus_monitor_record *rec, void *ud)
{
        (void)bus;
        (void)rec;
        (void)ud;
}

START_TEST(test_token_config)
{
        hyb_broker_config *cfg = NULL;
        hyb_error e;
        static const char *const bad[] = {
                "auth:\n  tokens: maybe\n",
                "auth:\n  tokens: accept\n  issuers:\n    acme: /nonexistent/key.pub\n",
                "auth:\n  max_lifetime_s: 0\n",
                "auth:\n  max_lifetime_s: 12x\n",
                "auth:\n  audience: [a, b]\n",
                "auth:\n  token: accept\n",
                "auth:\n  verify_threads: 0\n",
                "auth:\n  verify_threads: 65\n",
                "auth:\n  max_verifying: 0\n",
                "auth:\n  max_verifying: 65537\n",
                "auth:\n  uid_max_verifying: eight\n",
                "auth:\n  uid_max_verifying: -1\n",
        };

        ck_assert_int_eq(hyb_broker_config_new(&cfg), 0);
        ck_assert_uint_eq(cfg->c.auth_verify_threads, 2);
        ck_assert_uint_eq(cfg->c.auth_max_verifying, 32);
        ck_assert_uint_eq(cfg->c.auth_uid_max_verifying, 8);
        static const char good[] =
                "auth:\n  tokens: REQUIRE\n  audience: hub\n  max_lifetime_s: 60\n"
                "  verify_threads: 64\n  max_verifying: 65536\n  uid_max_verifying: 1\n";
        ck_assert_int_eq(hyb_broker_config_load_string(cfg, good, strlen(good), &e), 0);
        ck_assert_uint_eq(cfg->c.auth_verify_threads, 64);
        ck_assert_uint_eq(cfg->c.auth_max_verifying, 65536);
        ck_assert_uint_eq(cfg->c.auth_uid_max_verifying, 1);
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                hyb_error_clear(&e);
                ck_assert_msg(hyb_broker_config_load_string(cfg, bad[i], strlen(bad[i]), &e) ==
                                      HYB_E_CONFIG,
                              "accepted: %s", bad[i]);
                ck_assert_int_gt(e.line, 0);
        }
        hyb_broker_config_unref(cfg);
}
END_TEST

/* accept: a good token connects; the refusals are one HYB_E_UNAUTHORIZED and others are served. */
START_TEST(test_token_connect)
{
        tbroker t;
        tkeys k;
        hyb_bus *b = NULL, *plain = NULL;
        char *good, *aud, *expired;

        tkeys_make(&k, "accept");
        tb_start_yaml(&t, k.yaml);
        good = tk_issue(&k, "hub-test", 3600,
                        "/sensors/#=read;bus://localhost/org.example.app/+=reg");
        aud = tk_issue(&k, "hub-other", 3600, "/sensors/#=read");
        expired = tk_issue(&k, "hub-test", 1, "/sensors/#=read");

        ck_assert_int_eq(tk_connect(&t, "org.example.app", "main", good, k.holder, &b), 0);
        ck_assert_str_eq(hyb_bus_get_endpoint_name(b), "@localhost/org.example.app/main");
        hyb_bus_unref(b);
        /* every peer may connect under org.hybridos.cli */
        ck_assert_int_eq(tk_connect(&t, "org.hybridos.cli", "c1", good, k.holder, &b), 0);
        hyb_bus_unref(b);
        /* an endpoint the token does not cover */
        ck_assert_int_eq(tk_connect(&t, "org.example.other", "main", good, k.holder, &b),
                         HYB_E_UNAUTHORIZED);
        /* the proof by another key than the holder's */
        ck_assert_int_eq(tk_connect(&t, "org.example.app", "main", good, k.other, &b),
                         HYB_E_UNAUTHORIZED);
        /* a public key only cannot prove anything: refused on this side */
        hyb_key *pub_only = NULL;
        char *pem = NULL;
        ck_assert_int_eq(hyb_key_to_pem(k.holder, HYB_KEY_EXPORT_PUBLIC, &pem), 0);
        ck_assert_int_eq(hyb_key_load_memory(pem, strlen(pem), &pub_only, NULL), 0);
        ck_assert_int_eq(tk_connect(&t, "org.example.app", "main", good, pub_only, &b),
                         HYB_E_UNAUTHORIZED);
        hyb_free(pem);
        hyb_key_unref(pub_only);
        /* another audience */
        ck_assert_int_eq(tk_connect(&t, "org.example.app", "main", aud, k.holder, &b),
                         HYB_E_UNAUTHORIZED);
        /* a tampered token (a payload character changed) */
        char *bad = strdup(good);
        char *dot = strchr(bad, '.');
        dot[5] = dot[5] == 'A' ? 'B' : 'A';
        ck_assert_int_eq(tk_connect(&t, "org.example.app", "main", bad, k.holder, &b),
                         HYB_E_UNAUTHORIZED);
        free(bad);
        /* expired (exp passed; still within the verifier's clock leeway) */
        sleep(2);
        ck_assert_int_eq(tk_connect(&t, "org.example.app", "main", expired, k.holder, &b),
                         HYB_E_UNAUTHORIZED);
        /* a token is not required under accept; the broker kept serving */
        plain = tb_connect(&t, "org.example.plain", "p");
        ck_assert_ptr_nonnull(plain);
        hyb_bus_unref(plain);
        free(good);
        free(aud);
        free(expired);
        tb_stop(&t);
        tkeys_free(&k);
}
END_TEST

START_TEST(test_token_require_and_off)
{
        tbroker t;
        tkeys k;
        hyb_bus *b = NULL;
        hyb_error e;
        char *good;

        tkeys_make(&k, "require");
        tb_start_yaml(&t, k.yaml);
        good = tk_issue(&k, "hub-test", 3600, "/sensors/#=read");
        hyb_error_clear(&e);
        ck_assert_int_eq(hyb_bus_connect(t.sock, "org.hybridos.cli", "x", &b, &e),
                         HYB_E_UNAUTHORIZED);
        ck_assert_int_eq(tk_connect(&t, "org.hybridos.cli", "y", good, k.holder, &b), 0);
        hyb_bus_unref(b);
        /* hyb_bus_connect presents the token of $HYBRID_TOKEN / $HYBRID_KEY (file paths) */
        char tf[600], kf[600];
        snprintf(tf, sizeof tf, "%s/tok", k.dir);
        snprintf(kf, sizeof kf, "%s/holder.key", k.dir);
        FILE *f = fopen(tf, "w");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "%s\n", good);
        fclose(f);
        ck_assert_int_eq(hyb_key_save_private(k.holder, kf, NULL), 0);
        setenv("HYBRID_TOKEN", tf, 1);
        ck_assert_int_eq(hyb_bus_connect(t.sock, "org.hybridos.cli", "env1", &b, &e), HYB_E_UNAUTHORIZED);
        setenv("HYBRID_KEY", kf, 1);
        ck_assert_int_eq(hyb_bus_connect(t.sock, "org.hybridos.cli", "env2", &b, &e), 0);
        hyb_bus_unref(b);
        setenv("HYBRID_KEY", tf, 1); /* not a key */
        ck_assert_int_eq(hyb_bus_connect(t.sock, "org.hybridos.cli", "env3", &b, &e), HYB_E_UNAUTHORIZED);
        unsetenv("HYBRID_TOKEN");
        unsetenv("HYBRID_KEY");
        unlink(tf);
        unlink(kf);
        tb_stop(&t);
        tkeys_free(&k);

        /* off: the client does not send a token to a daemon that would not read it */
        tkeys_make(&k, "off");
        tb_start_yaml(&t, k.yaml);
        ck_assert_int_eq(tk_connect(&t, "org.hybridos.cli", "y", good, k.holder, &b),
                         HYB_E_UNAUTHORIZED);
        b = tb_connect(&t, "org.hybridos.cli", "z");
        ck_assert_ptr_nonnull(b);
        hyb_bus_unref(b);
        free(good);
        tb_stop(&t);
        tkeys_free(&k);
}
END_TEST

/* 403 for what the token does not grant; the session stays. */
START_TEST(test_token_operations)
{
        tbroker t;
        tkeys k;
        hyb_bus *b = NULL, *plain;
        hyb_obj *o = NULL;
        hyb_slot *slot = NULL;
        hyb_error e;
        char *tok;

        tkeys_make(&k, "accept");
        tb_start_yaml(&t, k.yaml);
        tok = tk_issue(&k, "hub-test", 3600,
                       "/sensors/#=read;/home/+/temp=sub;bus://localhost/org.example.app/"
                       "main=reg;bus://localhost/org.example.app/main/ping=reg;"
                       "bus://localhost/org.example.app/main/tick=reg");
        plain = tb_connect(&t, "org.example.plain", "p");
        ck_assert_int_eq(put_int(plain, "/sensors/a", 1), 0);
        ck_assert_int_eq(tk_connect(&t, "org.example.app", "main", tok, k.holder, &b), 0);

        /* store */
        hyb_error_clear(&e);
        ck_assert_int_eq(hyb_bus_store_read(b, "/sensors/a", &o, &e), 0);
        hyb_obj_unref(o);
        o = NULL;
        ck_assert_int_eq(put_int(b, "/sensors/a", 2), HYB_E_FORBIDDEN);
        ck_assert_int_eq(hyb_bus_store_delete(b, "/sensors/a", &e), HYB_E_FORBIDDEN);
        ck_assert_int_eq(hyb_bus_store_read(b, "/other", &o, &e), HYB_E_FORBIDDEN);
        ck_assert_int_eq(hyb_bus_store_subscribe(b, "/home/#", 0, nop_msg, NULL, &slot, &e),
                         HYB_E_FORBIDDEN);
        ck_assert_int_eq(hyb_bus_store_subscribe(b, "/home/+/temp", 0, nop_msg, NULL, &slot, &e),
                         0);
        hyb_slot_unref(slot);
        slot = NULL;

        /* bus: reg on ping is granted, on pong not; pub and call not at all */
        hyb_error_clear(&e);
        ck_assert_int_eq(
                hyb_bus_register_procedure(b, "ping", "*", "*", nop_method, NULL, &slot, &e), 0);
        hyb_slot_unref(slot);
        slot = NULL;
        ck_assert_int_eq(
                hyb_bus_register_procedure(b, "pong", "*", "*", nop_method, NULL, &slot, &e),
                HYB_E_FORBIDDEN);
        hyb_slot *ev_slot = NULL; /* the bubble lives while its slot does */
        ck_assert_int_eq(hyb_bus_register_event(b, "tick", "*", "*", &ev_slot, &e), 0);
        uint32_t delivered = 0, failed = 0;
        ck_assert_int_eq(hyb_bus_fire(b, "tick", "{}", 2, 0, &delivered, &failed), HYB_E_FORBIDDEN);
        ck_assert_int_eq(hyb_bus_subscribe(b, "@localhost/org.example.app/main", "tick", nop_event,
                                           NULL, &slot, &e),
                         HYB_E_FORBIDDEN);
        ck_assert_int_eq(hyb_bus_subscribe(b, "@localhost/*", "*", nop_event, NULL, &slot, &e),
                         HYB_E_FORBIDDEN);
        ck_assert_int_eq(hyb_bus_monitor(b, nop_monitor, NULL, &slot, &e), HYB_E_FORBIDDEN);
        /* the session stayed */
        ck_assert(hyb_bus_is_open(b));
        ck_assert_int_eq(hyb_bus_store_read(b, "/sensors/a", &o, &e), 0);
        hyb_obj_unref(o);
        hyb_slot_unref(ev_slot);
        hyb_bus_unref(b);
        hyb_bus_unref(plain);
        free(tok);
        tb_stop(&t);
        tkeys_free(&k);
}
END_TEST

/* A token session's call is checked (403), and the lists show only what it may call. */
START_TEST(test_token_call_and_lists)
{
        tbroker t;
        tkeys k;
        hyb_bus *srv, *b = NULL;
        hyb_slot *s1 = NULL, *s2 = NULL;
        hyb_bus_reply *rep = NULL;
        hyb_error e;
        tsvc svc;
        char *tok;

        tkeys_make(&k, "accept");
        tb_start_yaml(&t, k.yaml);
        tok = tk_issue(&k, "hub-test", 3600, "bus://localhost/org.example.srv/main/ping=call");
        srv = tb_connect(&t, "org.example.srv", "main");
        ck_assert_int_eq(
                hyb_bus_register_procedure(srv, "ping", "*", "*", nop_method, NULL, &s1, &e), 0);
        ck_assert_int_eq(
                hyb_bus_register_procedure(srv, "secret", "*", "*", nop_method, NULL, &s2, &e), 0);
        svc_start(&svc, srv);
        ck_assert_int_eq(tk_connect(&t, "org.hybridos.cli", "caller", tok, k.holder, &b), 0);
        hyb_error_clear(&e);
        ck_assert_int_eq(hyb_bus_call(b, "@localhost/org.example.srv/main", "ping", "{}", 2, 0,
                                      5000, &rep, &e),
                         0);
        ck_assert_int_eq(hyb_bus_reply_get_status(rep), 200);
        rep = hyb_bus_reply_unref(rep);
        int r = hyb_bus_call(b, "@localhost/org.example.srv/main", "secret", "{}", 2, 0, 5000, &rep,
                             &e);
        ck_assert(r == HYB_E_FORBIDDEN || (r == 0 && hyb_bus_reply_get_status(rep) == 403));
        rep = hyb_bus_reply_unref(rep);
        ck_assert_int_eq(hyb_bus_call_builtin(b, "listProcedures", "{}", &rep, &e), 0);
        size_t len = 0;
        const char *body = hyb_bus_reply_get_body(rep, &len);
        char *text = strndup(body, len);
        ck_assert_ptr_nonnull(strstr(text, "@localhost/org.example.srv/main/ping"));
        ck_assert_ptr_null(strstr(text, "secret"));
        free(text);
        hyb_bus_reply_unref(rep);
        hyb_bus_unref(b);
        svc_stop(&svc);
        hyb_slot_unref(s1);
        hyb_slot_unref(s2);
        hyb_bus_unref(srv);
        free(tok);
        tb_stop(&t);
        tkeys_free(&k);
}
END_TEST

/* A reload that changes the audience holds for the next connect of a token verified before. */
START_TEST(test_token_reload_audience)
{
        tbroker t;
        tkeys k;
        hyb_bus *b = NULL;
        hyb_broker_config *cfg = NULL;
        hyb_error e;
        char *tok, yaml[1200];

        tkeys_make(&k, "accept");
        tb_start_yaml(&t, k.yaml);
        tok = tk_issue(&k, "hub-test", 3600, "/sensors/#=read");
        ck_assert_int_eq(tk_connect(&t, "org.hybridos.cli", "r1", tok, k.holder, &b), 0);
        hyb_bus_unref(b);
        snprintf(yaml, sizeof yaml, "%s", k.yaml);
        char *aud = strstr(yaml, "hub-test");
        ck_assert_ptr_nonnull(aud);
        memcpy(aud, "hub-else", 8);
        ck_assert_int_eq(hyb_broker_config_new(&cfg), 0);
        ck_assert_int_eq(hyb_broker_config_set_socket(cfg, t.sock), 0);
        ck_assert_int_eq(hyb_broker_config_load_string(cfg, yaml, strlen(yaml), &e), 0);
        tb_pause(&t);
        ck_assert_int_eq(hyb_broker_reload(t.broker, cfg, &e), 0);
        tb_resume(&t);
        ck_assert_int_eq(tk_connect(&t, "org.hybridos.cli", "r2", tok, k.holder, &b),
                         HYB_E_UNAUTHORIZED);
        hyb_broker_config_unref(cfg);
        free(tok);
        tb_stop(&t);
        tkeys_free(&k);
}
END_TEST

static int revoke_jti(void *ud, const hyb_token_ids *ids)
{
        return ids->jti && strcmp(ids->jti, ud) == 0;
}

/* The revocation hook closes the sessions of a revoked token (ERROR 401, the reason), not others.
 */
START_TEST(test_token_revoked_sweep)
{
        tbroker t;
        tkeys k;
        hyb_bus *b1 = NULL, *b2 = NULL;
        hyb_token_result *res = NULL;
        hyb_token_trust *trust = NULL;
        hyb_token_verify_opts vo;
        const char *why = NULL;
        char *t1, *t2, jti[128];

        tkeys_make(&k, "accept");
        tb_start_yaml(&t, k.yaml);
        t1 = tk_issue(&k, "hub-test", 3600, "/sensors/#=read");
        t2 = tk_issue(&k, "hub-test", 3600, "/sensors/#=read");
        ck_assert_int_eq(hyb_token_trust_new(&trust), 0);
        ck_assert_int_eq(hyb_token_trust_add(trust, "acme", k.iss), 0);
        hyb_token_verify_opts_init(&vo);
        vo.audience = "hub-test";
        ck_assert_int_eq(hyb_token_verify(t1, trust, &vo, &res, NULL), 0);
        snprintf(jti, sizeof jti, "%s", hyb_token_result_get_jti(res));
        hyb_token_result_unref(res);
        hyb_token_trust_unref(trust);

        ck_assert_int_eq(tk_connect(&t, "org.hybridos.cli", "one", t1, k.holder, &b1), 0);
        ck_assert_int_eq(tk_connect(&t, "org.hybridos.cli", "two", t2, k.holder, &b2), 0);
        tb_pause(&t);
        broker_auth_set_revoked(t.broker, revoke_jti, jti);
        broker_auth_sweep(t.broker);
        tb_resume(&t);
        for (int i = 0; i < 500 && hyb_bus_is_open(b1); i++) {
                hyb_bus_wait(b1, 20000);
                hyb_bus_process(b1);
        }
        ck_assert(!hyb_bus_is_open(b1));
        ck_assert_int_eq(hyb_bus_get_close_reason(b1, &why), 401);
        ck_assert_ptr_nonnull(why);
        ck_assert_ptr_nonnull(strstr(why, "revoked"));
        /* the other token's session stays */
        hyb_obj *o = NULL;
        ck_assert_int_eq(hyb_bus_store_read(b2, "/sensors/none", &o, NULL), 0);
        hyb_obj_unref(o);
        ck_assert(hyb_bus_is_open(b2));
        /* the revoked token cannot connect again */
        hyb_bus *b3 = NULL;
        ck_assert_int_eq(tk_connect(&t, "org.hybridos.cli", "three", t1, k.holder, &b3),
                         HYB_E_UNAUTHORIZED);
        hyb_bus_unref(b1);
        hyb_bus_unref(b2);
        free(t1);
        free(t2);
        tb_stop(&t);
        tkeys_free(&k);
}
END_TEST

/* A session ends at the token's exp: 401 with the reason (generous bound: 20 s). */
START_TEST(test_token_expiry)
{
        tbroker t;
        tkeys k;
        hyb_bus *b = NULL;
        const char *why = NULL;
        char *tok;

        tkeys_make(&k, "accept");
        tb_start_yaml(&t, k.yaml);
        tok = tk_issue(&k, "hub-test", 3, "/sensors/#=read");
        ck_assert_int_eq(tk_connect(&t, "org.hybridos.cli", "exp", tok, k.holder, &b), 0);
        uint64_t end = hyb_now_usec() + 20u * 1000000u;
        while (hyb_bus_is_open(b) && hyb_now_usec() < end) {
                hyb_bus_wait(b, 100000);
                hyb_bus_process(b);
        }
        ck_assert(!hyb_bus_is_open(b));
        ck_assert_int_eq(hyb_bus_get_close_reason(b, &why), 401);
        ck_assert_ptr_nonnull(strstr(why, "expired"));
        hyb_bus_unref(b);
        free(tok);
        tb_stop(&t);
        tkeys_free(&k);
}
END_TEST

void bus_tcase_token(Suite *s)
{
        TCase *tc = tcase_create("token");

        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_token_config);
        tcase_add_test(tc, test_token_connect);
        tcase_add_test(tc, test_token_require_and_off);
        tcase_add_test(tc, test_token_operations);
        tcase_add_test(tc, test_token_call_and_lists);
        tcase_add_test(tc, test_token_revoked_sweep);
        tcase_add_test(tc, test_token_reload_audience);
        tcase_add_test(tc, test_token_expiry);
        suite_add_tcase(s, tc);
}
