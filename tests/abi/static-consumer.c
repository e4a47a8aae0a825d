/*
 * A user's program linked against the installed static libhybrid.a.  It
 * defines functions named like the library's internals (db_open, vec_push,
 * route_call, err_set, crypto_random, b64u_encode): with those global in the archive the link fails with
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
int crypto_random(void);
int b64u_encode(void);

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

/* names of lib/token/crypto.c */
int crypto_random(void)
{
        return 5;
}

int b64u_encode(void)
{
        return 6;
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
        /* A key reaches the library's crypto_random and b64u_encode (and mbedTLS). */
        hyb_key *key = NULL;
        char *jwk = NULL;
        if (hyb_key_generate(&key) != 0 || hyb_key_to_jwk(key, HYB_KEY_EXPORT_PUBLIC, &jwk) != 0 ||
            !strstr(jwk, hyb_key_get_kid(key)) || crypto_random() + b64u_encode() != 11) {
                fprintf(stderr, "static consumer: keys\n");
                return 1;
        }
        hyb_free(jwk);
        hyb_key_unref(key);
        printf("static consumer ok: %s\n", text);
        hyb_free(text);
        hyb_obj_unref(got);
        hyb_obj_unref(v);
        hyb_store_unref(st);
        return 0;
}
