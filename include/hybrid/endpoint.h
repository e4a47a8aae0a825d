/* SPDX-License-Identifier: MIT */
/*
 * hybrid/endpoint.h - declarative method tables (ubus UBUS_METHOD, sd-bus vtable).
 *
 * An endpoint describes its procedures in a static table; each entry names the
 * method, its handler, its argument policy, its access lists and flags.  The
 * library registers every method with the broker (builtin registerProcedure,
 * policies included so listProcedures shows them) and checks the policy on
 * every incoming call BEFORE the handler runs: a params body that is not a JSON
 * object, lacks a required key or has a key of the wrong type is answered 400
 * with a message naming the key, and the handler never sees it.
 *
 *   static const hyb_arg_policy set_args[] = {
 *           { "name",  HYB_JSON_STRING,  1 },
 *           { "level", HYB_JSON_INTEGER, 0 },
 *   };
 *   static const hyb_method_def lights[] = {
 *           HYB_METHOD("set", on_set, set_args),
 *           HYB_METHOD_NOARGS("status", on_status),
 *   };
 *   hyb_endpoint_register_table(bus, lights, sizeof lights[0], 2, NULL, &slot, &err);
 *
 * The table is stamped with its element size so the struct can grow (new
 * members are appended; older callers pass the smaller size).
 */
#ifndef HYBRID_ENDPOINT_H
#define HYBRID_ENDPOINT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include <hybrid/common.h>
#include <hybrid/bus.h>

#ifdef __cplusplus
extern "C" {
#endif

/* JSON types of a policy entry. */
typedef enum hyb_json_type {
        HYB_JSON_ANY = 0,
        HYB_JSON_STRING = 1,
        HYB_JSON_INTEGER = 2,
        HYB_JSON_NUMBER = 3, /* integer or real */
        HYB_JSON_BOOLEAN = 4,
        HYB_JSON_OBJECT = 5,
        HYB_JSON_ARRAY = 6,
        HYB_JSON_NULL = 7,
        _HYB_JSON_FORCE_32BIT = 0x7fffffff, /* keeps the enum 32 bits wide in structs */
} hyb_json_type;

/* One key of an argument policy; keys not listed are allowed. */
typedef struct hyb_arg_policy {
        const char *key;
        hyb_json_type type; /* HYB_JSON_* */
        int required; /* 1: the key must be present */
} hyb_arg_policy;

/* Method flags. */
typedef enum hyb_method_flags {
        HYB_METHOD_BINARY = 0x1, /* binary params are accepted (the policy then is not checked) */
} hyb_method_flags;

typedef struct hyb_method_def {
        const char *name;           /* identifier: [A-Za-z_][A-Za-z0-9_]* */
        hyb_bus_method_fn handler;  /* called with the table's userdata */
        const hyb_arg_policy *args; /* may be NULL when n_args is 0 */
        size_t n_args;
        const char *for_host;       /* access list, NULL = "*" */
        const char *for_app;        /* access list, NULL = "*" */
        unsigned flags;             /* HYB_METHOD_* */
} hyb_method_def;

/* Convenience initialisers (plain struct initialisers work the same). */
#define HYB_METHOD(n, h, policy) { (n), (h), (policy), sizeof(policy) / sizeof((policy)[0]), NULL, NULL, 0 }
#define HYB_METHOD_NOARGS(n, h) { (n), (h), NULL, 0, NULL, NULL, 0 }
#define HYB_METHOD_ACL(n, h, policy, hosts, apps) \
        { (n), (h), (policy), sizeof(policy) / sizeof((policy)[0]), (hosts), (apps), 0 }

/*
 * Registers the n methods of `table` (elements of elem_size bytes, normally
 * sizeof(hyb_method_def)) on the bus.  The table and the strings it points to
 * must outlive the slot (static tables: copied nothing).  All or nothing: if
 * one method fails, those already registered are revoked.  One slot covers the
 * whole table; unref it to revoke all (ret_slot NULL: lives as long as the bus).
 * Errors: -EINVAL (elem_size too small, NULL handler, bad type), HYB_E_NOT_ACCEPTABLE,
 * HYB_E_CONFLICT, HYB_E_TOO_MANY, HYB_E_TOO_LARGE (the policy's JSON text is longer than
 * the broker's limits.max_policy_bytes, default 4 KiB), HYB_E_CLOSED; *reterr names the method.
 */
HYB_EXPORT int hyb_endpoint_register_table(hyb_bus *bus, const hyb_method_def *table, size_t elem_size,
                                      size_t n, void *userdata, hyb_slot **ret_slot,
                                      hyb_error *reterr);

/*
 * Dynamic twin for bindings: registers one method.  Everything is copied
 * (name, policy keys, access lists).  Same policy checks, errors and slot rules.
 */
HYB_EXPORT int hyb_endpoint_register_method(hyb_bus *bus, const char *name, const hyb_arg_policy *args,
                                       size_t n_args, const char *for_host, const char *for_app,
                                       unsigned flags, hyb_bus_method_fn handler, void *userdata,
                                       hyb_slot **ret_slot, hyb_error *reterr);

/*
 * Checks a params body against a policy, exactly as done before a handler runs.
 * 0 when it passes; HYB_E_BAD_REQUEST with a message naming the key otherwise.
 */
HYB_EXPORT int hyb_endpoint_check_policy(const hyb_arg_policy *args, size_t n_args, const void *body,
                                         size_t len, hyb_error *reterr);

#ifdef __cplusplus
}
#endif

#endif
