/* SPDX-License-Identifier: MIT */
/*
 * lib/cluster/dedupe.c: the duplicate filter of the cluster link (doc/cluster.md
 * "Duplicates"): a number that came is seen again as a duplicate, the window slides, a
 * number below it cannot be told, and the origins remembered are bounded.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "cluster/dedupe.h"

TCase *cluster_dedupe_tcase(void);

static int check_s(cluster_dedupe *d, const char *origin, uint64_t n)
{
        return cluster_dedupe_check(d, origin, strlen(origin), n, true);
}

static int check_r(cluster_dedupe *d, const char *origin, uint64_t n)
{
        return cluster_dedupe_check(d, origin, strlen(origin), n, false);
}

START_TEST(test_window)
{
        cluster_dedupe *d = cluster_dedupe_new();
        const uint64_t base = 1733519000000000000ull;

        ck_assert_ptr_nonnull(d);
        ck_assert_int_eq(check_s(d, "hybrid-a", base), CLUSTER_SEQ_NEW);
        ck_assert_int_eq(check_s(d, "hybrid-a", base), CLUSTER_SEQ_SEEN);
        /* another origin's same number is another message */
        ck_assert_int_eq(check_s(d, "hybrid-b", base), CLUSTER_SEQ_NEW);
        /* gaps (messages on topics this host does not take) and an older one inside */
        ck_assert_int_eq(check_s(d, "hybrid-a", base + 5), CLUSTER_SEQ_NEW);
        ck_assert_int_eq(check_s(d, "hybrid-a", base + 3), CLUSTER_SEQ_NEW);
        ck_assert_int_eq(check_s(d, "hybrid-a", base + 3), CLUSTER_SEQ_SEEN);
        ck_assert_int_eq(check_s(d, "hybrid-a", base + 5), CLUSTER_SEQ_SEEN);
        ck_assert_int_eq(check_s(d, "hybrid-a", base + 4), CLUSTER_SEQ_NEW);
        /* a slide of 70 (across a 64-bit word): what came stays seen */
        ck_assert_int_eq(check_s(d, "hybrid-a", base + 75), CLUSTER_SEQ_NEW);
        ck_assert_int_eq(check_s(d, "hybrid-a", base), CLUSTER_SEQ_SEEN);
        ck_assert_int_eq(check_s(d, "hybrid-a", base + 4), CLUSTER_SEQ_SEEN);
        ck_assert_int_eq(check_s(d, "hybrid-a", base + 1), CLUSTER_SEQ_NEW);
        /* the oldest number of the window, then one below it: not known */
        uint64_t hi = base + 2000;
        ck_assert_int_eq(check_s(d, "hybrid-a", hi), CLUSTER_SEQ_NEW);
        ck_assert_int_eq(check_s(d, "hybrid-a", hi - (CLUSTER_DEDUPE_WINDOW - 1)), CLUSTER_SEQ_NEW);
        ck_assert_int_eq(check_s(d, "hybrid-a", hi - (CLUSTER_DEDUPE_WINDOW - 1)), CLUSTER_SEQ_SEEN);
        ck_assert_int_eq(check_s(d, "hybrid-a", hi - CLUSTER_DEDUPE_WINDOW), CLUSTER_SEQ_UNKNOWN);
        ck_assert_int_eq(check_s(d, "hybrid-a", base), CLUSTER_SEQ_UNKNOWN);
        /* a slide past the whole window forgets it */
        ck_assert_int_eq(check_s(d, "hybrid-a", hi + 100000), CLUSTER_SEQ_NEW);
        ck_assert_int_eq(check_s(d, "hybrid-a", hi + 100000 - 1), CLUSTER_SEQ_NEW);
        ck_assert_int_eq(check_s(d, "hybrid-a", hi), CLUSTER_SEQ_UNKNOWN);
        /* far below: a retained message (any old one the broker kept) changes nothing; a
         * live one is a new run of the origin with its clock set back */
        uint64_t top = hi + 100000, back = top - CLUSTER_DEDUPE_RESTART - 5;
        ck_assert_int_eq(check_r(d, "hybrid-a", back), CLUSTER_SEQ_UNKNOWN);
        ck_assert_int_eq(check_s(d, "hybrid-a", top), CLUSTER_SEQ_SEEN);
        ck_assert_int_eq(check_s(d, "hybrid-a", back), CLUSTER_SEQ_NEW);
        ck_assert_int_eq(check_s(d, "hybrid-a", back), CLUSTER_SEQ_SEEN);
        ck_assert_int_eq(check_s(d, "hybrid-a", back + 1), CLUSTER_SEQ_NEW);
        ck_assert_int_eq(check_s(d, "hybrid-a", back + 1), CLUSTER_SEQ_SEEN);
        /* an origin too long to track */
        char longname[CLUSTER_DEDUPE_ORIGIN_MAX + 2];
        memset(longname, 'x', sizeof longname - 1);
        longname[sizeof longname - 1] = 0;
        ck_assert_int_eq(check_s(d, longname, 1), CLUSTER_SEQ_UNKNOWN);
        ck_assert_int_eq(check_s(d, longname, 1), CLUSTER_SEQ_UNKNOWN);
        cluster_dedupe_free(d);
}
END_TEST

START_TEST(test_bound)
{
        cluster_dedupe *d = cluster_dedupe_new();
        char name[32];

        /* 10000 origins (forged by any client of the broker): at most the bound kept */
        for (unsigned i = 0; i < 10000; i++) {
                snprintf(name, sizeof name, "forged-%u", i);
                ck_assert_int_eq(check_s(d, name, 7), CLUSTER_SEQ_NEW);
                ck_assert_uint_le(cluster_dedupe_count(d), CLUSTER_DEDUPE_ORIGINS);
        }
        ck_assert_uint_eq(cluster_dedupe_count(d), CLUSTER_DEDUPE_ORIGINS);
        /* the most recent ones are remembered, the oldest went */
        ck_assert_int_eq(check_s(d, "forged-9999", 7), CLUSTER_SEQ_SEEN);
        ck_assert_int_eq(check_s(d, "forged-0", 7), CLUSTER_SEQ_NEW);
        /* an origin in use stays while others come and go (most recently used first) */
        ck_assert_int_eq(check_s(d, "hybrid-a", 1), CLUSTER_SEQ_NEW);
        for (unsigned i = 0; i < 4 * CLUSTER_DEDUPE_ORIGINS; i++) {
                snprintf(name, sizeof name, "more-%u", i);
                (void)check_s(d, name, 7);
                if (i % 16 == 0)
                        ck_assert_int_eq(check_s(d, "hybrid-a", 2 + i), CLUSTER_SEQ_NEW);
        }
        ck_assert_int_eq(check_s(d, "hybrid-a", 1), CLUSTER_SEQ_SEEN);
        ck_assert_uint_eq(cluster_dedupe_count(d), CLUSTER_DEDUPE_ORIGINS);
        cluster_dedupe_free(d);
}
END_TEST

START_TEST(test_parse)
{
        uint64_t n = 0;
        const char *o = NULL;
        size_t len = 0;

        ck_assert(cluster_dedupe_parse("1733519000000000123 hybrid-a b", &n, &o, &len));
        ck_assert_uint_eq(n, 1733519000000000123ull);
        ck_assert_uint_eq(len, 10);
        ck_assert(memcmp(o, "hybrid-a b", 10) == 0);
        ck_assert(!cluster_dedupe_parse("", &n, &o, &len));
        ck_assert(!cluster_dedupe_parse("12", &n, &o, &len));
        ck_assert(!cluster_dedupe_parse("12 ", &n, &o, &len));
        ck_assert(!cluster_dedupe_parse(" 12 a", &n, &o, &len));
        ck_assert(!cluster_dedupe_parse("-1 a", &n, &o, &len));
        ck_assert(!cluster_dedupe_parse("18446744073709551616 a", &n, &o, &len));
        ck_assert(cluster_dedupe_parse("18446744073709551615 a", &n, &o, &len));
        ck_assert_uint_eq(n, UINT64_MAX);
}
END_TEST

TCase *cluster_dedupe_tcase(void)
{
        TCase *tc = tcase_create("dedupe");

        tcase_add_test(tc, test_window);
        tcase_add_test(tc, test_bound);
        tcase_add_test(tc, test_parse);
        return tc;
}
