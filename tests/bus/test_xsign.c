/* SPDX-License-Identifier: MIT */
/*
 * lib/broker/xhost-sign.c: calls between hosts signed with the cluster's secret
 * (doc/cluster.md "Signed calls"): the secret file's bounds, a signed call taken once,
 * any change to what the MAC covers refused, and the replay cache bounded (16384 calls)
 * without letting a forgotten call in again.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker/broker-internal.h"
#include "broker/xhost.h"
#include "testutil.h"

TCase *xsign_tcase(void);

static char *secret_file(const char *dir, const char *name, const char *text)
{
        char *p = NULL;
        FILE *f;

        ck_assert_int_ge(asprintf(&p, "%s/%s", dir, name), 0);
        f = fopen(p, "w");
        ck_assert_ptr_nonnull(f);
        fputs(text, f);
        fclose(f);
        return p;
}

/* A CALL message of host b for a, with call id id. */
struct call {
        uint8_t corr[8];
        uint8_t frame[64];
        char ts[24], mac[65];
        xmsg m;
};

static void call_init(struct call *c, uint64_t id, const char *token)
{
        memset(c, 0, sizeof *c);
        for (int i = 0; i < 8; i++)
                c->corr[i] = (uint8_t)(id >> (8 * i));
        memset(c->frame, 0x5a, sizeof c->frame);
        memcpy(c->frame, &id, sizeof id);
        c->m = (xmsg){ .topic = "_hybrid/call/a", .payload = c->frame, .len = sizeof c->frame,
                       .response_topic = "_hybrid/reply/b", .corr = c->corr, .corr_len = 8,
                       .token = token, .sign = true };
}

START_TEST(test_secret_file)
{
        char *dir = test_tmpdir();
        char err[512];
        xsign *s = NULL;
        char *p;

        p = secret_file(dir, "short", "fifteen bytes..\n");
        ck_assert_int_eq(xsign_load(p, &s, err, sizeof err), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "the secret must have 16 to 4096 bytes"));
        free(p);
        p = secret_file(dir, "ok", "sixteen bytes...\r\n");
        ck_assert_int_eq(xsign_load(p, &s, err, sizeof err), 0);
        s = xsign_free(s);
        free(p);
        ck_assert_int_eq(xsign_load("/nonexistent/secret", &s, err, sizeof err), -ENOENT);
        ck_assert_ptr_nonnull(strstr(err, "cluster.call_secret_file /nonexistent/secret"));
        test_rmrf(dir);
        free(dir);
}
END_TEST

START_TEST(test_signed_once)
{
        char *dir = test_tmpdir();
        char err[512], *p = secret_file(dir, "secret", "0123456789abcdef0123456789abcdef\n");
        char *q = secret_file(dir, "other", "another secret of the cluster\n");
        xsign *s = NULL, *o = NULL;
        const char *why = NULL;
        struct call c;

        ck_assert_int_eq(xsign_load(p, &s, err, sizeof err), 0);
        ck_assert_int_eq(xsign_load(q, &o, err, sizeof err), 0);
        call_init(&c, 7, "tok.en.text");
        ck_assert_int_eq(xsign_make(s, &c.m, c.ts, c.mac), 0);
        ck_assert_uint_eq(strlen(c.mac), 64);
        ck_assert_int_eq(xsign_check(s, &c.m, "b", 1, 7, true, &why), 0);
        /* the same call again: refused, and a CANCEL or RESULT check does not count */
        ck_assert_int_eq(xsign_check(s, &c.m, "b", 1, 7, true, &why), -EACCES);
        ck_assert_ptr_nonnull(strstr(why, "replayed"));
        ck_assert_int_eq(xsign_check(s, &c.m, "b", 1, 7, false, &why), 0);
        /* the same call id from another host is another call */
        ck_assert_int_eq(xsign_check(s, &c.m, "c", 1, 7, true, &why), 0);
        /* another secret does not verify it */
        ck_assert_int_eq(xsign_check(o, &c.m, "b", 1, 8, true, &why), -EACCES);
        ck_assert_ptr_nonnull(strstr(why, "does not verify"));
        /* every field the MAC covers */
        struct call d;
        const char *tok[] = { "tok.en.text", NULL };
        for (int k = 0; k < 6; k++) {
                call_init(&d, 100 + (uint64_t)k, tok[0]);
                ck_assert_int_eq(xsign_make(s, &d.m, d.ts, d.mac), 0);
                switch (k) {
                case 0: d.frame[40] ^= 1; break;
                case 1: d.m.token = "tok.en.texT"; break;
                case 2: d.m.token = tok[1]; break;
                case 3: d.m.topic = "_hybrid/call/x"; break;
                case 4: d.m.response_topic = "_hybrid/reply/c"; break;
                case 5: d.corr[0] ^= 1; break;
                }
                ck_assert_int_eq(xsign_check(s, &d.m, "b", 1, 100 + (uint64_t)k, true, &why), -EACCES);
        }
        /* a MAC of another length, a ts that is not a number, none at all */
        call_init(&d, 200, NULL);
        ck_assert_int_eq(xsign_make(s, &d.m, d.ts, d.mac), 0);
        d.mac[63] = 0;
        ck_assert_int_eq(xsign_check(s, &d.m, "b", 1, 200, true, &why), -EACCES);
        call_init(&d, 201, NULL);
        ck_assert_int_eq(xsign_make(s, &d.m, d.ts, d.mac), 0);
        d.m.ts = "12x";
        ck_assert_int_eq(xsign_check(s, &d.m, "b", 1, 201, true, &why), -EACCES);
        d.m.ts = d.m.mac = NULL;
        ck_assert_int_eq(xsign_check(s, &d.m, "b", 1, 201, true, &why), -EACCES);
        ck_assert_ptr_nonnull(strstr(why, "only calls signed"));
        xsign_free(s);
        xsign_free(o);
        free(p);
        free(q);
        test_rmrf(dir);
        free(dir);
}
END_TEST

START_TEST(test_replay_bound)
{
        char *dir = test_tmpdir();
        char err[512], *p = secret_file(dir, "secret", "0123456789abcdef0123456789abcdef");
        xsign *s = NULL;
        const char *why = NULL;
        struct call first, c;
        const unsigned n = 16384 + 100;

        ck_assert_int_eq(xsign_load(p, &s, err, sizeof err), 0);
        call_init(&first, 1, NULL);
        ck_assert_int_eq(xsign_make(s, &first.m, first.ts, first.mac), 0);
        ck_assert_int_eq(xsign_check(s, &first.m, "b", 1, 1, true, &why), 0);
        for (unsigned i = 2; i <= n; i++) {
                call_init(&c, i, NULL);
                ck_assert_int_eq(xsign_make(s, &c.m, c.ts, c.mac), 0);
                ck_assert_int_eq(xsign_check(s, &c.m, "b", 1, i, true, &why), 0);
                ck_assert_uint_le(xsign_replay_count(s), 16384);
        }
        ck_assert_uint_eq(xsign_replay_count(s), 16384);
        /* the first call, forgotten by the cache, is still refused (its ts is not above
         * the floor); the last one is remembered */
        ck_assert_int_eq(xsign_check(s, &first.m, "b", 1, 1, true, &why), -EACCES);
        ck_assert_int_eq(xsign_check(s, &c.m, "b", 1, n, true, &why), -EACCES);
        /* a new call, a little later, is taken */
        struct timespec ts = { 0, 3000000 };
        nanosleep(&ts, NULL);
        call_init(&c, n + 1, NULL);
        ck_assert_int_eq(xsign_make(s, &c.m, c.ts, c.mac), 0);
        ck_assert_int_eq(xsign_check(s, &c.m, "b", 1, n + 1, true, &why), 0);
        xsign_free(s);
        free(p);
        test_rmrf(dir);
        free(dir);
}
END_TEST

/* The calls the ring let go of raise the floor of their host only: a call of another host,
 * made before them (its clock behind, within the 60 s allowed, or delivered late), is still
 * taken; a replay of one of the forgotten calls is still refused. */
START_TEST(test_floor_per_host)
{
        char *dir = test_tmpdir();
        char err[512], *p = secret_file(dir, "secret", "0123456789abcdef0123456789abcdef");
        xsign *s = NULL;
        const char *why = NULL;
        struct call early, first, c;
        struct timespec ts = { 0, 3000000 };
        const unsigned n = 16384 + 100;

        ck_assert_int_eq(xsign_load(p, &s, err, sizeof err), 0);
        call_init(&early, 1, NULL);
        ck_assert_int_eq(xsign_make(s, &early.m, early.ts, early.mac), 0);
        nanosleep(&ts, NULL); /* the calls of b below have a later ts than early's */
        call_init(&first, 1, NULL);
        ck_assert_int_eq(xsign_make(s, &first.m, first.ts, first.mac), 0);
        ck_assert_int_gt(strcmp(first.ts, early.ts), 0);
        ck_assert_int_eq(xsign_check(s, &first.m, "b", 1, 1, true, &why), 0);
        for (unsigned i = 2; i <= n; i++) {
                call_init(&c, i, NULL);
                ck_assert_int_eq(xsign_make(s, &c.m, c.ts, c.mac), 0);
                ck_assert_int_eq(xsign_check(s, &c.m, "b", 1, i, true, &why), 0);
        }
        /* b's forgotten first call: refused */
        ck_assert_int_eq(xsign_check(s, &first.m, "b", 1, 1, true, &why), -EACCES);
        ck_assert_ptr_nonnull(strstr(why, "replayed"));
        /* host c's call, signed before b's calls: taken once */
        ck_assert_int_eq(xsign_check(s, &early.m, "c", 1, 1, true, &why), 0);
        ck_assert_int_eq(xsign_check(s, &early.m, "c", 1, 1, true, &why), -EACCES);
        xsign_free(s);
        free(p);
        test_rmrf(dir);
        free(dir);
}
END_TEST

TCase *xsign_tcase(void)
{
        TCase *tc = tcase_create("signed calls");

        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_secret_file);
        tcase_add_test(tc, test_signed_once);
        tcase_add_test(tc, test_replay_bound);
        tcase_add_test(tc, test_floor_per_host);
        return tc;
}
