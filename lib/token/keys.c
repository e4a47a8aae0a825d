/* SPDX-License-Identifier: MIT */
/*
 * hyb_key: P-256 keys, their files (PEM, JWK), key ids (RFC 7638) and ES256
 * signatures (hybrid/token.h).  The cryptography itself is crypto.c's.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/ref.h"
#include "common/util.h"
#include "token/keys.h"

enum {
        KID_LEN = 43,               /* base64url of 32 bytes */
        COORD_B64_LEN = 43,         /* base64url of a 32-byte coordinate */
        KEY_FILE_MAX = 64 * 1024,   /* a PEM or JWK key is well under 1 KiB */
};

struct hyb_key {
        atomic_uint n_ref;
        p256_key *k;
        char kid[KID_LEN + 1];
};

static void key_free(hyb_key *key)
{
        p256_free(key->k);
        free(key);
}

HYB_DEFINE_REF_UNREF(hyb_key, hyb_key, key_free)

static inline void key_unrefp(hyb_key **p)
{
        hyb_key_unref(*p);
}
#define _cleanup_key_ _cleanup_(key_unrefp)

/* jansson's own cleanup helper */
#define _cleanup_json_ _cleanup_(json_decrefp)

/* x and y of the key's public point, base64url (each COORD_B64_LEN + 1 bytes). */
static void key_coords(const p256_key *k, char *x, char *y)
{
        uint8_t pub[P256_PUB_LEN];

        p256_get_public(k, pub);
        b64u_encode_to(pub + 1, 32, x);
        b64u_encode_to(pub + 33, 32, y);
}

/* RFC 7638: SHA-256 of the required members in lexicographic order, no whitespace. */
static void key_thumbprint(const p256_key *k, char kid[KID_LEN + 1])
{
        char x[COORD_B64_LEN + 1], y[COORD_B64_LEN + 1], json[160];
        uint8_t h[CRYPTO_SHA256_LEN];

        key_coords(k, x, y);
        int n = snprintf(json, sizeof(json), "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
                         x, y);
        assert(n > 0 && (size_t)n < sizeof(json));
        crypto_sha256(json, (size_t)n, h);
        b64u_encode_to(h, sizeof(h), kid);
}

int key_new_steal(p256_key *k, hyb_key **ret)
{
        hyb_key *key = calloc(1, sizeof(*key));
        if (!key) {
                p256_free(k);
                return -ENOMEM;
        }
        atomic_init(&key->n_ref, 1);
        key->k = k;
        key_thumbprint(k, key->kid);
        *ret = key;
        return 0;
}

const p256_key *key_get_p256(const hyb_key *key)
{
        return key->k;
}

HYB_EXPORT int hyb_key_generate(hyb_key **ret)
{
        p256_key *k;
        int r;

        hyb_assert_return(ret, -EINVAL);
        r = p256_generate(&k);
        if (r < 0)
                return r;
        return key_new_steal(k, ret);
}

/* --------------------------------------------------------------- JWK */

/* Decodes member name of jwk: strict base64url of exactly 32 bytes. */
static int jwk_coord(const json_t *jwk, const char *name, bool required, uint8_t out[32],
                     bool *ret_present, hyb_error *reterr)
{
        const json_t *v = json_object_get(jwk, name);
        size_t n;

        *ret_present = v != NULL;
        if (!v)
                return required ? err_set(reterr, HYB_E_PARSE, -1, "JWK: no \"%s\" member", name) : 0;
        if (!json_is_string(v))
                return err_set(reterr, HYB_E_PARSE, -1, "JWK: \"%s\" is not a string", name);
        if (b64u_decode_to(json_string_value(v), json_string_length(v), out, 32, &n) < 0 || n != 32)
                return err_set(reterr, HYB_E_PARSE, -1,
                               "JWK: \"%s\" is not the base64url (unpadded, canonical) of 32 bytes",
                               name);
        return 0;
}

int key_from_jwk_json(const json_t *jwk, hyb_key **ret, hyb_error *reterr)
{
        uint8_t pub[P256_PUB_LEN], d[P256_SCALAR_LEN];
        bool present, has_d;
        p256_key *k;
        int r;

        if (!json_is_object(jwk))
                return err_set(reterr, HYB_E_PARSE, -1, "JWK is not a JSON object");
        const char *kty = json_string_value(json_object_get(jwk, "kty"));
        const char *crv = json_string_value(json_object_get(jwk, "crv"));
        if (!kty)
                return err_set(reterr, HYB_E_PARSE, -1, "JWK: no \"kty\" string member");
        if (strcmp(kty, "EC") != 0)
                return err_set(reterr, HYB_E_NOT_ACCEPTABLE, -1,
                               "JWK of kty \"%s\": only EC P-256 keys are supported", kty);
        if (!crv)
                return err_set(reterr, HYB_E_PARSE, -1, "JWK: no \"crv\" string member");
        if (strcmp(crv, "P-256") != 0)
                return err_set(reterr, HYB_E_NOT_ACCEPTABLE, -1,
                               "JWK on curve \"%s\": only P-256 is supported", crv);
        pub[0] = 0x04;
        r = jwk_coord(jwk, "x", true, pub + 1, &present, reterr);
        if (r < 0)
                return r;
        r = jwk_coord(jwk, "y", true, pub + 33, &present, reterr);
        if (r < 0)
                return r;
        r = jwk_coord(jwk, "d", false, d, &has_d, reterr);
        if (r < 0)
                return r;
        if (has_d) {
                r = p256_from_private(d, pub, &k);
                crypto_zero(d, sizeof(d));
                if (r == HYB_E_PARSE)
                        return err_set(reterr, r, -1,
                                       "JWK: \"d\" is out of range or does not match \"x\"/\"y\"");
        } else {
                r = p256_from_public(pub, sizeof(pub), &k);
                if (r == HYB_E_PARSE)
                        return err_set(reterr, r, -1, "JWK: the point (x, y) is not on P-256");
        }
        if (r < 0)
                return r;
        return key_new_steal(k, ret);
}

json_t *key_to_jwk_json(const hyb_key *key, bool with_private, bool with_kid)
{
        char x[COORD_B64_LEN + 1], y[COORD_B64_LEN + 1], ds[COORD_B64_LEN + 1];
        uint8_t d[P256_SCALAR_LEN];

        key_coords(key->k, x, y);
        _cleanup_json_ json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256",
                                             "x", x, "y", y);
        if (!o)
                return NULL;
        if (with_private) {
                if (p256_get_private(key->k, d) < 0)
                        return NULL;
                b64u_encode_to(d, sizeof(d), ds);
                crypto_zero(d, sizeof(d));
                int r = json_object_set_new(o, "d", json_string(ds));
                crypto_zero(ds, sizeof(ds));
                if (r < 0)
                        return NULL;
        }
        if (with_kid && json_object_set_new(o, "kid", json_string(key->kid)) < 0)
                return NULL;
        return TAKE_PTR(o);
}

HYB_EXPORT int hyb_key_to_jwk(const hyb_key *key, hyb_key_export_flags flags, char **ret)
{
        bool priv = flags & HYB_KEY_EXPORT_PRIVATE;

        hyb_assert_return(key && ret, -EINVAL);
        hyb_assert_return((flags & ~HYB_KEY_EXPORT_PRIVATE) == 0, -EINVAL);
        if (priv && !p256_has_private(key->k))
                return -ENOKEY;
        _cleanup_json_ json_t *o = key_to_jwk_json(key, priv, true);
        if (!o)
                return -ENOMEM;
        char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* ----------------------------------------------------------- loading */

HYB_EXPORT int hyb_key_load_memory(const char *data, size_t len, hyb_key **ret, hyb_error *reterr)
{
        size_t i = 0;
        p256_key *k;
        int r;

        hyb_assert_return(data && ret, -EINVAL);
        hyb_error_clear(reterr);
        while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r'))
                i++;
        if (i < len && data[i] == '{') {
                json_error_t je;
                _cleanup_json_ json_t *o = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
                if (!o)
                        return err_set(reterr, HYB_E_PARSE, je.position, "JWK: %s", je.text);
                if (json_object_get(o, "keys"))
                        return err_set(reterr, HYB_E_PARSE, -1,
                                       "a JWK Set: give one key (an element of \"keys\")");
                return key_from_jwk_json(o, ret, reterr);
        }
        r = p256_parse_pem(data, len, &k, reterr);
        if (r < 0)
                return r;
        return key_new_steal(k, ret);
}

HYB_EXPORT int hyb_key_load_file(const char *path, hyb_key **ret, hyb_error *reterr)
{
        struct stat st;
        int fd, r;

        hyb_assert_return(path && ret, -EINVAL);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return err_set(reterr, -errno, -1, "%s: %s", path, strerror(errno));
        if (fstat(fd, &st) < 0) {
                r = -errno;
                close(fd);
                return err_set(reterr, r, -1, "%s: %s", path, strerror(-r));
        }
        if (!S_ISREG(st.st_mode) || st.st_size > KEY_FILE_MAX) {
                close(fd);
                return err_set(reterr, S_ISREG(st.st_mode) ? -EFBIG : -EINVAL, -1,
                               "%s: not a key file (%s)", path,
                               S_ISREG(st.st_mode) ? "larger than 64 KiB" : "not a regular file");
        }
        char *buf = malloc(KEY_FILE_MAX + 1);
        if (!buf) {
                close(fd);
                return -ENOMEM;
        }
        size_t n = 0;
        for (;;) {
                ssize_t k = read(fd, buf + n, KEY_FILE_MAX + 1 - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0) {
                        r = k < 0 ? -errno : 0;
                        break;
                }
                n += (size_t)k;
                if (n > KEY_FILE_MAX) {
                        r = -EFBIG;
                        break;
                }
        }
        close(fd);
        if (r < 0)
                err_set(reterr, r, -1, "%s: %s", path,
                        r == -EFBIG ? "larger than 64 KiB" : strerror(-r));
        else {
                r = hyb_key_load_memory(buf, n, ret, reterr);
                if (r < 0)
                        err_prefix(reterr, "%s", path);
        }
        crypto_zero(buf, n);
        free(buf);
        return r;
}

/* ----------------------------------------------------------- getters */

HYB_EXPORT bool hyb_key_has_private(const hyb_key *key)
{
        return key && p256_has_private(key->k);
}

HYB_EXPORT const char *hyb_key_get_kid(const hyb_key *key)
{
        return key ? key->kid : NULL;
}

HYB_EXPORT bool hyb_key_equal(const hyb_key *a, const hyb_key *b)
{
        return a && b && p256_public_equal(a->k, b->k);
}

HYB_EXPORT int hyb_key_to_pem(const hyb_key *key, hyb_key_export_flags flags, char **ret)
{
        hyb_assert_return(key && ret, -EINVAL);
        hyb_assert_return((flags & ~HYB_KEY_EXPORT_PRIVATE) == 0, -EINVAL);
        if (flags & HYB_KEY_EXPORT_PRIVATE)
                return p256_write_pem_private(key->k, ret);
        return p256_write_pem_public(key->k, ret);
}

/* ------------------------------------------------------------ saving */

/*
 * Writes text to path atomically: a new file beside it (O_EXCL), the text,
 * fsync, rename over path, fsync of the directory.  The mode is mode narrowed
 * to an existing file's permission bits (never widened); exact: set it
 * whatever the umask (private keys: exactly 0600), else the umask applies.
 */
static int write_atomic(const char *path, const char *text, mode_t mode, bool exact,
                        hyb_error *reterr)
{
        struct stat st;
        uint8_t b[6];
        char rnd[8 + 1], tmp[4096]; /* base64url of 6 bytes, NUL */
        int fd = -1, r;

        if (stat(path, &st) == 0) {
                if (!S_ISREG(st.st_mode))
                        return err_set(reterr, -EEXIST, -1, "%s: exists and is not a regular file",
                                       path);
                mode &= st.st_mode & 07777;
        } else if (errno != ENOENT) {
                return err_set(reterr, -errno, -1, "%s: %s", path, strerror(errno));
        }
        r = crypto_random(b, sizeof(b));
        if (r < 0)
                return err_set(reterr, r, -1, "random: %s", strerror(-r));
        _Static_assert(sizeof(rnd) > (sizeof(b) + 2) / 3 * 4, "room for the NUL");
        b64u_encode_to(b, sizeof(b), rnd);
        if (snprintf(tmp, sizeof(tmp), "%s.%s.tmp", path, rnd) >= (int)sizeof(tmp))
                return err_set(reterr, -ENAMETOOLONG, -1, "%s: name too long", path);
        /* the mode at creation is already the final one (or narrower, by the
         * umask): there is no moment the secret is readable by others */
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0) /* named by the file the caller asked for, not our temporary name */
                return err_set(reterr, -errno, -1, "%s: %s", path, strerror(errno));
        size_t len = strlen(text), off = 0;
        while (off < len) {
                ssize_t k = write(fd, text + off, len - off);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = -errno;
                        goto fail;
                }
                off += (size_t)k;
        }
        if ((exact && fchmod(fd, mode) < 0) || fsync(fd) < 0) {
                r = -errno;
                goto fail;
        }
        if (close(fd) < 0) {
                fd = -1;
                r = -errno;
                goto fail;
        }
        fd = -1;
        if (rename(tmp, path) < 0) {
                r = -errno;
                goto fail;
        }
        /* the rename itself reaches the disk with the directory */
        char dirbuf[4096];
        snprintf(dirbuf, sizeof(dirbuf), "%s", path);
        int dfd = open(dirname(dirbuf), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
                (void)fsync(dfd);
                close(dfd);
        }
        return 0;
fail:
        if (fd >= 0)
                close(fd);
        unlink(tmp);
        return err_set(reterr, r, -1, "%s: %s", path, strerror(-r));
}

HYB_EXPORT int hyb_key_save_private(const hyb_key *key, const char *path, hyb_error *reterr)
{
        _cleanup_free_ char *pem = NULL;
        int r;

        hyb_assert_return(key && path, -EINVAL);
        hyb_error_clear(reterr);
        r = p256_write_pem_private(key->k, &pem);
        if (r == -ENOKEY)
                return err_set(reterr, r, -1, "%s: the key has no private part", path);
        if (r < 0)
                return err_set(reterr, r, -1, "%s: %s", path, hyb_strerror(r));
        r = write_atomic(path, pem, 0600, true, reterr);
        crypto_zero(pem, strlen(pem));
        return r;
}

HYB_EXPORT int hyb_key_save_public(const hyb_key *key, const char *path, hyb_error *reterr)
{
        _cleanup_free_ char *pem = NULL;
        int r;

        hyb_assert_return(key && path, -EINVAL);
        hyb_error_clear(reterr);
        r = p256_write_pem_public(key->k, &pem);
        if (r < 0)
                return err_set(reterr, r, -1, "%s: %s", path, hyb_strerror(r));
        return write_atomic(path, pem, 0644, false, reterr);
}

/* ------------------------------------------------------------ ES256 */

HYB_EXPORT int hyb_key_sign(const hyb_key *key, const void *msg, size_t len, uint8_t *sig)
{
        uint8_t h[CRYPTO_SHA256_LEN];

        hyb_assert_return(key && (msg || len == 0) && sig, -EINVAL);
        crypto_sha256(msg, len, h);
        return p256_sign_hash(key->k, h, sig);
}

HYB_EXPORT int hyb_key_verify(const hyb_key *key, const void *msg, size_t len, const uint8_t *sig,
                              size_t sig_len)
{
        uint8_t h[CRYPTO_SHA256_LEN];

        hyb_assert_return(key && (msg || len == 0) && sig, -EINVAL);
        crypto_sha256(msg, len, h);
        return p256_verify_hash(key->k, h, sig, sig_len);
}
