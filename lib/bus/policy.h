/* SPDX-License-Identifier: MIT */
/*
 * Argument policies (hybrid/endpoint.h) checked on an already parsed params
 * object: shared by the client library, which checks a call before its
 * handler runs, and the broker, whose builtin methods are described by the
 * same kind of table.
 */
#ifndef HYB_BUS_POLICY_H
#define HYB_BUS_POLICY_H

#include <stddef.h>

#include <jansson.h>

#include "hybrid/endpoint.h"

/*
 * Checks the params object j against args[0..n-1]: 0 when every required
 * key is present and every listed key has its type; HYB_E_BAD_REQUEST with a
 * message naming the key otherwise (also when j is not an object).
 */
int bus_policy_check_json(const hyb_arg_policy *args, size_t n, const json_t *j, hyb_error *reterr);

#endif
