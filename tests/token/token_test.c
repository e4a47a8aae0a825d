/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "common/util.h"
#include "testutil.h"
#include "token_test.h"

void hex_to_bytes(const char *hex, uint8_t *out, size_t n)
{
        ck_assert_uint_ge(strlen(hex), 2 * n);
        for (size_t i = 0; i < n; i++) {
                int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
                ck_assert(hi >= 0 && lo >= 0);
                out[i] = (uint8_t)(hi << 4 | lo);
        }
}

void be_sub(const uint8_t a[32], const uint8_t b[32], uint8_t out[32])
{
        int borrow = 0;

        for (int i = 31; i >= 0; i--) {
                int d = a[i] - b[i] - borrow;
                borrow = d < 0;
                out[i] = (uint8_t)(d + (borrow ? 256 : 0));
        }
        ck_assert_int_eq(borrow, 0);
}

/* One DER INTEGER of a 32-byte unsigned big-endian value. */
static size_t der_int(const uint8_t v[32], uint8_t *out)
{
        size_t i = 0, n;

        while (i < 31 && v[i] == 0)
                i++;
        n = 32 - i;
        out[0] = 0x02;
        if (v[i] & 0x80) {
                out[1] = (uint8_t)(n + 1);
                out[2] = 0;
                memcpy(out + 3, v + i, n);
                return n + 3;
        }
        out[1] = (uint8_t)n;
        memcpy(out + 2, v + i, n);
        return n + 2;
}

size_t der_signature(const uint8_t raw[64], uint8_t *out)
{
        size_t n = der_int(raw, out + 2);
        n += der_int(raw + 32, out + 2 + n);
        out[0] = 0x30;
        out[1] = (uint8_t)n;
        return n + 2;
}

hyb_token_trust *token_test_trust(hyb_key *issuer, hyb_key *other)
{
        hyb_token_trust *trust = NULL;

        ck_assert_int_eq(hyb_token_trust_new(&trust), 0);
        ck_assert_int_eq(hyb_token_trust_add(trust, "hub", issuer), 0);
        ck_assert_int_eq(hyb_token_trust_add(trust, "other", other), 0);
        return trust;
}

char *token_test_issue(const hyb_key *issuer, const hyb_key *holder, const hyb_token_cap *caps,
                       size_t n_caps, unsigned dlg, uint64_t ttl_s, uint64_t epo)
{
        const char *aud[] = { TOKEN_TEST_AUD };
        hyb_token_issue_opts o;
        hyb_error e = { 0 };
        char *tok = NULL;

        hyb_token_issue_opts_init(&o);
        o.iss = "hub";
        o.sub = "alice";
        o.aud = aud;
        o.n_aud = 1;
        o.holder = holder;
        o.caps = caps;
        o.n_caps = n_caps;
        o.now = TOKEN_TEST_NOW;
        o.ttl_s = ttl_s;
        o.dlg = dlg;
        o.epo = epo;
        ck_assert_msg(hyb_token_issue(issuer, &o, &tok, &e) == 0, "issue: %s", e.message);
        return tok;
}

static int run(char **ret, const char *fmt, va_list ap)
{
        char *cmd = NULL, *buf = NULL;
        size_t len = 0, cap = 0;
        char chunk[4096];
        size_t k;

        ck_assert_int_ge(vasprintf(&cmd, fmt, ap), 0);
        FILE *f = popen(cmd, "r");
        ck_assert_msg(f != NULL, "cannot run %s", cmd);
        while ((k = fread(chunk, 1, sizeof(chunk), f)) > 0) {
                if (len + k + 1 > cap) {
                        cap = (len + k + 1) * 2;
                        buf = realloc(buf, cap);
                        ck_assert_ptr_nonnull(buf);
                }
                memcpy(buf + len, chunk, k);
                len += k;
        }
        int st = pclose(f);
        free(cmd);
        if (buf) {
                buf[len] = '\0';
                while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
                        buf[--len] = '\0';
        }
        if (ret)
                *ret = buf;
        else
                free(buf);
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int sh(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int r = run(NULL, fmt, ap);
        va_end(ap);
        return r;
}

char *sh_out(const char *fmt, ...)
{
        char *out = NULL;
        va_list ap;
        va_start(ap, fmt);
        int r = run(&out, fmt, ap);
        va_end(ap);
        if (r != 0) {
                free(out);
                return NULL;
        }
        return out ? out : strdup("");
}

const char *interop_py(void)
{
        static char path[4096];
        snprintf(path, sizeof(path), "%s", test_data_path("token/interop.py"));
        return path;
}
