/* SPDX-License-Identifier: MIT */
/* Helpers for the tests: data files, temp dirs, the build dir. */
#ifndef HYB_TESTUTIL_H
#define HYB_TESTUTIL_H

#include <stddef.h>

/* Path of a file under tests/ (source tree), in a static buffer. */
const char *test_data_path(const char *rel);
/* Path of a file under the build dir (e.g. "examples/hybrid/hybrid"), in a static buffer. */
const char *test_build_path(const char *rel);
/* Reads a whole file; caller frees; NULL on error. *len gets the size when len != NULL. */
char *test_read_file(const char *path, size_t *len);
/* Creates a fresh temp dir (mkdtemp under $TMPDIR or /tmp); caller frees the string. */
char *test_tmpdir(void);
/* rm -rf of a temp dir made by test_tmpdir. */
void test_rmrf(const char *dir);

/*
 * Data-driven cases: a file of records separated by lines, fields split by a TAB
 * (or " => " etc, as the caller parses).  Calls fn(line_no, line, ud) for every
 * line that is not blank and does not start with '#'.  Returns number of lines seen.
 */
int test_each_line(const char *path, void (*fn)(int line_no, char *line, void *ud), void *ud);

#endif
