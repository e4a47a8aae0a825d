/* SPDX-License-Identifier: MIT */
/* What uids add to the host store over the bus (lib/broker/store-quota.c): the table
 * against a model through thousands of random charges and releases, and the bounds. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker-internal.h"
#include "buspieces.h"

/* The hash of a key text as a caller passes it: every other step the one its parsed fURI
 * carries (as the daemon passes it), else squota_hash of the text (as for a branch write's
 * children): the two must find the same entries. */
static uint64_t key_hash(const char *key, int step)
{
        hyb_furi *f = NULL;
        uint64_t h;

        if (step % 2)
                return squota_hash(key, strlen(key));
        ck_assert_int_eq(hyb_furi_parse(key, strlen(key), NULL, &f, NULL), 0);
        h = hyb_furi_hash(f);
        hyb_furi_unref(f);
        return h;
}

#define H(s) squota_hash((s), strlen(s))

#define N_KEYS 64
#define N_UIDS 3

typedef struct model_key {
        char key[32];
        bool held;
        uid_t uid;
        size_t bytes;
} model_key;

static model_key model[2 * N_KEYS];

static void model_check(hyb_broker *b, int step)
{
        size_t n = 0, total = 0, keys[N_UIDS + 1] = { 0 }, bytes[N_UIDS + 1] = { 0 };

        for (size_t i = 0; i < 2 * N_KEYS; i++)
                if (model[i].held) {
                        n++;
                        total += model[i].bytes;
                        keys[model[i].uid]++;
                        bytes[model[i].uid] += model[i].bytes;
                }
        ck_assert_msg(squota_get_n(b) == n, "step %d: %zu keys, model %zu", step,
                      squota_get_n(b), n);
        for (uid_t u = 1; u <= N_UIDS; u++) {
                size_t k, by, t;

                squota_get_usage(b, u, &k, &by, &t);
                ck_assert_msg(k == keys[u] && by == bytes[u] && t == total,
                              "step %d uid %u: %zu keys %zu bytes of %zu, model %zu %zu of %zu",
                              step, (unsigned)u, k, by, t, keys[u], bytes[u], total);
        }
}

START_TEST(test_store_quota_model)
{
        broker_config cfg;
        hyb_broker b = { 0 };
        unsigned seed = 12345;

        ck_assert_int_eq(broker_config_init(&cfg), 0);
        b.c = &cfg;
        ck_assert_int_eq(squota_new(&b.squota), 0);
        /* /k/i and /k/i/e: a release of the one leaves the other's charge (every entry is a
         * key of its own: what is written into a stored lst/rec is charged to its key) */
        for (size_t i = 0; i < N_KEYS; i++) {
                model[i] = (model_key){ 0 };
                model[N_KEYS + i] = (model_key){ 0 };
                snprintf(model[i].key, sizeof model[i].key, "/k/%zu", i);
                snprintf(model[N_KEYS + i].key, sizeof model[i].key, "/k/%zu/e", i);
        }
        for (int step = 0; step < 20000; step++) {
                size_t i = (size_t)rand_r(&seed) % (2 * N_KEYS);
                model_key *m = &model[i];

                if (rand_r(&seed) % 3) {
                        uid_t uid = (uid_t)(1 + rand_r(&seed) % N_UIDS);
                        size_t vlen = (size_t)rand_r(&seed) % 50;
                        hyb_error e;

                        /* As the daemon writes: checked first (the charge may reuse the
                         * check's look-up), sometimes with another key released in between
                         * (which can move entries: the look-up must not be reused then). */
                        if (step % 4 >= 2) {
                                ck_assert_int_eq(squota_check(&b, uid, m->key, strlen(m->key),
                                                              key_hash(m->key, step), vlen, &e), 0);
                        }
                        if (step % 4 == 3) {
                                size_t j = (size_t)rand_r(&seed) % (2 * N_KEYS);
                                model_key *o = &model[j];

                                if (j != i) {
                                        squota_release(&b, o->key, strlen(o->key), H(o->key));
                                        o->held = false;
                                }
                        }
                        ck_assert_int_eq(squota_charge(&b, uid, m->key, strlen(m->key),
                                                       key_hash(m->key, step), vlen), 0);
                        m->held = true;
                        m->uid = uid;
                        m->bytes = strlen(m->key) + vlen;
                } else {
                        squota_release(&b, m->key, strlen(m->key), key_hash(m->key, step));
                        m->held = false;
                }
                model_check(&b, step);
        }
        squota_free(b.squota);
        broker_config_clear(&cfg);
}
END_TEST

/* The three bounds, what each message names, and what always passes. */
START_TEST(test_store_quota_bounds)
{
        broker_config cfg;
        hyb_broker b = { 0 };
        hyb_error e;

        ck_assert_int_eq(broker_config_init(&cfg), 0);
        cfg.store_uid_max_keys = 2;
        cfg.store_uid_max_bytes = 100;
        cfg.store_max_bytes = 150;
        b.c = &cfg;
        ck_assert_int_eq(squota_new(&b.squota), 0);
        /* "/a" + 48 = 50 bytes for uid 1 */
        ck_assert_int_eq(squota_check(&b, 1, "/a", 2, H("/a"), 48, &e), 0);
        ck_assert_int_eq(squota_charge(&b, 1, "/a", 2, H("/a"), 48), 0);
        ck_assert_int_eq(squota_charge(&b, 1, "/b", 2, H("/b"), 8), 0);
        /* a third key for uid 1 */
        ck_assert_int_eq(squota_check(&b, 1, "/c", 2, H("/c"), 0, &e), HYB_E_INSUFFICIENT_STORAGE);
        ck_assert_msg(strstr(e.message, "quota store.limits.uid_max_keys exceeded"), "%s", e.message);
        /* overwriting its own key is no new key; 60 + 10 > 100 bytes for the uid */
        ck_assert_int_eq(squota_check(&b, 1, "/a", 2, H("/a"), 89, &e), HYB_E_INSUFFICIENT_STORAGE);
        ck_assert_msg(strstr(e.message, "quota store.limits.uid_max_bytes exceeded"), "%s", e.message);
        ck_assert_int_eq(squota_check(&b, 1, "/a", 2, H("/a"), 88, &e), 0);
        /* another uid: its own keys, everyone's bytes (60 held, 150 in all) */
        ck_assert_int_eq(squota_check(&b, 2, "/x", 2, H("/x"), 88, &e), 0);
        ck_assert_int_eq(squota_charge(&b, 2, "/x", 2, H("/x"), 88), 0);
        ck_assert_int_eq(squota_check(&b, 2, "/y", 2, H("/y"), 1, &e), HYB_E_INSUFFICIENT_STORAGE);
        ck_assert_msg(strstr(e.message, "quota store.limits.max_bytes exceeded"), "%s", e.message);
        /* no larger than what it replaces: passes, even with everyone at the bound */
        ck_assert_int_eq(squota_check(&b, 1, "/a", 2, H("/a"), 48, &e), 0);
        /* uid 2 overwrites uid 1's /b (10 bytes): the whole charge moves to the writer */
        ck_assert_int_eq(squota_check(&b, 2, "/b", 2, H("/b"), 8, &e), 0);
        ck_assert_int_eq(squota_charge(&b, 2, "/b", 2, H("/b"), 8), 0);
        {
                size_t k, by, t;
                squota_get_usage(&b, 1, &k, &by, &t);
                ck_assert_uint_eq(k, 1);
                ck_assert_uint_eq(by, 50);
                ck_assert_uint_eq(t, 150);
                squota_get_usage(&b, 2, &k, &by, &t);
                ck_assert_uint_eq(k, 2);
                ck_assert_uint_eq(by, 100);
        }
        /* and uid 2 is at both of its bounds now */
        ck_assert_int_eq(squota_check(&b, 2, "/a", 2, H("/a"), 0, &e), HYB_E_INSUFFICIENT_STORAGE);
        squota_release(&b, "/x", 2, H("/x"));
        ck_assert_int_eq(squota_check(&b, 2, "/y", 2, H("/y"), 1, &e), 0);
        squota_free(b.squota);
        broker_config_clear(&cfg);
}
END_TEST

/* The quota takes a write's key hash from its parsed fURI: that hash is squota_hash of the
 * fURI's path text (the key the quota keeps) for every form of key a peer may send. */
START_TEST(test_store_quota_furi_hash)
{
        static const char *const texts[] = {
                "/a", "/sensors/room3/dev7/m12", "/a/b/", "/a/b%2Fc", "/a/b?sub", "/a b/c",
                "rel/x", "~/home/k", "//host/a/b", "bus://user@host:7/k", "/caf%C3%A9/x",
                "/a/+/c", "/a/#", "/x/1/",
        };

        for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
                hyb_furi *f = NULL;
                const char *path;

                ck_assert_msg(hyb_furi_parse(texts[i], strlen(texts[i]), NULL, &f, NULL) == 0,
                              "%s does not parse", texts[i]);
                path = hyb_furi_get_path_str(f);
                ck_assert_msg(hyb_furi_hash(f) == squota_hash(path, strlen(path)),
                              "%s: the fURI's hash is not the quota's hash of %s", texts[i], path);
                hyb_furi_unref(f);
        }
}
END_TEST

TCase *bp_store_quota_tcase(void)
{
        TCase *tc = tcase_create("store-quota");

        tcase_add_test(tc, test_store_quota_model);
        tcase_add_test(tc, test_store_quota_bounds);
        tcase_add_test(tc, test_store_quota_furi_hash);
        return tc;
}
