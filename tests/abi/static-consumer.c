/*
 * A user's program linked against the installed static libhybrid.a.  It
 * defines functions named like the library's internals (db_open, vec_push,
 * route_call, err_set): with those global in the archive the link fails with
 * "multiple definition"; localised, the program and the library each keep their own.
 */
#include <errno.h>
#include <hybrid/hybrid.h>
#include <stdio.h>
#include <string.h>

int db_open(void);
int vec_push(void);
int route_call(void);
int err_set(void);

int db_open(void)
{
        return 1;
}

int vec_push(void)
{
        return 2;
}

int route_call(void)
{
        return 3;
}

int err_set(void)
{
        return 4;
}

int main(void)
{
        hyb_store *st = NULL;
        hyb_obj *v = NULL, *got = NULL;
        hyb_error err;
        char *text = NULL;
        int r;

        /* The store reaches the library's own db_open, vec_push and err_set. */
        r = hyb_store_open(NULL, NULL, &st, &err);
        if (r == 0)
                r = hyb_obj_parse("[1,'two']", (size_t)-1, &v, &err);
        if (r == 0)
                r = hyb_store_write_str(st, "/a/b", v, 0, &err);
        if (r == 0)
                r = hyb_store_read_str(st, "/a/b", &got, &err);
        if (r == 0)
                r = hyb_obj_format(got, HYB_FORMAT_EXACT, &text);
        if (r == 0 && hyb_store_write_str(st, "relative", v, 0, &err) != -EINVAL)
                r = -1;
        if (r != 0 || strcmp(text, "[1,'two']") != 0) {
                fprintf(stderr, "static consumer: %s (%s)\n", hyb_strerror(r), err.message);
                return 1;
        }
        if (db_open() + vec_push() + route_call() + err_set() != 10)
                return 1;
        printf("static consumer ok: %s\n", text);
        hyb_free(text);
        hyb_obj_unref(got);
        hyb_obj_unref(v);
        hyb_store_unref(st);
        return 0;
}
