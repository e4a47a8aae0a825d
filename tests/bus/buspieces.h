/* SPDX-License-Identifier: MIT */
/* The buspieces suite (names, access lists, broker config, store quotas) spans four files. */
#ifndef HYB_TEST_BUSPIECES_H
#define HYB_TEST_BUSPIECES_H

#include <check.h>
#include <stddef.h>

/* Decodes a data-file field: "<c*N>" is N copies of c, "\xNN" one byte.  Caller frees. */
char *bp_decode(const char *in, size_t *ret_len);
/* Splits line at TABs into at most max fields (empty fields kept); returns the count. */
int bp_split(char *line, char **fields, int max);

TCase *bp_names_tcase(void);
TCase *bp_names_data_tcase(void);
TCase *bp_acl_tcase(void);
TCase *bp_acl_data_tcase(void);
TCase *bp_config_tcase(void);
TCase *bp_config_limits_tcase(void);
TCase *bp_config_policy_tcase(void);
TCase *bp_store_quota_tcase(void);
TCase *bp_ws_tcase(void); /* test_bus_ws.c: the client's WebSocket pieces */

#endif
