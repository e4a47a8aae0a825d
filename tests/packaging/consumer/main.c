/* SPDX-License-Identifier: MIT */
/* Links libhybrid from a subproject: parses a fURI and round-trips a value through a
 * memory store.  Exits 0 when both work. */
#include <hybrid/hybrid.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
        hyb_store *st = NULL;
        hyb_furi *f = NULL;
        hyb_obj *v = NULL, *got = NULL;
        char *text = NULL;
        hyb_error err = {0};
        int r;

        r = hyb_furi_parse("/a/b/../c", (size_t)-1, NULL, &f, &err);
        if (r < 0 || strcmp(hyb_furi_get_str(f), "/a/c") != 0) {
                fprintf(stderr, "furi: %d %s\n", r, err.message);
                return 1;
        }
        r = hyb_store_open(NULL, NULL, &st, &err);
        if (r >= 0)
                r = hyb_obj_parse("[on=>true]", (size_t)-1, &v, &err);
        if (r >= 0)
                r = hyb_store_write(st, f, v, 0, &err);
        if (r >= 0)
                r = hyb_store_read_str(st, "/a/c/on", &got, &err);
        if (r >= 0)
                r = hyb_obj_format(got, HYB_FORMAT_EXACT, &text);
        if (r < 0 || strcmp(text, "true") != 0) {
                fprintf(stderr, "store: %s %s\n", hyb_err_name(r), err.message);
                return 1;
        }
        printf("consumer: /a/c/on = %s\n", text);
        hyb_free(text);
        hyb_obj_unref(got);
        hyb_obj_unref(v);
        hyb_furi_unref(f);
        hyb_store_unref(st);
        return 0;
}
