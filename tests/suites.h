/* SPDX-License-Identifier: MIT */
/* Every Check suite of the one test runner; each module's test file defines one. */
#ifndef HYB_TEST_SUITES_H
#define HYB_TEST_SUITES_H

#include <check.h>

#define HYB_SUITES(X) \
        X(common_suite) \
        X(furi_suite) \
        X(obj_suite) \
        X(buspieces_suite) \
        X(store_suite) \
        X(store_damage_suite) \
        X(backend_suite) \
        X(store_code_suite) \
        X(bus_suite) \
        X(mmadt_suite) \
        X(conformance_suite) \
        X(boot_suite) \
        X(token_crypto_suite) \
        X(token_keys_suite) \
        X(token_suite) \
        X(token_feed_suite) \
        X(token_proof_suite) \
        X(token_idlog_suite) \
        X(edge_suite) \
        X(edge_tls_suite) \
        X(xhost_suite) \
        HYB_CLUSTER_SUITES(X)

#ifdef HYB_HAVE_CLUSTER
#define HYB_CLUSTER_SUITES(X) X(cluster_suite)
#else
#define HYB_CLUSTER_SUITES(X)
#endif

#define HYB_X_DECL(fn) Suite *fn(void);
HYB_SUITES(HYB_X_DECL)
#undef HYB_X_DECL

#endif
