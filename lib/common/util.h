/* SPDX-License-Identifier: MIT */
/*
 * Internal helpers shared by every module: cleanup attributes, public-entry
 * argument checks, error-detail setters and overflow-checked allocation.
 * Not installed; never include from include/hybrid/.
 */
#ifndef HYB_UTIL_H
#define HYB_UTIL_H

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "hybrid/common.h"

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _likely_(x) __builtin_expect(!!(x), 1)
#define _unlikely_(x) __builtin_expect(!!(x), 0)

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))

/* Public entry points only: our own invariants use assert(). */
#define hyb_assert_return(expr, r)                   \
        do {                                         \
                if (_unlikely_(!(expr)))             \
                        return (r);                  \
        } while (0)

/* The value of the hex digit c (either case), or -1 when c is none (EOF included). */
static inline int hex_digit(int c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static inline void freep(void *p)
{
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

/* Moves ownership out of a cleanup variable. */
#define TAKE_PTR(p)                              \
        ({                                       \
                __typeof__(p) _tp_ = (p);        \
                (p) = NULL;                      \
                _tp_;                            \
        })

/*
 * Fills *e (when not NULL) and returns code, so a failure reads
 * `return err_set(reterr, HYB_E_PARSE, off, "bad %s", x);`.
 * offset < 0 means "not applicable".
 */
int err_set(hyb_error *e, int code, long offset, const char *fmt, ...) _printf_(4, 5);
int err_setv(hyb_error *e, int code, long offset, const char *fmt, va_list ap);
/* As err_set, with a line and column (1-based) too. */
int err_set_at(hyb_error *e, int code, long offset, int line, int column, const char *fmt, ...)
        _printf_(6, 7);
/* Prefixes e->message with "prefix: " (keeps code and position). */
void err_prefix(hyb_error *e, const char *fmt, ...) _printf_(2, 3);

/* Overflow-checked allocation helpers; return NULL on overflow or ENOMEM. */
void *mallocarray(size_t n, size_t size);
void *reallocarray_safe(void *p, size_t n, size_t size);

/* Grows *array (of *alloc elements of size) to hold at least need; 0 or -ENOMEM. */
int grow_array(void **array, size_t *alloc, size_t need, size_t size);

char *strndup_safe(const char *s, size_t n);

/* The poll(2) timeout for waiting until deadline (absolute, hyb_now_usec's clock) but at
 * most timeout_usec (relative); UINT64_MAX for either means none.  -1 (forever) when both
 * are UINT64_MAX, 0 once the deadline has passed; rounded up to whole ms, at most an hour. */
int deadline_poll_ms(uint64_t deadline, uint64_t timeout_usec);

#endif
