/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

static const char *env_or(const char *name, const char *dflt)
{
        const char *v = getenv(name);

        return v && *v ? v : dflt;
}

const char *test_data_path(const char *rel)
{
        static char buf[4096];

        snprintf(buf, sizeof(buf), "%s/%s", env_or("HYB_TEST_DATA", "tests"), rel);
        return buf;
}

const char *test_build_path(const char *rel)
{
        static char buf[4096];

        snprintf(buf, sizeof(buf), "%s/%s", env_or("HYB_BUILD_DIR", "build"), rel);
        return buf;
}

char *test_read_file(const char *path, size_t *len)
{
        FILE *f = fopen(path, "rb");
        char *buf = NULL;
        size_t n = 0, cap = 0, r;

        if (!f)
                return NULL;
        for (;;) {
                if (cap - n < 4096) {
                        char *nb;
                        cap = cap ? cap * 2 : 8192;
                        nb = realloc(buf, cap + 1);
                        if (!nb) {
                                free(buf);
                                fclose(f);
                                return NULL;
                        }
                        buf = nb;
                }
                r = fread(buf + n, 1, cap - n, f);
                n += r;
                if (r == 0)
                        break;
        }
        fclose(f);
        buf[n] = '\0';
        if (len)
                *len = n;
        return buf;
}

char *test_tmpdir(void)
{
        char *p;

        if (asprintf(&p, "%s/hybtest-XXXXXX", env_or("TMPDIR", "/tmp")) < 0)
                return NULL;
        if (!mkdtemp(p)) {
                free(p);
                return NULL;
        }
        return p;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)flag;
        (void)ftw;
        return remove(path);
}

void test_rmrf(const char *dir)
{
        if (dir)
                nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int test_each_line(const char *path, void (*fn)(int, char *, void *), void *ud)
{
        char *buf = test_read_file(path, NULL), *line, *save = NULL;
        int n = 0, no = 0;

        ck_assert_msg(buf != NULL, "cannot read test data %s", path);
        /* strtok_r would skip empty lines and lose numbering: split by hand. */
        line = buf;
        while (line && *line) {
                char *nl = strchr(line, '\n');
                if (nl)
                        *nl = '\0';
                no++;
                if (*line && *line != '#') {
                        fn(no, line, ud);
                        n++;
                }
                line = nl ? nl + 1 : NULL;
        }
        (void)save;
        free(buf);
        return n;
}
