/* SPDX-License-Identifier: MIT */
/*
 * hybrid/common.h - errors, rich error detail, memory release, version.
 *
 * Every public function of libhybrid returns an int: < 0 is a negative errno
 * value or one of the HYB_E_* codes below (a reserved range far below errno),
 * 0 is success, > 0 has a meaning documented by the function.  Functions that
 * can say more take an optional last argument `hyb_error *reterr` which, when
 * not NULL, receives a message and, for parse errors, a byte offset and a
 * line/column.  There is no "last error" state.
 */
#ifndef HYBRID_COMMON_H
#define HYBRID_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(HYB_BUILDING_LIBRARY) && defined(__GNUC__)
#define HYB_EXPORT __attribute__((visibility("default")))
#else
#define HYB_EXPORT
#endif

#define HYB_VERSION_MAJOR 0
#define HYB_VERSION_MINOR 1
#define HYB_VERSION_PATCH 0

/* Codes derived from a bus status (hiBus numbering) are -(HYB_E_BASE + status). */
#define HYB_E_BASE 100000

/*
 * The one list of error codes: X(NAME, value, "message").  Status-derived
 * codes keep the hiBus number; library codes live above 1000 in the range.
 */
#define HYB_ERRORS(X)                                                                     \
        X(BAD_REQUEST,          -(HYB_E_BASE + 400),  "Bad Request")                     \
        X(UNAUTHORIZED,         -(HYB_E_BASE + 401),  "Unauthorized")                    \
        X(FORBIDDEN,            -(HYB_E_BASE + 403),  "Forbidden")                       \
        X(NOT_FOUND,            -(HYB_E_BASE + 404),  "Not Found")                       \
        X(NOT_ACCEPTABLE,       -(HYB_E_BASE + 406),  "Not Acceptable")                  \
        X(CONFLICT,             -(HYB_E_BASE + 409),  "Conflict")                        \
        X(GONE,                 -(HYB_E_BASE + 410),  "Gone")                            \
        X(TOO_LARGE,            -(HYB_E_BASE + 413),  "Packet Too Large")                \
        X(UNPROCESSABLE,        -(HYB_E_BASE + 422),  "Unprocessable Packet")            \
        X(LOCKED,               -(HYB_E_BASE + 423),  "Locked")                          \
        X(UPGRADE_REQUIRED,     -(HYB_E_BASE + 426),  "Upgrade Required")                \
        X(TOO_MANY,             -(HYB_E_BASE + 429),  "Too Many Requests")               \
        X(INTERNAL,             -(HYB_E_BASE + 500),  "Internal Error")                  \
        X(NOT_IMPLEMENTED,      -(HYB_E_BASE + 501),  "Not Implemented")                 \
        X(BAD_CALLEE,           -(HYB_E_BASE + 502),  "Bad Callee")                      \
        X(UNAVAILABLE,          -(HYB_E_BASE + 503),  "Service Unavailable")             \
        X(CALLEE_TIMEOUT,       -(HYB_E_BASE + 504),  "Callee Timeout")                  \
        X(INSUFFICIENT_STORAGE, -(HYB_E_BASE + 507),  "Insufficient Storage")            \
        X(PARSE,                -(HYB_E_BASE + 1001), "Syntax error")                    \
        X(LIMIT,                -(HYB_E_BASE + 1002), "Limit exceeded")                  \
        X(TYPE,                 -(HYB_E_BASE + 1003), "Type mismatch")                   \
        X(SCOPE,                -(HYB_E_BASE + 1004), "Scope not available")             \
        X(OVERFLOW,             -(HYB_E_BASE + 1005), "Integer overflow")                \
        X(DIV_ZERO,             -(HYB_E_BASE + 1006), "Division by zero")                \
        X(DATABASE,             -(HYB_E_BASE + 1007), "Database error")                  \
        X(PROTOCOL,             -(HYB_E_BASE + 1008), "Protocol error")                  \
        X(CLOSED,               -(HYB_E_BASE + 1009), "Connection closed")               \
        X(BUDGET,               -(HYB_E_BASE + 1010), "Instruction budget exhausted")    \
        X(DEPTH,                -(HYB_E_BASE + 1011), "Nesting too deep")                \
        X(CONFIG,               -(HYB_E_BASE + 1012), "Invalid configuration")           \
        X(AUTH,                 -(HYB_E_BASE + 1013), "Authentication failed")           \
        X(RUNTIME,              -(HYB_E_BASE + 1014), "Runtime error")                   \
        X(CORRUPT,              -(HYB_E_BASE + 1015), "Database corrupt")                \
        X(READ_ONLY,            -(HYB_E_BASE + 1016), "Read-only database")

enum {
#define HYB_X_ENUM(name, value, msg) HYB_E_##name = (value),
        HYB_ERRORS(HYB_X_ENUM)
#undef HYB_X_ENUM
};

/* Rich error detail.  A small value struct the caller owns (cffi-friendly). */
typedef struct hyb_error {
        int code;          /* the same value the function returned; 0 = no error */
        int line;          /* 1-based line of a parse error, 0 when not applicable */
        int column;        /* 1-based column (in bytes) of a parse error, 0 when not applicable */
        long offset;       /* 0-based byte offset of a parse error, -1 when not applicable */
        char message[256]; /* NUL-terminated, says what is wrong and where */
} hyb_error;

/*
 * Log levels, syslog numbering (more severe is smaller): the broker's log callback
 * (broker.h) and hyb_log (log.h) use them.
 */
typedef enum hyb_log_level {
        HYB_LOG_ERROR = 3,
        HYB_LOG_WARNING = 4,
        HYB_LOG_NOTICE = 5,
        HYB_LOG_INFO = 6,
        HYB_LOG_DEBUG = 7,
} hyb_log_level;

/* Human-readable text for any return code (negative errno, HYB_E_*, 0). Never NULL. */
HYB_EXPORT const char *hyb_strerror(int code);

/* Symbolic name: "HYB_E_NOT_FOUND", "ENOMEM", "OK"; "UNKNOWN" for unknown codes. Never NULL. */
HYB_EXPORT const char *hyb_err_name(int code);

/* The bus status number (400, 504, ...) for a code; 200 for 0; 500 for other errors. */
HYB_EXPORT int hyb_err_to_status(int code);

/* The code for a bus status: 0 for 2xx, HYB_E_* for known statuses, HYB_E_INTERNAL otherwise. */
HYB_EXPORT int hyb_err_from_status(int status);

/* Resets *e to "no error" (code 0, offset -1, empty message). NULL is a no-op. */
HYB_EXPORT void hyb_error_clear(hyb_error *e);

/* Releases memory the library handed out through a `char **ret_x` or `T **ret_x` out-param
 * documented as "free with hyb_free()". NULL is a no-op. */
HYB_EXPORT void hyb_free(void *p);


/*
 * A slot is the handle of a registration (a procedure, a method table, an
 * event or store subscription, a monitor, an async call, a native mm-ADT
 * instruction or type).  The model is sd-bus's sd_bus_slot:
 *   - the caller of the registering function owns the reference it gets back
 *     through ret_slot; unref'ing the last reference unregisters (cancels a
 *     pending call);
 *   - the destroy callback then runs once with the userdata (bindings drop
 *     their references there), after the registration is gone;
 *   - a floating slot is owned by the bus it was made on: dropping the
 *     caller's references leaves it registered until the bus is freed (the
 *     destroy callback runs then).  Passing a NULL ret_slot registers floating.
 */
typedef struct hyb_slot hyb_slot;
typedef void (*hyb_destroy_fn)(void *userdata);

/* Takes a reference.  Returns slot; NULL is a no-op. */
HYB_EXPORT hyb_slot *hyb_slot_ref(const hyb_slot *slot);
/* Drops a reference; the last one unregisters. Returns NULL; NULL is a no-op. */
HYB_EXPORT hyb_slot *hyb_slot_unref(hyb_slot *slot);
/* The userdata given at registration (or by hyb_slot_set_userdata); NULL for a NULL slot. */
HYB_EXPORT void *hyb_slot_get_userdata(const hyb_slot *slot);
/*
 * Replaces the userdata handlers and the destroy callback receive from now on.
 * Returns the previous userdata (NULL for a NULL slot).
 */
HYB_EXPORT void *hyb_slot_set_userdata(hyb_slot *slot, void *userdata);
/* Sets the callback run with the userdata when the slot goes away (NULL: none).
 * 0, or -EINVAL for a NULL slot. */
HYB_EXPORT int hyb_slot_set_destroy_callback(hyb_slot *slot, hyb_destroy_fn destroy);
/* *ret_destroy (when not NULL) gets the destroy callback.  1 when one is set, 0 when none,
 * -EINVAL for a NULL slot. */
HYB_EXPORT int hyb_slot_get_destroy_callback(const hyb_slot *slot, hyb_destroy_fn *ret_destroy);
/*
 * Makes the registration owned by its bus (true) or by the caller again (false).
 * Setting it takes a reference for the bus: the caller still unrefs its own.
 * Clearing it drops the bus's reference: the caller must hold one, or the
 * registration goes at once.  Procedures, event subscriptions, monitors and
 * async calls can float; the other slots (method tables, bubbles and store
 * subscriptions, which hold a reference on their bus or store, mm-ADT
 * natives) give -EOPNOTSUPP.  0, or -EINVAL for a NULL slot.
 */
HYB_EXPORT int hyb_slot_set_floating(hyb_slot *slot, bool floating);
/* 1 floating, 0 not, -EINVAL for a NULL slot. */
HYB_EXPORT int hyb_slot_get_floating(const hyb_slot *slot);

/*
 * The clock of every loop integration: CLOCK_MONOTONIC in microseconds.
 * hyb_bus_get_timeout and hyb_store_get_timeout return absolute deadlines on
 * it (as sd_bus_get_timeout); a loop waits deadline - hyb_now_usec() at most
 * (0 when the deadline has passed).
 */
HYB_EXPORT uint64_t hyb_now_usec(void);

/* "0.1.0" */
HYB_EXPORT const char *hyb_version(void);

#ifdef __cplusplus
}
#endif

#endif
