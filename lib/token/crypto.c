/* SPDX-License-Identifier: MIT */
/*
 * The crypto layer over mbedTLS 2.28 (crypto.h says what each function
 * promises).  This is the only file that includes mbedTLS headers.
 *
 * A p256_key keeps its key as bytes (the private scalar and the uncompressed
 * point) and every operation loads the numbers into locals: a key shared
 * between threads is never written to.  The P-256 group, whose table of
 * multiples of the generator mbedTLS fills lazily, is kept per thread
 * (ec_group_get), so that table is built once per thread and never shared.
 * Each thread also keeps such a table for the last KEYTAB_MAX public keys it
 * verified with (p256_verify_hash, "key tables" below).
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <mbedtls/asn1.h>
#include <mbedtls/asn1write.h>
#include <mbedtls/bignum.h>
#include <mbedtls/constant_time.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/error.h>
#include <mbedtls/md.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

#include "common/util.h"
#include "token/crypto.h"

struct p256_key {
        bool has_private;
        uint8_t d[P256_SCALAR_LEN];
        uint8_t pub[P256_PUB_LEN];
};

/* ------------------------------------------------------------- basics */

int crypto_random(void *buf, size_t n)
{
        uint8_t *p = buf;

        while (n > 0) {
                ssize_t k = getrandom(p, n, 0);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += k;
                n -= (size_t)k;
        }
        return 0;
}

/* The f_rng mbedTLS takes (blinding, key generation). */
static int mbed_rng(void *ctx, unsigned char *out, size_t len)
{
        (void)ctx;
        return crypto_random(out, len) < 0 ? MBEDTLS_ERR_ECP_RANDOM_FAILED : 0;
}

void crypto_sha256_parts(const void *const *parts, const size_t *lens, size_t n_parts,
                         uint8_t out[CRYPTO_SHA256_LEN])
{
        mbedtls_sha256_context ctx;

        /* The _ret functions of 2.28 fail only on a hardware accelerator error:
         * there is none in this build, and a failure leaves out unpredictable
         * rather than wrong in a way an attacker picks. */
        mbedtls_sha256_init(&ctx);
        (void)mbedtls_sha256_starts_ret(&ctx, 0);
        for (size_t i = 0; i < n_parts; i++)
                (void)mbedtls_sha256_update_ret(&ctx, parts[i], lens[i]);
        (void)mbedtls_sha256_finish_ret(&ctx, out);
        mbedtls_sha256_free(&ctx);
}

int crypto_hmac_sha256_parts(const void *key, size_t key_len, const void *const *parts,
                             const size_t *lens, size_t n_parts, uint8_t out[CRYPTO_SHA256_LEN])
{
        const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
        mbedtls_md_context_t ctx;
        int rc;

        if (!key || !key_len || !md)
                return -EINVAL;
        mbedtls_md_init(&ctx);
        rc = mbedtls_md_setup(&ctx, md, 1);
        if (rc == 0)
                rc = mbedtls_md_hmac_starts(&ctx, key, key_len);
        for (size_t i = 0; rc == 0 && i < n_parts; i++)
                if (lens[i])
                        rc = mbedtls_md_hmac_update(&ctx, parts[i], lens[i]);
        if (rc == 0)
                rc = mbedtls_md_hmac_finish(&ctx, out);
        mbedtls_md_free(&ctx);
        return rc == 0 ? 0 : rc == MBEDTLS_ERR_MD_ALLOC_FAILED ? -ENOMEM : -EINVAL;
}

void crypto_sha256(const void *data, size_t n, uint8_t out[CRYPTO_SHA256_LEN])
{
        crypto_sha256_parts(&data, &n, 1, out);
}

bool crypto_memeq(const void *a, const void *b, size_t n)
{
        return mbedtls_ct_memcmp(a, b, n) == 0;
}

void crypto_zero(void *p, size_t n)
{
        mbedtls_platform_zeroize(p, n);
}

/* ---------------------------------------------------------- base64url */

static const char b64u_alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t b64u_encoded_len(size_t n)
{
        return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

size_t b64u_encode_to(const void *in, size_t n, char *out)
{
        const uint8_t *s = in;
        size_t o = 0, i = 0;

        for (; i + 3 <= n; i += 3) {
                uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
                out[o++] = b64u_alphabet[v >> 18 & 63];
                out[o++] = b64u_alphabet[v >> 12 & 63];
                out[o++] = b64u_alphabet[v >> 6 & 63];
                out[o++] = b64u_alphabet[v & 63];
        }
        if (n - i == 1) {
                uint32_t v = (uint32_t)s[i] << 16;
                out[o++] = b64u_alphabet[v >> 18 & 63];
                out[o++] = b64u_alphabet[v >> 12 & 63];
        } else if (n - i == 2) {
                uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
                out[o++] = b64u_alphabet[v >> 18 & 63];
                out[o++] = b64u_alphabet[v >> 12 & 63];
                out[o++] = b64u_alphabet[v >> 6 & 63];
        }
        out[o] = '\0';
        return o;
}

int b64u_encode(const void *in, size_t n, char **ret)
{
        if (n > (SIZE_MAX - 1) / 4 * 3)
                return -ENOMEM;
        char *s = malloc(b64u_encoded_len(n) + 1);
        if (!s)
                return -ENOMEM;
        b64u_encode_to(in, n, s);
        *ret = s;
        return 0;
}

/* The 6-bit value of c, or -1 for a character outside the base64url alphabet. */
static int b64u_value(unsigned char c)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '-')
                return 62;
        if (c == '_')
                return 63;
        return -1;
}

int b64u_decode_to(const char *in, size_t len, uint8_t *out, size_t out_size, size_t *ret_len)
{
        size_t rem = len % 4, n = len / 4 * 3 + (rem ? rem - 1 : 0), o = 0;
        uint32_t acc = 0;
        unsigned bits = 0;

        if (rem == 1)
                return HYB_E_PARSE;
        if (n > out_size && out)
                return HYB_E_LIMIT;
        for (size_t i = 0; i < len; i++) {
                int v = b64u_value((unsigned char)in[i]);
                if (v < 0)
                        return HYB_E_PARSE;
                acc = (acc << 6 | (uint32_t)v) & 0xffffff;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        if (out)
                                out[o] = (uint8_t)(acc >> bits);
                        o++;
                }
        }
        /* Canonical: the bits left over from the last character are zero. */
        if (acc & ((1u << bits) - 1))
                return HYB_E_PARSE;
        assert(o == n);
        *ret_len = n;
        return 0;
}

int b64u_decode(const char *in, size_t len, uint8_t **ret, size_t *ret_len)
{
        size_t n;
        int r = b64u_decode_to(in, len, NULL, 0, &n);
        if (r < 0)
                return r;
        _cleanup_free_ uint8_t *buf = malloc(n ? n : 1);
        if (!buf)
                return -ENOMEM;
        r = b64u_decode_to(in, len, buf, n, &n);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(buf);
        *ret_len = n;
        return 0;
}

/* ---------------------------------------------------------------- P-256 */

/*
 * The P-256 group of one thread.  mbedTLS keeps in a group the table of multiples of
 * the generator it builds on the first multiplication by G (MBEDTLS_ECP_FIXED_POINT_OPTIM)
 * and uses it from then on: a group loaded per operation builds that table again each
 * time, which cost a verification about half as much again as the multiplications
 * themselves.  A group is written by every such multiplication, so it is never shared
 * between threads: each thread keeps its own (freed when the thread exits).
 */
/*
 * Key tables.  An ECDSA verification computes u1*G + u2*Q.  mbedTLS's comb
 * multiplication spends more than half of a multiplication on its table of
 * multiples of the point, and keeps that table only for the group's generator
 * (MBEDTLS_ECP_FIXED_POINT_OPTIM): u1*G is cheap from the second time on, u2*Q
 * pays for Q's table every time.  A key table is a copy of the P-256 group whose
 * generator is the public key Q, so mbedtls_ecp_mul(&t->grp, R, u2, &t->grp.G)
 * builds Q's table once and keeps it in that group; p256_verify_hash then does
 * the verification of SEC1 4.1.4 with the two table-backed multiplications and
 * mbedtls_ecp_muladd for their sum (every number and point operation is mbedTLS's;
 * tests/token/test_crypto.c checks it against mbedtls_ecdsa_verify).
 *
 * Bounded: KEYTAB_MAX tables per thread that verifies (the least recently used one
 * is replaced), each about 2.5 KiB (the 8-point table of mbedTLS's window of 4,
 * and the group: tests/token/test_crypto.c measures it); the first verification
 * with a key costs what mbedtls_ecdsa_verify costs (the same table is built, then
 * kept).
 */
enum { KEYTAB_MAX = 16 };

typedef struct key_table {
        bool used;
        uint64_t last;             /* the thread's use counter at its last use (LRU) */
        uint8_t pub[P256_PUB_LEN]; /* the key, uncompressed */
        mbedtls_ecp_group grp;     /* P-256 with G = the key's point; grp.T its table */
} key_table;

typedef struct ec_group {
        mbedtls_ecp_group grp;
        mbedtls_mpi half_n; /* n / 2: the largest s of a low-S signature */
        uint64_t uses;      /* key table uses, the LRU clock */
        key_table tab[KEYTAB_MAX];
        /* The randomness a verification's multiplications take for mbedTLS's blinding of
         * coordinates (ecp_randomize_jac): a CTR-DRBG of this thread seeded once from the
         * kernel.  Without an f_rng mbedtls_ecp_mul seeds an HMAC-DRBG of its own on every
         * call, about 5 % of a verification.  Verifications only: their scalars and points
         * are public (signing keeps the kernel's randomness, mbed_rng). */
        mbedtls_ctr_drbg_context drbg;
        bool drbg_ok;
} ec_group;

/* The f_rng, p_rng pair of g's blinding (NULL, NULL: mbedTLS's own) */
#define EC_BLIND(g) ((g)->drbg_ok ? mbedtls_ctr_drbg_random : NULL), \
                    ((g)->drbg_ok ? (void *)&(g)->drbg : NULL)

/* Frees t's group (its generator is ours: group_load made the constants static). */
static void key_table_clear(key_table *t)
{
        if (!t->used)
                return;
        mbedtls_ecp_point_free(&t->grp.G);
        mbedtls_ecp_group_free(&t->grp); /* the table T; not the static constants */
        t->used = false;
}

static pthread_once_t ec_tls_once = PTHREAD_ONCE_INIT;
static pthread_key_t ec_tls;
static bool ec_tls_ok;

static void ec_group_free(void *p)
{
        ec_group *g = p;

        if (!g)
                return;
        for (size_t i = 0; i < KEYTAB_MAX; i++)
                key_table_clear(&g->tab[i]);
        mbedtls_ecp_group_free(&g->grp);
        mbedtls_mpi_free(&g->half_n);
        mbedtls_ctr_drbg_free(&g->drbg);
        free(g);
}

static void ec_tls_init(void)
{
        ec_tls_ok = pthread_key_create(&ec_tls, ec_group_free) == 0;
}

static ec_group *ec_group_new(void)
{
        ec_group *g = calloc(1, sizeof(*g));

        if (!g)
                return NULL;
        mbedtls_ecp_group_init(&g->grp);
        mbedtls_mpi_init(&g->half_n);
        mbedtls_ctr_drbg_init(&g->drbg);
        if (mbedtls_ecp_group_load(&g->grp, MBEDTLS_ECP_DP_SECP256R1) != 0 ||
            mbedtls_mpi_copy(&g->half_n, &g->grp.N) != 0 ||
            mbedtls_mpi_shift_r(&g->half_n, 1) != 0) {
                ec_group_free(g);
                return NULL;
        }
        /* without it the multiplications take mbedTLS's own randomness */
        g->drbg_ok = mbedtls_ctr_drbg_seed(&g->drbg, mbed_rng, NULL,
                                           (const unsigned char *)"hybrid ecp blinding",
                                           sizeof "hybrid ecp blinding" - 1) == 0;
        return g;
}

/* This thread's group, loaded on first use; if it cannot be kept, a new one that
 * *owned says the caller frees.  NULL when out of memory. */
static ec_group *ec_group_get(bool *owned)
{
        ec_group *g;

        *owned = false;
        (void)pthread_once(&ec_tls_once, ec_tls_init);
        if (ec_tls_ok && (g = pthread_getspecific(ec_tls)))
                return g;
        g = ec_group_new();
        if (!g)
                return NULL;
        if (!ec_tls_ok || pthread_setspecific(ec_tls, g) != 0)
                *owned = true;
        return g;
}

/* The numbers one operation needs, loaded from a key's bytes, and the thread's group. */
typedef struct ec_ctx {
        ec_group *g;
        bool g_owned;
        mbedtls_ecp_group *grp; /* &g->grp */
        mbedtls_mpi *half_n;    /* &g->half_n */
        mbedtls_mpi d, r, s;
        mbedtls_ecp_point q;
} ec_ctx;

static int ec_ctx_init(ec_ctx *c)
{
        mbedtls_mpi_init(&c->d);
        mbedtls_mpi_init(&c->r);
        mbedtls_mpi_init(&c->s);
        mbedtls_ecp_point_init(&c->q);
        c->g = ec_group_get(&c->g_owned);
        if (!c->g)
                return -ENOMEM;
        c->grp = &c->g->grp;
        c->half_n = &c->g->half_n;
        return 0;
}

static void ec_ctx_done(ec_ctx *c)
{
        if (c->g_owned)
                ec_group_free(c->g);
        c->g = NULL;
        mbedtls_mpi_free(&c->d); /* zeroises */
        mbedtls_mpi_free(&c->r);
        mbedtls_mpi_free(&c->s);
        mbedtls_ecp_point_free(&c->q);
}

/* Writes c->q uncompressed into out. */
static int ec_write_q(ec_ctx *c, uint8_t out[P256_PUB_LEN])
{
        size_t olen;
        if (mbedtls_ecp_point_write_binary(c->grp, &c->q, MBEDTLS_ECP_PF_UNCOMPRESSED, &olen, out,
                                           P256_PUB_LEN) != 0 ||
            olen != P256_PUB_LEN)
                return HYB_E_INTERNAL;
        return 0;
}

/* Reads pub into c->q and checks it is a point of the curve other than infinity. */
static int ec_read_q(ec_ctx *c, const uint8_t *pub, size_t len)
{
        if (len != P256_PUB_LEN || pub[0] != 0x04)
                return HYB_E_PARSE;
        if (mbedtls_ecp_point_read_binary(c->grp, &c->q, pub, len) != 0)
                return HYB_E_PARSE;
        /* read_binary does not check the point: coordinates < p, on the curve, not zero */
        if (mbedtls_ecp_check_pubkey(c->grp, &c->q) != 0)
                return HYB_E_PARSE;
        return 0;
}

static p256_key *p256_new(void)
{
        return calloc(1, sizeof(p256_key));
}

void p256_free(p256_key *k)
{
        if (!k)
                return;
        crypto_zero(k, sizeof(*k));
        free(k);
}

static inline void p256_freep(p256_key **k)
{
        p256_free(*k);
}
#define _cleanup_p256_ _cleanup_(p256_freep)

int p256_generate(p256_key **ret)
{
        _cleanup_p256_ p256_key *k = p256_new();
        ec_ctx c;
        int r;

        if (!k)
                return -ENOMEM;
        r = ec_ctx_init(&c);
        if (r >= 0 && mbedtls_ecp_gen_keypair(c.grp, &c.d, &c.q, mbed_rng, NULL) != 0)
                r = HYB_E_INTERNAL;
        if (r >= 0 && mbedtls_mpi_write_binary(&c.d, k->d, sizeof(k->d)) != 0)
                r = HYB_E_INTERNAL;
        if (r >= 0)
                r = ec_write_q(&c, k->pub);
        ec_ctx_done(&c);
        if (r < 0)
                return r;
        k->has_private = true;
        *ret = TAKE_PTR(k);
        return 0;
}

int p256_from_private(const uint8_t d[P256_SCALAR_LEN], const uint8_t *pub, p256_key **ret)
{
        _cleanup_p256_ p256_key *k = p256_new();
        ec_ctx c;
        int r;

        if (!k)
                return -ENOMEM;
        r = ec_ctx_init(&c);
        if (r >= 0 && mbedtls_mpi_read_binary(&c.d, d, P256_SCALAR_LEN) != 0)
                r = -ENOMEM;
        /* check_privkey: 1 <= d < n */
        if (r >= 0 && mbedtls_ecp_check_privkey(c.grp, &c.d) != 0)
                r = HYB_E_PARSE;
        if (r >= 0 && mbedtls_ecp_mul(c.grp, &c.q, &c.d, &c.grp->G, mbed_rng, NULL) != 0)
                r = HYB_E_INTERNAL;
        if (r >= 0)
                r = ec_write_q(&c, k->pub);
        ec_ctx_done(&c);
        if (r < 0)
                return r;
        if (pub && !crypto_memeq(pub, k->pub, P256_PUB_LEN))
                return HYB_E_PARSE;
        memcpy(k->d, d, P256_SCALAR_LEN);
        k->has_private = true;
        *ret = TAKE_PTR(k);
        return 0;
}

int p256_from_public(const uint8_t *pub, size_t len, p256_key **ret)
{
        _cleanup_p256_ p256_key *k = p256_new();
        ec_ctx c;
        int r;

        if (!k)
                return -ENOMEM;
        r = ec_ctx_init(&c);
        if (r >= 0)
                r = ec_read_q(&c, pub, len);
        ec_ctx_done(&c);
        if (r < 0)
                return r;
        memcpy(k->pub, pub, P256_PUB_LEN);
        *ret = TAKE_PTR(k);
        return 0;
}

int p256_dup(const p256_key *k, p256_key **ret)
{
        p256_key *n = p256_new();
        if (!n)
                return -ENOMEM;
        memcpy(n, k, sizeof(*n));
        *ret = n;
        return 0;
}

bool p256_has_private(const p256_key *k)
{
        return k->has_private;
}

void p256_get_public(const p256_key *k, uint8_t out[P256_PUB_LEN])
{
        memcpy(out, k->pub, P256_PUB_LEN);
}

int p256_get_private(const p256_key *k, uint8_t out[P256_SCALAR_LEN])
{
        if (!k->has_private)
                return -ENOKEY;
        memcpy(out, k->d, P256_SCALAR_LEN);
        return 0;
}

bool p256_public_equal(const p256_key *a, const p256_key *b)
{
        return crypto_memeq(a->pub, b->pub, P256_PUB_LEN);
}

int p256_sign_hash(const p256_key *k, const uint8_t hash[CRYPTO_SHA256_LEN],
                   uint8_t sig[P256_SIG_LEN])
{
        ec_ctx c;
        int r;

        if (!k->has_private)
                return -ENOKEY;
        r = ec_ctx_init(&c);
        if (r >= 0 && mbedtls_mpi_read_binary(&c.d, k->d, P256_SCALAR_LEN) != 0)
                r = -ENOMEM;
        if (r >= 0 && mbedtls_ecdsa_sign_det_ext(c.grp, &c.r, &c.s, &c.d, hash, CRYPTO_SHA256_LEN,
                                                 MBEDTLS_MD_SHA256, mbed_rng, NULL) != 0)
                r = HYB_E_INTERNAL;
        /* (r, s) and (r, n - s) both verify: hand out only the low one */
        if (r >= 0 && mbedtls_mpi_cmp_mpi(&c.s, c.half_n) > 0 &&
            mbedtls_mpi_sub_mpi(&c.s, &c.grp->N, &c.s) != 0)
                r = HYB_E_INTERNAL;
        if (r >= 0 && (mbedtls_mpi_write_binary(&c.r, sig, 32) != 0 ||
                       mbedtls_mpi_write_binary(&c.s, sig + 32, 32) != 0))
                r = HYB_E_INTERNAL;
        ec_ctx_done(&c);
        return r;
}

/*
 * The key table of pub in g: found (moved to the front of the LRU order), else
 * made in the least recently used slot with q (pub's point, checked) as its
 * generator.  NULL when out of memory or when mbedTLS's group carries a
 * table of its own (a build with static tables: it would be G's, not q's), and
 * the caller verifies without a table.
 */
static key_table *key_table_get(ec_group *g, const uint8_t pub[P256_PUB_LEN],
                                const mbedtls_ecp_point *q)
{
        key_table *t = NULL;

        for (size_t i = 0; i < KEYTAB_MAX; i++) {
                key_table *c = &g->tab[i];

                if (c->used && memcmp(c->pub, pub, P256_PUB_LEN) == 0) {
                        c->last = ++g->uses;
                        return c;
                }
                if (!t || !c->used || (t->used && c->last < t->last))
                        t = c;
        }
        key_table_clear(t);
        mbedtls_ecp_group_init(&t->grp);
        if (mbedtls_ecp_group_load(&t->grp, MBEDTLS_ECP_DP_SECP256R1) != 0 || t->grp.T) {
                mbedtls_ecp_group_free(&t->grp);
                return NULL;
        }
        /* G's coordinates point at mbedTLS's static constants: let go of them
         * (nothing to free) and take a copy of q, freed by key_table_clear */
        mbedtls_ecp_point_init(&t->grp.G);
        if (mbedtls_ecp_copy(&t->grp.G, q) != 0) {
                mbedtls_ecp_point_free(&t->grp.G);
                mbedtls_ecp_group_free(&t->grp);
                return NULL;
        }
        memcpy(t->pub, pub, P256_PUB_LEN);
        t->used = true;
        t->last = ++g->uses;
        return t;
}

/*
 * ECDSA verification (SEC1 4.1.4, as mbedtls_ecdsa_verify does it) in parts, so that its
 * two multiplications can run on two threads (p256_split below) or one after the other
 * (ecdsa_verify_table): 1 <= r, s < n; e = hash mod n; w = s^-1 mod n; u1 = e w mod n,
 * u2 = r w mod n; R = u1 G + u2 Q, each product from its kept table; valid when R is not
 * the point at infinity and R.x mod n = r.  Every number and point operation is mbedTLS's.
 */

/* Whether 1 <= r, s < n. */
static bool ecdsa_in_range(const mbedtls_ecp_group *grp, const mbedtls_mpi *r, const mbedtls_mpi *s)
{
        return mbedtls_mpi_cmp_int(r, 1) >= 0 && mbedtls_mpi_cmp_mpi(r, &grp->N) < 0 &&
               mbedtls_mpi_cmp_int(s, 1) >= 0 && mbedtls_mpi_cmp_mpi(s, &grp->N) < 0;
}

/* u1 = e w mod n and/or u2 = r w mod n (either may be NULL), w = s^-1 mod n.  0 or -ENOMEM. */
static int ecdsa_scalars(const mbedtls_ecp_group *grp, const uint8_t hash[CRYPTO_SHA256_LEN],
                         const mbedtls_mpi *r, const mbedtls_mpi *s, mbedtls_mpi *u1,
                         mbedtls_mpi *u2)
{
        mbedtls_mpi e, w;
        int ret = 0;

        mbedtls_mpi_init(&e);
        mbedtls_mpi_init(&w);
        /* e: the 256 bits of the hash (n has 256 bits too: no shift), reduced once
         * as mbedTLS's derive_mpi does (2^256 < 2n) */
        if (mbedtls_mpi_inv_mod(&w, s, &grp->N) != 0 ||
            (u1 && (mbedtls_mpi_read_binary(&e, hash, CRYPTO_SHA256_LEN) != 0 ||
                    (mbedtls_mpi_cmp_mpi(&e, &grp->N) >= 0 &&
                     mbedtls_mpi_sub_mpi(&e, &e, &grp->N) != 0) ||
                    mbedtls_mpi_mul_mpi(u1, &e, &w) != 0 ||
                    mbedtls_mpi_mod_mpi(u1, u1, &grp->N) != 0)) ||
            (u2 && (mbedtls_mpi_mul_mpi(u2, r, &w) != 0 ||
                    mbedtls_mpi_mod_mpi(u2, u2, &grp->N) != 0)))
                ret = -ENOMEM;
        mbedtls_mpi_free(&e);
        mbedtls_mpi_free(&w);
        return ret;
}

/* R = u2 Q: from Q's kept table t on this thread, or (t NULL) from q without one. */
static int ecdsa_mul_q(ec_group *g, key_table *t, const mbedtls_ecp_point *q,
                       const mbedtls_mpi *u2, mbedtls_ecp_point *R)
{
        /* u2 is not 0 (r and w are units mod the prime n): within mbedtls_ecp_mul's range */
        if (t)
                return mbedtls_ecp_mul(&t->grp, R, u2, &t->grp.G, EC_BLIND(g)) == 0 ? 0 : -ENOMEM;
        return mbedtls_ecp_mul(&g->grp, R, u2, q, EC_BLIND(g)) == 0 ? 0 : -ENOMEM;
}

/* R = u1 G from the thread's table of G; *zero (and R untouched) when u1 = 0, which
 * mbedtls_ecp_mul does not take (1 <= m < n only). */
static int ecdsa_mul_g(ec_group *g, const mbedtls_mpi *u1, mbedtls_ecp_point *R, bool *zero)
{
        *zero = mbedtls_mpi_cmp_int(u1, 0) == 0;
        if (*zero)
                return 0;
        return mbedtls_ecp_mul(&g->grp, R, u1, &g->grp.G, EC_BLIND(g)) == 0 ? 0 : -ENOMEM;
}

/* x mod n == r for a coordinate 0 <= x < p: 0, else HYB_E_AUTH (-ENOMEM). */
static int ecdsa_x_is_r(const mbedtls_ecp_group *grp, const mbedtls_mpi *x, const mbedtls_mpi *r)
{
        mbedtls_mpi t;
        int ret;

        mbedtls_mpi_init(&t);
        ret = mbedtls_mpi_mod_mpi(&t, x, &grp->N) != 0 ? -ENOMEM
              : mbedtls_mpi_cmp_mpi(&t, r) == 0      ? 0
                                                     : HYB_E_AUTH;
        mbedtls_mpi_free(&t);
        return ret;
}

/*
 * The verdict from p1 = u1 G (p1_zero: u1 = 0, the point at infinity) and p2 = u2 Q, both
 * affine (Z = 1, as mbedtls_ecp_mul leaves them): R = p1 + p2, valid when R is not the
 * point at infinity and R.x mod n = r.  With x1 != x2 the sum is the affine point of
 * x3 = L^2 / H^2 - x1 - x2 (H = x2 - x1, L = y2 - y1, mod p), so without inverting H:
 * x3 mod n = r exactly when x3 = r or x3 = r + n (0 <= x3 < p < 2n), that is when
 * L^2 - (x1 + x2) H^2 = r H^2 or (r + n < p) = (r + n) H^2 (mod p).  Anything else (x1 =
 * x2: a doubling or the point at infinity; a point not affine) goes through
 * mbedtls_ecp_muladd.  0 or HYB_E_AUTH (-ENOMEM).
 */
static int ecdsa_combine(mbedtls_ecp_group *grp, const mbedtls_ecp_point *p1, bool p1_zero,
                         const mbedtls_ecp_point *p2, const mbedtls_mpi *r)
{
        mbedtls_mpi h, l, h2, x3, t, one;
        mbedtls_ecp_point sum;
        int ret = -ENOMEM;

        if (mbedtls_ecp_is_zero((mbedtls_ecp_point *)p2))
                return HYB_E_AUTH; /* u2 Q is never infinity for a valid Q; fail closed */
        if (p1_zero)
                return ecdsa_x_is_r(grp, &p2->X, r);
        mbedtls_mpi_init(&h);
        mbedtls_mpi_init(&l);
        mbedtls_mpi_init(&h2);
        mbedtls_mpi_init(&x3);
        mbedtls_mpi_init(&t);
        mbedtls_mpi_init(&one);
        mbedtls_ecp_point_init(&sum);
        if (mbedtls_mpi_cmp_int(&p1->Z, 1) != 0 || mbedtls_mpi_cmp_int(&p2->Z, 1) != 0 ||
            mbedtls_mpi_cmp_mpi(&p1->X, &p2->X) == 0) {
                if (mbedtls_mpi_lset(&one, 1) != 0 ||
                    mbedtls_ecp_muladd(grp, &sum, &one, p1, &one, p2) != 0)
                        goto done;
                ret = mbedtls_ecp_is_zero(&sum) ? HYB_E_AUTH : ecdsa_x_is_r(grp, &sum.X, r);
                goto done;
        }
        if (mbedtls_mpi_sub_mpi(&h, &p2->X, &p1->X) != 0 ||
            mbedtls_mpi_mod_mpi(&h, &h, &grp->P) != 0 ||
            mbedtls_mpi_sub_mpi(&l, &p2->Y, &p1->Y) != 0 ||
            mbedtls_mpi_mod_mpi(&l, &l, &grp->P) != 0 ||
            mbedtls_mpi_mul_mpi(&h2, &h, &h) != 0 || mbedtls_mpi_mod_mpi(&h2, &h2, &grp->P) != 0 ||
            /* x3 = L^2 - (x1 + x2) H^2 mod p */
            mbedtls_mpi_add_mpi(&t, &p1->X, &p2->X) != 0 || mbedtls_mpi_mul_mpi(&t, &t, &h2) != 0 ||
            mbedtls_mpi_mul_mpi(&x3, &l, &l) != 0 || mbedtls_mpi_sub_mpi(&x3, &x3, &t) != 0 ||
            mbedtls_mpi_mod_mpi(&x3, &x3, &grp->P) != 0 ||
            /* r H^2 mod p */
            mbedtls_mpi_mul_mpi(&t, r, &h2) != 0 || mbedtls_mpi_mod_mpi(&t, &t, &grp->P) != 0)
                goto done;
        if (mbedtls_mpi_cmp_mpi(&x3, &t) == 0) {
                ret = 0;
                goto done;
        }
        /* r + n < p: (r + n) H^2 mod p */
        if (mbedtls_mpi_add_mpi(&one, r, &grp->N) != 0)
                goto done;
        ret = HYB_E_AUTH;
        if (mbedtls_mpi_cmp_mpi(&one, &grp->P) < 0) {
                if (mbedtls_mpi_mul_mpi(&t, &one, &h2) != 0 ||
                    mbedtls_mpi_mod_mpi(&t, &t, &grp->P) != 0)
                        ret = -ENOMEM;
                else if (mbedtls_mpi_cmp_mpi(&x3, &t) == 0)
                        ret = 0;
        }
done:
        mbedtls_mpi_free(&h);
        mbedtls_mpi_free(&l);
        mbedtls_mpi_free(&h2);
        mbedtls_mpi_free(&x3);
        mbedtls_mpi_free(&t);
        mbedtls_mpi_free(&one);
        mbedtls_ecp_point_free(&sum);
        return ret;
}

/* The verification of (r, s) over hash by the key of table t (or q, t NULL) on this
 * thread, both multiplications here: 0 or HYB_E_AUTH. */
static int ecdsa_verify_table(ec_group *g, key_table *t, const mbedtls_ecp_point *q,
                              const uint8_t hash[CRYPTO_SHA256_LEN], const mbedtls_mpi *r,
                              const mbedtls_mpi *s)
{
        mbedtls_mpi u1, u2;
        mbedtls_ecp_point r1, r2;
        bool zero = false;
        int ret = HYB_E_AUTH;

        if (!ecdsa_in_range(&g->grp, r, s))
                return HYB_E_AUTH;
        mbedtls_mpi_init(&u1);
        mbedtls_mpi_init(&u2);
        mbedtls_ecp_point_init(&r1);
        mbedtls_ecp_point_init(&r2);
        if (ecdsa_scalars(&g->grp, hash, r, s, &u1, &u2) == 0 &&
            ecdsa_mul_q(g, t, q, &u2, &r2) == 0 && ecdsa_mul_g(g, &u1, &r1, &zero) == 0)
                ret = ecdsa_combine(&g->grp, &r1, zero, &r2, r) == 0 ? 0 : HYB_E_AUTH;
        mbedtls_mpi_free(&u1);
        mbedtls_mpi_free(&u2);
        mbedtls_ecp_point_free(&r1);
        mbedtls_ecp_point_free(&r2);
        return ret;
}

/* p256_ecdsa_check, and with low_s the low-S rule of p256_verify_hash. */
static int ecdsa_check(const p256_key *k, const uint8_t hash[CRYPTO_SHA256_LEN], const uint8_t *sig,
                       size_t sig_len, bool by_table, bool low_s)
{
        key_table *t = NULL;
        ec_ctx c;
        int r;

        if (sig_len != P256_SIG_LEN)
                return HYB_E_AUTH;
        r = ec_ctx_init(&c);
        if (r >= 0 && (mbedtls_mpi_read_binary(&c.r, sig, 32) != 0 ||
                       mbedtls_mpi_read_binary(&c.s, sig + 32, 32) != 0))
                r = -ENOMEM;
        /* s <= n/2 (low-S); the ranges of r and s are checked by both paths below */
        if (r >= 0 && low_s && mbedtls_mpi_cmp_mpi(&c.s, c.half_n) > 0)
                r = HYB_E_AUTH;
        if (r >= 0 && by_table && !c.g_owned) {
                /* a key seen before was checked on the curve when its table was made */
                for (size_t i = 0; i < KEYTAB_MAX && !t; i++)
                        if (c.g->tab[i].used && memcmp(c.g->tab[i].pub, k->pub, P256_PUB_LEN) == 0)
                                t = &c.g->tab[i];
                if (t)
                        t->last = ++c.g->uses;
        }
        if (r >= 0 && !t && ec_read_q(&c, k->pub, P256_PUB_LEN) < 0)
                r = HYB_E_AUTH;
        if (r >= 0 && !t && by_table && !c.g_owned)
                t = key_table_get(c.g, k->pub, &c.q);
        if (r >= 0) {
                if (t)
                        r = ecdsa_verify_table(c.g, t, NULL, hash, &c.r, &c.s);
                else if (mbedtls_ecdsa_verify(c.grp, hash, CRYPTO_SHA256_LEN, &c.q, &c.r, &c.s) != 0)
                        r = HYB_E_AUTH;
        }
        ec_ctx_done(&c);
        return r;
}

int p256_ecdsa_check(const p256_key *k, const uint8_t hash[CRYPTO_SHA256_LEN],
                     const uint8_t *sig, size_t sig_len, bool by_table)
{
        return ecdsa_check(k, hash, sig, sig_len, by_table, false);
}

int p256_verify_hash(const p256_key *k, const uint8_t hash[CRYPTO_SHA256_LEN],
                     const uint8_t *sig, size_t sig_len)
{
        return ecdsa_check(k, hash, sig, sig_len, true, true);
}

/* ----------------------------------------------------- split verification */

struct p256_split {
        uint8_t pub[P256_PUB_LEN];
        uint8_t hash[CRYPTO_SHA256_LEN];
        mbedtls_mpi r, s;
        /* each part's product and state, written by that part alone */
        mbedtls_ecp_point pt[2];
        int status[2]; /* 0 done, -EINPROGRESS not run, < 0 failed */
        bool g_zero;   /* u1 = 0: u1 G is the point at infinity */
};

void p256_split_free(p256_split *s)
{
        if (!s)
                return;
        mbedtls_mpi_free(&s->r);
        mbedtls_mpi_free(&s->s);
        mbedtls_ecp_point_free(&s->pt[0]);
        mbedtls_ecp_point_free(&s->pt[1]);
        free(s);
}

int p256_split_new(const p256_key *k, const uint8_t hash[CRYPTO_SHA256_LEN], const uint8_t *sig,
                   size_t sig_len, bool low_s, p256_split **ret)
{
        p256_split *s;
        ec_ctx c;
        int r;

        if (sig_len != P256_SIG_LEN)
                return HYB_E_AUTH;
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        mbedtls_mpi_init(&s->r);
        mbedtls_mpi_init(&s->s);
        mbedtls_ecp_point_init(&s->pt[0]);
        mbedtls_ecp_point_init(&s->pt[1]);
        s->status[0] = s->status[1] = -EINPROGRESS;
        memcpy(s->pub, k->pub, P256_PUB_LEN);
        memcpy(s->hash, hash, CRYPTO_SHA256_LEN);
        r = ec_ctx_init(&c);
        if (r >= 0 && (mbedtls_mpi_read_binary(&s->r, sig, 32) != 0 ||
                       mbedtls_mpi_read_binary(&s->s, sig + 32, 32) != 0))
                r = -ENOMEM;
        if (r >= 0 && (!ecdsa_in_range(c.grp, &s->r, &s->s) ||
                       (low_s && mbedtls_mpi_cmp_mpi(&s->s, c.half_n) > 0)))
                r = HYB_E_AUTH;
        ec_ctx_done(&c);
        if (r < 0) {
                p256_split_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

void p256_split_run(p256_split *s, unsigned part)
{
        key_table *t = NULL;
        mbedtls_mpi u;
        ec_ctx c;
        int r;

        if (part > P256_SPLIT_G || s->status[part] != -EINPROGRESS)
                return;
        mbedtls_mpi_init(&u);
        r = ec_ctx_init(&c);
        if (r >= 0 && part == P256_SPLIT_Q) {
                /* this thread's table of the key (a key seen before was checked on the
                 * curve when its table was made), else the point read and checked now */
                if (!c.g_owned) {
                        for (size_t i = 0; i < KEYTAB_MAX && !t; i++)
                                if (c.g->tab[i].used &&
                                    memcmp(c.g->tab[i].pub, s->pub, P256_PUB_LEN) == 0)
                                        t = &c.g->tab[i];
                        if (t)
                                t->last = ++c.g->uses;
                }
                if (!t && ec_read_q(&c, s->pub, P256_PUB_LEN) < 0)
                        r = HYB_E_AUTH;
                if (r >= 0 && !t && !c.g_owned)
                        t = key_table_get(c.g, s->pub, &c.q);
                if (r >= 0)
                        r = ecdsa_scalars(c.grp, s->hash, &s->r, &s->s, NULL, &u);
                if (r >= 0)
                        r = ecdsa_mul_q(c.g, t, &c.q, &u, &s->pt[0]);
        } else if (r >= 0) {
                r = ecdsa_scalars(c.grp, s->hash, &s->r, &s->s, &u, NULL);
                if (r >= 0)
                        r = ecdsa_mul_g(c.g, &u, &s->pt[1], &s->g_zero);
        }
        ec_ctx_done(&c);
        mbedtls_mpi_free(&u);
        s->status[part] = r < 0 ? r : 0;
}

int p256_split_finish(const p256_split *s)
{
        ec_ctx c;
        int r;

        if (s->status[0] != 0 || s->status[1] != 0)
                return HYB_E_AUTH;
        r = ec_ctx_init(&c);
        if (r >= 0)
                r = ecdsa_combine(c.grp, &s->pt[1], s->g_zero, &s->pt[0], &s->r);
        ec_ctx_done(&c);
        return r == 0 ? 0 : HYB_E_AUTH;
}

size_t p256_key_tables(void)
{
        ec_group *g;
        size_t n = 0;

        (void)pthread_once(&ec_tls_once, ec_tls_init);
        if (!ec_tls_ok || !(g = pthread_getspecific(ec_tls)))
                return 0;
        for (size_t i = 0; i < KEYTAB_MAX; i++)
                n += g->tab[i].used;
        return n;
}

/* ------------------------------------------------------------ key files */

/* The first BEGIN line's label ("PRIVATE KEY", ...) in text, for messages; "" if none. */
static void pem_label(const char *text, char *out, size_t size)
{
        const char *b = strstr(text, "-----BEGIN ");
        out[0] = '\0';
        if (!b)
                return;
        b += strlen("-----BEGIN ");
        const char *e = strstr(b, "-----");
        size_t n = e ? (size_t)(e - b) : 0;
        if (n >= size)
                n = size - 1;
        memcpy(out, b, n);
        out[n] = '\0';
}

/* Takes a parsed pk: a P-256 key becomes a p256_key, anything else a clear refusal. */
static int from_pk(mbedtls_pk_context *pk, bool priv, p256_key **ret, hyb_error *reterr)
{
        mbedtls_pk_type_t type = mbedtls_pk_get_type(pk);
        uint8_t d[P256_SCALAR_LEN], pub[P256_PUB_LEN];
        size_t olen;
        int r;

        /* id-ecPublicKey (what every tool writes) or id-ecdsa; not id-ecDH, a key
         * its owner restricted to key agreement */
        if (type != MBEDTLS_PK_ECKEY && type != MBEDTLS_PK_ECDSA)
                return err_set(reterr, HYB_E_NOT_ACCEPTABLE, -1,
                               "%s key: only EC P-256 (secp256r1, ES256) keys are supported",
                               mbedtls_pk_get_name(pk));
        mbedtls_ecp_keypair *ec = mbedtls_pk_ec(*pk);
        if (ec->grp.id != MBEDTLS_ECP_DP_SECP256R1) {
                const mbedtls_ecp_curve_info *ci = mbedtls_ecp_curve_info_from_grp_id(ec->grp.id);
                return err_set(reterr, HYB_E_NOT_ACCEPTABLE, -1,
                               "EC key on curve %s: only P-256 (secp256r1) is supported",
                               ci ? ci->name : "(unknown)");
        }
        if (mbedtls_ecp_point_write_binary(&ec->grp, &ec->Q, MBEDTLS_ECP_PF_UNCOMPRESSED, &olen, pub,
                                           sizeof(pub)) != 0 ||
            olen != sizeof(pub))
                return err_set(reterr, HYB_E_PARSE, -1, "invalid EC public point");
        if (!priv) {
                r = p256_from_public(pub, sizeof(pub), ret);
                if (r == HYB_E_PARSE)
                        return err_set(reterr, r, -1, "public point is not on the P-256 curve");
                return r;
        }
        if (mbedtls_mpi_write_binary(&ec->d, d, sizeof(d)) != 0)
                return err_set(reterr, HYB_E_PARSE, -1, "invalid EC private scalar");
        r = p256_from_private(d, pub, ret);
        crypto_zero(d, sizeof(d));
        if (r == HYB_E_PARSE)
                return err_set(reterr, r, -1, "private scalar out of range or not matching "
                                              "the stored public key");
        return r;
}

int p256_parse_pem(const char *data, size_t len, p256_key **ret, hyb_error *reterr)
{
        mbedtls_pk_context pk;
        char label[64], why[128];
        int r, m;

        /* mbedTLS reads PEM only from a NUL-terminated buffer whose length counts the NUL */
        _cleanup_free_ char *text = strndup_safe(data, len);
        if (!text)
                return -ENOMEM;
        if (strlen(text) != len)
                return err_set(reterr, HYB_E_PARSE, -1, "key file holds a NUL byte");
        pem_label(text, label, sizeof(label));
        if (!label[0])
                return err_set(reterr, HYB_E_PARSE, -1, "no PEM key (no -----BEGIN line)");
        if (strstr(label, "ENCRYPTED"))
                return err_set(reterr, HYB_E_PARSE, -1,
                               "encrypted private keys are not supported (%s)", label);

        mbedtls_pk_init(&pk);
        bool pub = strstr(text, "-----BEGIN PUBLIC KEY-----") &&
                   !strstr(text, "PRIVATE KEY-----");
        if (pub)
                m = mbedtls_pk_parse_public_key(&pk, (const unsigned char *)text, len + 1);
        else
                m = mbedtls_pk_parse_key(&pk, (const unsigned char *)text, len + 1, NULL, 0);
        if (m == 0) {
                r = from_pk(&pk, !pub, ret, reterr);
        } else if (m == MBEDTLS_ERR_ECP_INVALID_KEY) {
                /* mbedTLS checks the point while parsing */
                r = err_set(reterr, HYB_E_PARSE, -1,
                            "cannot read %s: the public point is not on the curve, or the "
                            "private scalar is out of range", label);
        } else {
                mbedtls_strerror(m, why, sizeof(why));
                r = m == MBEDTLS_ERR_PK_UNKNOWN_PK_ALG || m == MBEDTLS_ERR_PK_UNKNOWN_NAMED_CURVE ||
                                    m == MBEDTLS_ERR_ECP_FEATURE_UNAVAILABLE
                            ? HYB_E_NOT_ACCEPTABLE
                            : HYB_E_PARSE;
                r = err_set(reterr, r, -1, "cannot read %s: %s%s", label, why,
                            r == HYB_E_NOT_ACCEPTABLE
                                    ? " (only EC P-256 keys are supported)" : "");
        }
        mbedtls_pk_free(&pk);
        return r;
}

/* The PEM of len DER bytes ending at end, in a new string. */
static int pem_wrap(const char *label, const unsigned char *der, size_t len, char **ret)
{
        char head[64], foot[64];
        size_t olen = 0;

        snprintf(head, sizeof(head), "-----BEGIN %s-----\n", label);
        snprintf(foot, sizeof(foot), "-----END %s-----\n", label);
        (void)mbedtls_pem_write_buffer(head, foot, der, len, NULL, 0, &olen);
        _cleanup_free_ char *s = malloc(olen);
        if (!s)
                return -ENOMEM;
        if (mbedtls_pem_write_buffer(head, foot, der, len, (unsigned char *)s, olen, &olen) != 0)
                return HYB_E_INTERNAL;
        *ret = TAKE_PTR(s);
        return 0;
}

/* Writes AlgorithmIdentifier { id-ecPublicKey, prime256v1 } before *p. */
static int write_p256_alg(unsigned char **p, unsigned char *start)
{
        int n, len = 0;

        n = mbedtls_asn1_write_oid(p, start, MBEDTLS_OID_EC_GRP_SECP256R1,
                                   MBEDTLS_OID_SIZE(MBEDTLS_OID_EC_GRP_SECP256R1));
        if (n < 0)
                return n;
        len += n;
        /* returns the whole SEQUENCE, the parameters written above included */
        return mbedtls_asn1_write_algorithm_identifier(p, start, MBEDTLS_OID_EC_ALG_UNRESTRICTED,
                                                       MBEDTLS_OID_SIZE(MBEDTLS_OID_EC_ALG_UNRESTRICTED),
                                                       (size_t)len);
}

/* Prepends a tag and length for the len bytes written last; returns the header's size. */
static int wrap_tag(unsigned char **p, unsigned char *start, size_t len, unsigned char tag)
{
        int a = mbedtls_asn1_write_len(p, start, len);
        if (a < 0)
                return a;
        int b = mbedtls_asn1_write_tag(p, start, tag);
        if (b < 0)
                return b;
        return a + b;
}

#define CHK(expr)                               \
        do {                                    \
                int chk_ = (expr);              \
                if (chk_ < 0)                   \
                        goto fail;              \
                len += (size_t)chk_;            \
        } while (0)

int p256_write_pem_private(const p256_key *k, char **ret)
{
        /* PKCS#8 (RFC 5208) PrivateKeyInfo holding an RFC 5915 ECPrivateKey, the
         * layout OpenSSL writes:
         *   SEQ { INT 0, SEQ { OID ecPublicKey, OID prime256v1 },
         *         OCTET STRING { SEQ { INT 1, OCTET STRING d, [1] { BIT STRING Q } } } } */
        unsigned char buf[256], *p = buf + sizeof(buf);
        size_t len = 0, inner;
        int r = HYB_E_INTERNAL;

        if (!k->has_private)
                return -ENOKEY;
        CHK(mbedtls_asn1_write_bitstring(&p, buf, k->pub, P256_PUB_LEN * 8));
        CHK(wrap_tag(&p, buf, len, MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | 1));
        CHK(mbedtls_asn1_write_octet_string(&p, buf, k->d, P256_SCALAR_LEN));
        CHK(mbedtls_asn1_write_int(&p, buf, 1));
        CHK(wrap_tag(&p, buf, len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
        inner = len;
        CHK(wrap_tag(&p, buf, inner, MBEDTLS_ASN1_OCTET_STRING));
        CHK(write_p256_alg(&p, buf));
        CHK(mbedtls_asn1_write_int(&p, buf, 0));
        CHK(wrap_tag(&p, buf, len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
        r = pem_wrap("PRIVATE KEY", p, len, ret);
fail:
        crypto_zero(buf, sizeof(buf));
        return r;
}

int p256_write_pem_public(const p256_key *k, char **ret)
{
        /* SubjectPublicKeyInfo (RFC 5480): SEQ { SEQ { OID ecPublicKey, OID prime256v1 },
         * BIT STRING Q } */
        unsigned char buf[160], *p = buf + sizeof(buf);
        size_t len = 0;

        CHK(mbedtls_asn1_write_bitstring(&p, buf, k->pub, P256_PUB_LEN * 8));
        CHK(write_p256_alg(&p, buf));
        CHK(wrap_tag(&p, buf, len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
        return pem_wrap("PUBLIC KEY", p, len, ret);
fail:
        return HYB_E_INTERNAL;
}
