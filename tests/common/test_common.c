/* SPDX-License-Identifier: MIT */
/* hybrid/common.h: error codes, names, status mapping, hyb_error. */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "common/util.h"
#include "hybrid/common.h"
#include "suites.h"

/* The one conversion of a deadline and a relative wait to a poll(2) timeout. */
START_TEST(test_deadline_poll_ms)
{
        uint64_t now = hyb_now_usec();
        int ms;

        ck_assert_int_eq(deadline_poll_ms(UINT64_MAX, UINT64_MAX), -1); /* forever */
        ck_assert_int_eq(deadline_poll_ms(0, UINT64_MAX), 0);           /* passed */
        ck_assert_int_eq(deadline_poll_ms(UINT64_MAX, 0), 0);
        ck_assert_int_eq(deadline_poll_ms(UINT64_MAX, 1), 1);            /* rounded up */
        ck_assert_int_eq(deadline_poll_ms(UINT64_MAX, 2500), 3);
        ck_assert_int_eq(deadline_poll_ms(UINT64_MAX, 7200000000u), 3600000); /* an hour */
        ms = deadline_poll_ms(now + 5000000, UINT64_MAX); /* 5 s ahead, read a moment later */
        ck_assert_int_le(ms, 5000);
        ck_assert_int_gt(ms, 4000);
        ck_assert_int_eq(deadline_poll_ms(now + 5000000, 2000), 2); /* the nearer of the two */
}
END_TEST

START_TEST(test_strerror_every_code)
{
        /* Every code of the X-macro has a distinct name and a non-generic message. */
        static const int codes[] = {
#define X(name, value, msg) value,
                HYB_ERRORS(X)
#undef X
        };
        for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
                ck_assert_str_ne(hyb_strerror(codes[i]), "Unknown error");
                ck_assert_str_ne(hyb_err_name(codes[i]), "UNKNOWN");
                for (size_t j = 0; j < i; j++)
                        ck_assert_int_ne(codes[i], codes[j]);
                ck_assert_int_lt(codes[i], -4096);
        }
}
END_TEST

START_TEST(test_names)
{
        ck_assert_str_eq(hyb_err_name(0), "OK");
        ck_assert_str_eq(hyb_err_name(HYB_E_NOT_FOUND), "HYB_E_NOT_FOUND");
        ck_assert_str_eq(hyb_err_name(-ENOMEM), "ENOMEM");
        ck_assert_str_eq(hyb_err_name(-(HYB_E_BASE + 999)), "UNKNOWN");
        ck_assert_str_eq(hyb_strerror(HYB_E_CALLEE_TIMEOUT), "Callee Timeout");
        ck_assert_str_eq(hyb_strerror(-EINVAL), strerror(EINVAL));
        ck_assert_str_eq(hyb_strerror(0), "Success");
}
END_TEST

START_TEST(test_status_mapping)
{
        /* hiBus numbering both ways. */
        ck_assert_int_eq(hyb_err_to_status(HYB_E_BAD_REQUEST), 400);
        ck_assert_int_eq(hyb_err_to_status(HYB_E_CALLEE_TIMEOUT), 504);
        ck_assert_int_eq(hyb_err_to_status(HYB_E_INSUFFICIENT_STORAGE), 507);
        ck_assert_int_eq(hyb_err_to_status(0), 200);
        ck_assert_int_eq(hyb_err_to_status(-ENOMEM), 507);
        ck_assert_int_eq(hyb_err_to_status(HYB_E_PARSE), 400);
        ck_assert_int_eq(hyb_err_to_status(HYB_E_READ_ONLY), 403);  /* a read-only store */
        ck_assert_int_eq(hyb_err_to_status(-ENOSPC), 507);          /* disk full */
        ck_assert_str_eq(hyb_err_name(HYB_E_CORRUPT), "HYB_E_CORRUPT");
        ck_assert_int_eq(hyb_err_from_status(200), 0);
        ck_assert_int_eq(hyb_err_from_status(202), 0);
        ck_assert_int_eq(hyb_err_from_status(403), HYB_E_FORBIDDEN);
        ck_assert_int_eq(hyb_err_from_status(502), HYB_E_BAD_CALLEE);
        ck_assert_int_eq(hyb_err_from_status(499), HYB_E_INTERNAL);
}
END_TEST

START_TEST(test_error_clear)
{
        hyb_error e;

        memset(&e, 0x55, sizeof(e));
        hyb_error_clear(&e);
        ck_assert_int_eq(e.code, 0);
        ck_assert_int_eq(e.offset, -1);
        ck_assert_str_eq(e.message, "");
        hyb_error_clear(NULL);
        hyb_free(NULL);
        ck_assert_str_eq(hyb_version(), "0.1.0");
}
END_TEST

Suite *common_suite(void)
{
        Suite *s = suite_create("common");
        TCase *tc = tcase_create("errors");

        tcase_add_test(tc, test_deadline_poll_ms);
        tcase_add_test(tc, test_strerror_every_code);
        tcase_add_test(tc, test_names);
        tcase_add_test(tc, test_status_mapping);
        tcase_add_test(tc, test_error_clear);
        suite_add_tcase(s, tc);
        return s;
}
