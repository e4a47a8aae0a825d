/* SPDX-License-Identifier: MIT */
/*
 * The revocation feed: signed entries (forgeries refused), the sequence rules
 * (applied, replay and rollback ignored, gap reported), each kind of handle
 * as the verifier's hook, and persistence in a store across a reload.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hybrid/obj.h"
#include "hybrid/store.h"
#include "hybrid/token.h"
#include "suites.h"
#include "testutil.h"
#include "token/token-internal.h"
#include "token_test.h"

#define NOW TOKEN_TEST_NOW
#define AUD TOKEN_TEST_AUD

static hyb_key *issuer, *other, *stranger, *holder, *holder2;
static hyb_token_trust *trust;

static void setup(void)
{
        ck_assert_int_eq(hyb_key_generate(&issuer), 0);
        ck_assert_int_eq(hyb_key_generate(&other), 0);
        ck_assert_int_eq(hyb_key_generate(&stranger), 0);
        ck_assert_int_eq(hyb_key_generate(&holder), 0);
        ck_assert_int_eq(hyb_key_generate(&holder2), 0);
        trust = token_test_trust(issuer, other);
}

static void teardown(void)
{
        hyb_key_unref(issuer);
        hyb_key_unref(other);
        hyb_key_unref(stranger);
        hyb_key_unref(holder);
        hyb_key_unref(holder2);
        hyb_token_trust_unref(trust);
}

static char *entry_by(const hyb_key *key, uint64_t seq, const char *jti, uint64_t min_epo)
{
        hyb_token_feed_rev rev;
        hyb_error e = {0};
        char *out = NULL;

        hyb_token_feed_rev_init(&rev);
        rev.seq = seq;
        rev.now = NOW;
        rev.jti = jti;
        rev.min_epo = min_epo;
        ck_assert_msg(hyb_token_feed_entry_make(key, &rev, &out, &e) == 0, "make: %s", e.message);
        return out;
}

static char *entry(uint64_t seq, const char *jti)
{
        return entry_by(issuer, seq, jti, 0);
}

/* A block with the given header and claims, signed by key (what an attacker can make). */
static char *raw_entry(const hyb_key *key, const char *hdr_json, const char *claims_json)
{
        json_t *h = json_loads(hdr_json, 0, NULL), *c = json_loads(claims_json, 0, NULL);
        char *out = NULL;

        ck_assert_ptr_nonnull(h);
        ck_assert_ptr_nonnull(c);
        ck_assert_int_eq(token_block_make(key, h, c, &out), 0);
        json_decref(h);
        json_decref(c);
        return out;
}

static char *issue_token(uint64_t epo, unsigned dlg)
{
        static const hyb_token_cap caps[] = {{"/home/#", HYB_TOKEN_ACT_READ}};

        return token_test_issue(issuer, holder, caps, 1, dlg, 0, epo);
}

/* hyb_token_verify with the feed as the revocation hook: 0 or HYB_E_UNAUTHORIZED. */
static int verify_with(hyb_token_feed *feed, const char *tok)
{
        hyb_token_verify_opts o;
        hyb_token_result *r = NULL;
        int ret;

        hyb_token_verify_opts_init(&o);
        o.audience = AUD;
        o.now = NOW;
        o.revoked = hyb_token_feed_revoked;
        o.userdata = feed;
        ret = hyb_token_verify(tok, trust, &o, &r, NULL);
        ck_assert(ret == 0 ? r != NULL : r == NULL);
        hyb_token_result_unref(r);
        return ret;
}

static int apply(hyb_token_feed *f, char *text)
{
        hyb_error e = {0};
        int r = hyb_token_feed_apply(f, text, NULL, &e);

        hyb_free(text);
        return r;
}

static hyb_token_feed *new_feed(void)
{
        hyb_token_feed *f = NULL;

        ck_assert_int_eq(hyb_token_feed_new(trust, &f), 0);
        return f;
}

START_TEST(test_entry_roundtrip)
{
        char *e1 = entry(7, "abc"), *json = NULL;
        json_t *j;

        ck_assert_int_eq(hyb_token_feed_entry_verify(e1, trust, &json, NULL), 0);
        j = json_loads(json, 0, NULL);
        ck_assert_ptr_nonnull(j);
        ck_assert_int_eq(json_integer_value(json_object_get(j, "seq")), 7);
        ck_assert_int_eq(json_integer_value(json_object_get(j, "iat")), NOW);
        ck_assert_str_eq(json_string_value(json_object_get(j, "jti")), "abc");
        ck_assert_str_eq(json_string_value(json_object_get(j, "iss")), "hub");
        ck_assert_str_eq(json_string_value(json_object_get(j, "kid")), hyb_key_get_kid(issuer));
        json_decref(j);
        hyb_free(json);
        hyb_free(e1);
}
END_TEST

START_TEST(test_make_arguments)
{
        hyb_token_feed_rev rev;
        hyb_key *pub = NULL;
        char *pem = NULL, *out = NULL;

        hyb_token_feed_rev_init(&rev);
        rev.seq = 1;
        /* nothing named */
        ck_assert_int_eq(hyb_token_feed_entry_make(issuer, &rev, &out, NULL), -EINVAL);
        rev.holder_kid = "not-a-thumbprint";
        ck_assert_int_eq(hyb_token_feed_entry_make(issuer, &rev, &out, NULL), -EINVAL);
        rev.holder_kid = hyb_key_get_kid(holder);
        rev.seq = 0;
        ck_assert_int_eq(hyb_token_feed_entry_make(issuer, &rev, &out, NULL), -EINVAL);
        rev.seq = 1;
        ck_assert_int_eq(hyb_key_to_pem(issuer, HYB_KEY_EXPORT_PUBLIC, &pem), 0);
        ck_assert_int_eq(hyb_key_load_memory(pem, strlen(pem), &pub, NULL), 0);
        ck_assert_int_eq(hyb_token_feed_entry_make(pub, &rev, &out, NULL), -ENOKEY);
        ck_assert_ptr_null(out);
        ck_assert_int_eq(hyb_token_feed_entry_make(issuer, &rev, &out, NULL), 0);
        ck_assert_int_eq(hyb_token_feed_entry_verify(out, trust, NULL, NULL), 0);
        hyb_free(out);
        hyb_free(pem);
        hyb_key_unref(pub);
}
END_TEST

/* Every forged or malformed entry: HYB_E_UNAUTHORIZED, and the feed does not move. */
START_TEST(test_forgery)
{
        hyb_token_feed *f = new_feed();
        char hdr[200], hdr_other[200], *good = entry(1, "victim"), *bad, *two;
        const char *kid = hyb_key_get_kid(issuer);
        hyb_error e = {0};

        snprintf(hdr, sizeof hdr, "{\"alg\":\"ES256\",\"typ\":\"hyb-rev+jwt\",\"kid\":\"%s\"}",
                 kid);
        /* signed by a key nobody trusts, naming it (or naming the issuer's kid) */
        ck_assert_int_eq(apply(f, entry_by(stranger, 1, "victim", 0)), HYB_E_UNAUTHORIZED);
        ck_assert_int_eq(apply(f, raw_entry(stranger, hdr,
                                            "{\"v\":1,\"seq\":1,\"iat\":1,"
                                            "\"jti\":\"victim\"}")),
                         HYB_E_UNAUTHORIZED);
        /* every character of a good entry flipped */
        for (size_t i = 0; good[i]; i++) {
                char *copy = strdup(good);

                copy[i] = copy[i] == 'A' ? 'B' : 'A';
                ck_assert_int_eq(hyb_token_feed_apply(f, copy, NULL, NULL), HYB_E_UNAUTHORIZED);
                free(copy);
        }
        /* the header template: the token types, another alg, an extra member */
        snprintf(hdr_other, sizeof hdr_other,
                 "{\"alg\":\"ES256\",\"typ\":\"hyb-auth+jwt\",\"kid\":\"%s\"}", kid);
        ck_assert_int_eq(apply(f, raw_entry(issuer, hdr_other,
                                            "{\"v\":1,\"seq\":1,\"iat\":1,"
                                            "\"jti\":\"victim\"}")),
                         HYB_E_UNAUTHORIZED);
        snprintf(hdr_other, sizeof hdr_other,
                 "{\"alg\":\"ES384\",\"typ\":\"hyb-rev+jwt\",\"kid\":\"%s\"}", kid);
        ck_assert_int_eq(apply(f, raw_entry(issuer, hdr_other,
                                            "{\"v\":1,\"seq\":1,\"iat\":1,"
                                            "\"jti\":\"victim\"}")),
                         HYB_E_UNAUTHORIZED);
        snprintf(hdr_other, sizeof hdr_other,
                 "{\"alg\":\"ES256\",\"typ\":\"hyb-rev+jwt\",\"kid\":\"%s\",\"jku\":\"x\"}", kid);
        ck_assert_int_eq(apply(f, raw_entry(issuer, hdr_other,
                                            "{\"v\":1,\"seq\":1,\"iat\":1,"
                                            "\"jti\":\"victim\"}")),
                         HYB_E_UNAUTHORIZED);
        /* claims: extra member, nothing named, seq 0, float or string seq, bad hash, v 2 */
        static const char *const claims[] = {
                "{\"v\":1,\"seq\":1,\"iat\":1,\"jti\":\"victim\",\"cap\":[]}",
                "{\"v\":1,\"seq\":1,\"iat\":1}",
                "{\"v\":1,\"seq\":0,\"iat\":1,\"jti\":\"victim\"}",
                "{\"v\":1,\"seq\":1.0,\"iat\":1,\"jti\":\"victim\"}",
                "{\"v\":1,\"seq\":\"1\",\"iat\":1,\"jti\":\"victim\"}",
                "{\"v\":1,\"seq\":1,\"iat\":1,\"holder\":\"short\"}",
                "{\"v\":2,\"seq\":1,\"iat\":1,\"jti\":\"victim\"}",
                "{\"v\":1,\"seq\":1,\"jti\":\"victim\"}",
                "{\"v\":1,\"seq\":1,\"iat\":1,\"min_epo\":0}",
        };
        for (size_t i = 0; i < sizeof claims / sizeof *claims; i++) {
                bad = raw_entry(issuer, hdr, claims[i]);
                ck_assert_msg(hyb_token_feed_apply(f, bad, NULL, &e) == HYB_E_UNAUTHORIZED,
                              "claims %zu accepted", i);
                hyb_free(bad);
        }
        /* two blocks */
        two = malloc(2 * strlen(good) + 2);
        sprintf(two, "%s~%s", good, good);
        ck_assert_int_eq(hyb_token_feed_apply(f, two, NULL, NULL), HYB_E_UNAUTHORIZED);
        free(two);
        ck_assert_uint_eq(hyb_token_feed_get_seq(f), 0);
        /* the good one still applies: nothing above changed the feed */
        ck_assert_int_eq(hyb_token_feed_apply(f, good, NULL, NULL), HYB_TOKEN_FEED_APPLIED);
        ck_assert_uint_eq(hyb_token_feed_get_seq(f), 1);
        hyb_free(good);
        hyb_token_feed_unref(f);
}
END_TEST

START_TEST(test_sequence)
{
        hyb_token_feed *f = new_feed();
        hyb_token_ids ids = {0};
        char *text = NULL, *e2 = entry(2, "two");
        uint64_t seq = 0;

        ck_assert_int_eq(hyb_token_feed_get_entry(f, 1, &text, NULL), -ENOENT);
        /* a gap: seq 2 on an empty feed is reported and not applied */
        ck_assert_int_eq(hyb_token_feed_apply(f, e2, &seq, NULL), HYB_TOKEN_FEED_GAP);
        ck_assert_uint_eq(seq, 2);
        ck_assert_uint_eq(hyb_token_feed_get_seq(f), 0);
        ids.jti = "two";
        ck_assert_int_eq(hyb_token_feed_revoked(f, &ids), 0);
        ck_assert_int_eq(apply(f, entry(1, "one")), HYB_TOKEN_FEED_APPLIED);
        /* the missing entry came: now 2 applies */
        ck_assert_int_eq(hyb_token_feed_apply(f, e2, NULL, NULL), HYB_TOKEN_FEED_APPLIED);
        ck_assert_int_eq(hyb_token_feed_revoked(f, &ids), 1);
        /* replay of 2, rollback to another 1 and another 2: ignored */
        ck_assert_int_eq(hyb_token_feed_apply(f, e2, NULL, NULL), HYB_TOKEN_FEED_OLD);
        ck_assert_int_eq(apply(f, entry(1, "rolled")), HYB_TOKEN_FEED_OLD);
        ck_assert_int_eq(apply(f, entry_by(other, 2, "rolled2", 0)), HYB_TOKEN_FEED_OLD);
        ids.jti = "rolled";
        ck_assert_int_eq(hyb_token_feed_revoked(f, &ids), 0);
        ids.jti = "rolled2";
        ck_assert_int_eq(hyb_token_feed_revoked(f, &ids), 0);
        ck_assert_uint_eq(hyb_token_feed_get_seq(f), 2);
        /* entries of any trusted issuer share one sequence */
        ck_assert_int_eq(apply(f, entry_by(other, 3, "three", 0)), HYB_TOKEN_FEED_APPLIED);
        ck_assert_int_eq(hyb_token_feed_get_entry(f, 2, &text, NULL), 0);
        ck_assert_str_eq(text, e2);
        hyb_free(text);
        ck_assert_int_eq(hyb_token_feed_get_entry(f, 3, NULL, &text), 0);
        ck_assert_ptr_nonnull(strstr(text, "\"jti\":\"three\""));
        ck_assert_ptr_nonnull(strstr(text, "\"iss\":\"other\""));
        ck_assert_ptr_nonnull(strstr(text, "\"seq\":3"));
        hyb_free(text);
        ck_assert_int_eq(hyb_token_feed_get_entry(f, 4, &text, NULL), -ENOENT);
        hyb_free(e2);
        hyb_token_feed_unref(f);
}
END_TEST

START_TEST(test_each_handle)
{
        hyb_token_feed *f = new_feed();
        hyb_token_feed_rev rev;
        hyb_token_attenuate_opts ao;
        char *t = issue_token(0, 1), *t_att = NULL, *text = NULL, *json = NULL, *other_tok;
        hyb_token_result *res = NULL;
        hyb_token_verify_opts vo;
        json_t *j;
        uint64_t seq = 0;

        /* by jti */
        hyb_token_verify_opts_init(&vo);
        vo.audience = AUD;
        vo.now = NOW;
        ck_assert_int_eq(hyb_token_verify(t, trust, &vo, &res, NULL), 0);
        ck_assert_int_eq(verify_with(f, t), 0);
        other_tok = issue_token(0, 0);
        ck_assert_int_eq(apply(f, entry(++seq, hyb_token_result_get_jti(res))), 0);
        ck_assert_int_eq(verify_with(f, t), HYB_E_UNAUTHORIZED);
        ck_assert_int_eq(verify_with(f, other_tok), 0);
        hyb_token_result_unref(res);
        hyb_free(t);

        /* by the signature hash of an attenuation block: the parent token stays valid */
        t = issue_token(0, 1);
        hyb_token_attenuate_opts_init(&ao);
        ao.holder = holder2;
        ao.now = NOW;
        ck_assert_int_eq(hyb_token_attenuate(t, holder, &ao, &t_att, NULL), 0);
        ck_assert_int_eq(hyb_token_inspect(t_att, &json, NULL), 0);
        j = json_loads(json, 0, NULL);
        {
                /* the hash of block 0's signature is block 1's prv */
                const char *prv = json_string_value(json_object_get(
                        json_object_get(json_array_get(json_object_get(j, "blocks"), 1), "claims"),
                        "prv"));

                ck_assert_ptr_nonnull(prv);
                hyb_token_feed_rev_init(&rev);
                rev.seq = ++seq;
                rev.sig_hash = prv;
                ck_assert_int_eq(hyb_token_feed_entry_make(issuer, &rev, &text, NULL), 0);
        }
        json_decref(j);
        hyb_free(json);
        ck_assert_int_eq(verify_with(f, t), 0);
        ck_assert_int_eq(apply(f, text), 0);
        ck_assert_int_eq(verify_with(f, t), HYB_E_UNAUTHORIZED);
        ck_assert_int_eq(verify_with(f, t_att), HYB_E_UNAUTHORIZED);
        ck_assert_int_eq(verify_with(f, other_tok), 0);
        hyb_free(t);
        hyb_free(t_att);

        /* by holder key: every token holder2 holds, at any block */
        t = issue_token(0, 1);
        ck_assert_int_eq(hyb_token_attenuate(t, holder, &ao, &t_att, NULL), 0);
        ck_assert_int_eq(verify_with(f, t_att), 0);
        hyb_token_feed_rev_init(&rev);
        rev.seq = ++seq;
        rev.holder_kid = hyb_key_get_kid(holder2);
        ck_assert_int_eq(hyb_token_feed_entry_make(issuer, &rev, &text, NULL), 0);
        ck_assert_int_eq(apply(f, text), 0);
        ck_assert_int_eq(verify_with(f, t_att), HYB_E_UNAUTHORIZED);
        ck_assert_int_eq(verify_with(f, t), 0); /* held by holder, not holder2 */
        hyb_free(t);
        hyb_free(t_att);

        /* by minimum epoch: only the signing issuer's tokens below it */
        t = issue_token(4, 0);
        ck_assert_int_eq(apply(f, entry_by(other, ++seq, NULL, 9)), 0);
        ck_assert_int_eq(verify_with(f, t), 0);
        ck_assert_int_eq(apply(f, entry_by(issuer, ++seq, NULL, 4)), 0);
        ck_assert_int_eq(verify_with(f, t), 0); /* epo 4 is not below 4 */
        ck_assert_int_eq(apply(f, entry_by(issuer, ++seq, NULL, 5)), 0);
        ck_assert_int_eq(verify_with(f, t), HYB_E_UNAUTHORIZED);
        hyb_free(t);
        t = issue_token(5, 0);
        ck_assert_int_eq(verify_with(f, t), 0);
        /* a lower floor later does not lift the higher one */
        ck_assert_int_eq(apply(f, entry_by(issuer, ++seq, NULL, 2)), 0);
        hyb_free(t);
        t = issue_token(4, 0);
        ck_assert_int_eq(verify_with(f, t), HYB_E_UNAUTHORIZED);
        hyb_free(t);

        /* by issuer key: everything it signed */
        t = issue_token(9, 0);
        ck_assert_int_eq(verify_with(f, t), 0);
        hyb_token_feed_rev_init(&rev);
        rev.seq = ++seq;
        rev.issuer_kid = hyb_key_get_kid(issuer);
        ck_assert_int_eq(hyb_token_feed_entry_make(other, &rev, &text, NULL), 0);
        ck_assert_int_eq(apply(f, text), 0);
        ck_assert_int_eq(verify_with(f, t), HYB_E_UNAUTHORIZED);
        ck_assert_int_eq(verify_with(f, other_tok), HYB_E_UNAUTHORIZED);
        hyb_free(t);
        hyb_free(other_tok);
        hyb_token_feed_unref(f);
}
END_TEST

START_TEST(test_persistence)
{
        char *dir = test_tmpdir(), path[512], *text = NULL;
        hyb_store *st = NULL;
        hyb_token_feed *f = new_feed(), *g;
        hyb_token_ids ids = {0};
        hyb_obj *o = NULL;
        hyb_error e = {0};

        snprintf(path, sizeof path, "%s/host.db", dir);
        ck_assert_int_eq(hyb_store_open(path, NULL, &st, NULL), 0);
        ck_assert_msg(hyb_token_feed_attach_store(f, st, &e) == 0, "%s", e.message);
        ck_assert_int_eq(hyb_token_feed_attach_store(f, st, NULL), -EBUSY);
        ck_assert_int_eq(apply(f, entry(1, "one")), 0);
        ck_assert_int_eq(apply(f, entry(2, "two")), 0);
        ck_assert_int_eq(apply(f, entry(4, "gap")), HYB_TOKEN_FEED_GAP);
        ck_assert_int_eq(hyb_store_read_str(st, "/sys/token/feed/2", &o, NULL), 0);
        ck_assert_int_eq(hyb_token_feed_get_entry(f, 2, &text, NULL), 0);
        ck_assert_str_eq(hyb_obj_get_str(o, NULL), text);
        hyb_obj_unref(o);
        hyb_free(text);
        ck_assert_int_eq(hyb_store_read_str(st, "/sys/token/feed/4", &o, NULL), 0);
        ck_assert_ptr_null(hyb_obj_get_str(o, NULL));
        hyb_obj_unref(o);
        hyb_token_feed_unref(f);
        hyb_store_unref(st);

        /* a new process: the feed comes back from the store */
        ck_assert_int_eq(hyb_store_open(path, NULL, &st, NULL), 0);
        g = new_feed();
        ck_assert_msg(hyb_token_feed_attach_store(g, st, &e) == 0, "%s", e.message);
        ck_assert_uint_eq(hyb_token_feed_get_seq(g), 2);
        ids.jti = "two";
        ck_assert_int_eq(hyb_token_feed_revoked(g, &ids), 1);
        ck_assert_int_eq(apply(g, entry(2, "two-again")), HYB_TOKEN_FEED_OLD);
        ck_assert_int_eq(apply(g, entry(3, "three")), 0);
        hyb_token_feed_unref(g);

        /* a stored entry replaced by a forgery: the load stops before it, fail closed */
        {
                char *forged = entry_by(stranger, 2, "two", 0);

                ck_assert_int_eq(hyb_obj_new_str(forged, strlen(forged), &o), 0);
                ck_assert_int_eq(hyb_store_write_str(st, "/sys/token/feed/2", o, 0, NULL), 0);
                hyb_obj_unref(o);
                hyb_free(forged);
        }
        g = new_feed();
        ck_assert_int_eq(hyb_token_feed_attach_store(g, st, &e), HYB_E_UNAUTHORIZED);
        ck_assert_ptr_nonnull(strstr(e.message, "/sys/token/feed/2"));
        ck_assert_uint_eq(hyb_token_feed_get_seq(g), 1);
        hyb_token_feed_unref(g);
        hyb_store_unref(st);
        hyb_error_clear(&e);
        test_rmrf(dir);
        free(dir);
}
END_TEST

START_TEST(test_revoked_arguments)
{
        hyb_token_feed *f = new_feed();

        ck_assert_int_lt(hyb_token_feed_revoked(NULL, &(hyb_token_ids){0}), 0);
        ck_assert_int_lt(hyb_token_feed_revoked(f, NULL), 0);
        ck_assert_int_eq(hyb_token_feed_apply(f, NULL, NULL, NULL), -EINVAL);
        ck_assert_int_eq(hyb_token_feed_new(NULL, &f), -EINVAL);
        hyb_token_feed_unref(f);
}
END_TEST

Suite *token_feed_suite(void)
{
        Suite *s = suite_create("token_feed");
        TCase *tc = tcase_create("feed");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_entry_roundtrip);
        tcase_add_test(tc, test_make_arguments);
        tcase_add_test(tc, test_forgery);
        tcase_add_test(tc, test_sequence);
        tcase_add_test(tc, test_each_handle);
        tcase_add_test(tc, test_persistence);
        tcase_add_test(tc, test_revoked_arguments);
        suite_add_tcase(s, tc);
        return s;
}
