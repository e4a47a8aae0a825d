/* SPDX-License-Identifier: MIT */
/*
 * The one Check runner: every suite of tests/suites.h, so the log shows a
 * single "100%: Checks: N, Failures: 0, Errors: 0" line.  Check itself
 * honours CK_RUN_SUITE=furi / CK_RUN_CASE=... to run a part.
 */
#include <stdlib.h>

#include "suites.h"

int main(void)
{
        SRunner *sr = srunner_create(NULL);
        int failed;

#define HYB_X_ADD(fn) srunner_add_suite(sr, fn());
        HYB_SUITES(HYB_X_ADD)
#undef HYB_X_ADD

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
