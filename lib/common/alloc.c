/* SPDX-License-Identifier: MIT */
/* Memory release for the public API and overflow-checked allocation helpers. */
#include "util.h"

HYB_EXPORT void hyb_free(void *p)
{
        free(p);
}

HYB_EXPORT const char *hyb_version(void)
{
        return HYB_VERSION_STRING;
}

void *mallocarray(size_t n, size_t size)
{
        if (size && n > SIZE_MAX / size)
                return NULL;
        return malloc(n && size ? n * size : 1);
}

void *reallocarray_safe(void *p, size_t n, size_t size)
{
        if (size && n > SIZE_MAX / size)
                return NULL;
        return realloc(p, n && size ? n * size : 1);
}

int grow_array(void **array, size_t *alloc, size_t need, size_t size)
{
        size_t n;
        void *p;

        if (need <= *alloc)
                return 0;
        n = *alloc ? *alloc : 8;
        while (n < need) {
                if (n > SIZE_MAX / 2)
                        return -ENOMEM;
                n *= 2;
        }
        p = reallocarray_safe(*array, n, size);
        if (!p)
                return -ENOMEM;
        *array = p;
        *alloc = n;
        return 0;
}

char *strndup_safe(const char *s, size_t n)
{
        char *p = malloc(n + 1);

        if (!p)
                return NULL;
        memcpy(p, s, n);
        p[n] = '\0';
        return p;
}
