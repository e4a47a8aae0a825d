/* SPDX-License-Identifier: MIT */
/*
 * What every benchmark of bench/ needs: a monotonic clock, a cheap random
 * sequence and the order statistics its tables print.
 */
#ifndef HYB_BENCH_UTIL_H
#define HYB_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);
/* The next value of a xorshift64 sequence in *state (never 0 once seeded non-zero). */
uint64_t bench_xorshift(uint64_t *state);
/* qsort comparison of doubles, ascending. */
int bench_cmp_double(const void *a, const void *b);
/* The median of the non-NaN values of v[0..n) (v is not changed); NaN when there is none. */
double bench_median(const double *v, size_t n);
/* The p-th percentile (0..100) of v[0..n), nearest rank; sorts v in place.  n > 0. */
double bench_percentile(double *v, size_t n, double p);

#endif
