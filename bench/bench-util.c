/* SPDX-License-Identifier: MIT */
/* The benchmarks' shared clock, random sequence and order statistics (bench-util.h). */
#include <math.h>
#include <stdlib.h>
#include <time.h>

#include "bench-util.h"

uint64_t bench_now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t bench_xorshift(uint64_t *s)
{
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

int bench_cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;

        return (x > y) - (x < y);
}

double bench_median(const double *v, size_t n)
{
        double *s = malloc((n ? n : 1) * sizeof(*s)), m;
        size_t k = 0;

        if (!s)
                return NAN;
        for (size_t i = 0; i < n; i++)
                if (!isnan(v[i]))
                        s[k++] = v[i];
        if (k == 0) {
                free(s);
                return NAN;
        }
        qsort(s, k, sizeof(*s), bench_cmp_double);
        m = k % 2 ? s[k / 2] : (s[k / 2 - 1] + s[k / 2]) / 2;
        free(s);
        return m;
}

double bench_percentile(double *v, size_t n, double p)
{
        long k;

        qsort(v, n, sizeof(*v), bench_cmp_double);
        k = (long)ceil(p / 100.0 * (double)n) - 1;
        if (k < 0)
                k = 0;
        return v[k];
}
