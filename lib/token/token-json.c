/* SPDX-License-Identifier: MIT */
/*
 * The text of a token before and after base64url: the hard limits and the
 * charset (checked before anything is decoded), the strict JSON of headers
 * and claims, the header templates and the typed claim readers.
 */
#include <string.h>

#include "common/util.h"
#include "token-internal.h"

static int fail(hyb_error *e, const char *fmt, const char *what)
{
        return err_set(e, HYB_E_UNAUTHORIZED, -1, fmt, what);
}

bool token_is_b64url_char(unsigned char c)
{
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_';
}

int token_split(const char *text, size_t len, token_part parts[TOKEN_MAX_BLOCKS], size_t *ret_n,
                hyb_error *e)
{
        size_t n = 0, i = 0;

        if (!text || len == 0)
                return fail(e, "%s", "empty token");
        if (len > TOKEN_MAX_SIZE)
                return err_set(e, HYB_E_UNAUTHORIZED, -1, "token of %zu bytes, over %d", len,
                               TOKEN_MAX_SIZE);
        /* The charset first: only base64url, the two dots of each block and `~`. */
        for (size_t k = 0; k < len; k++) {
                unsigned char c = (unsigned char)text[k];

                if (!token_is_b64url_char(c) && c != '.' && c != '~')
                        return err_set(e, HYB_E_UNAUTHORIZED, (long)k,
                                       "byte 0x%02x at offset %zu is not in a token", c, k);
        }
        while (i <= len) {
                const char *b = text + i;
                const char *end = memchr(b, '~', len - i);
                size_t bl = end ? (size_t)(end - b) : len - i;
                const char *d1, *d2;

                if (n == TOKEN_MAX_BLOCKS)
                        return err_set(e, HYB_E_UNAUTHORIZED, -1, "more than %d blocks",
                                       TOKEN_MAX_BLOCKS);
                d1 = memchr(b, '.', bl);
                d2 = d1 ? memchr(d1 + 1, '.', bl - (size_t)(d1 + 1 - b)) : NULL;
                if (!d1 || !d2 || memchr(d2 + 1, '.', bl - (size_t)(d2 + 1 - b)))
                        return err_set(e, HYB_E_UNAUTHORIZED, -1,
                                       "block %zu is not header.payload.signature", n);
                parts[n] = (token_part){
                        .hdr = b,
                        .hdr_len = (size_t)(d1 - b),
                        .payload = d1 + 1,
                        .payload_len = (size_t)(d2 - d1 - 1),
                        .sig = d2 + 1,
                        .sig_len = bl - (size_t)(d2 + 1 - b),
                        .signed_text = b,
                        .signed_len = (size_t)(d2 - b),
                };
                if (parts[n].hdr_len == 0 || parts[n].hdr_len > TOKEN_MAX_HEADER_B64 ||
                    parts[n].payload_len == 0 || parts[n].payload_len > TOKEN_MAX_PAYLOAD_B64 ||
                    parts[n].sig_len != TOKEN_SIG_B64)
                        return err_set(e, HYB_E_UNAUTHORIZED, -1,
                                       "block %zu: a part has the wrong size", n);
                n++;
                if (!end)
                        break;
                i += bl + 1;
        }
        *ret_n = n;
        return 0;
}

/*
 * The nesting depth outside strings, before jansson sees the text: jansson's
 * own limit (2048) is far above anything a token needs, and recursion that
 * deep on a peer's input is what the limit is for.
 */
static bool depth_ok(const uint8_t *s, size_t len)
{
        int depth = 0;
        bool in_str = false;

        for (size_t i = 0; i < len; i++) {
                uint8_t c = s[i];

                if (in_str) {
                        if (c == '\\')
                                i++;
                        else if (c == '"')
                                in_str = false;
                } else if (c == '"') {
                        in_str = true;
                } else if (c == '{' || c == '[') {
                        if (++depth > TOKEN_MAX_JSON_DEPTH)
                                return false;
                } else if (c == '}' || c == ']') {
                        depth--;
                }
        }
        return true;
}

int token_json_parse(const uint8_t *data, size_t len, json_t **ret, hyb_error *e)
{
        json_error_t je;
        json_t *j;

        if (memchr(data, 0, len))
                return fail(e, "%s", "NUL byte in JSON");
        if (!depth_ok(data, len))
                return fail(e, "%s", "JSON nested too deep");
        /* Without JSON_ALLOW_NUL jansson refuses \u0000 in strings; it always refuses
         * invalid UTF-8. */
        j = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &je);
        if (!j)
                return err_set(e, HYB_E_UNAUTHORIZED, je.position, "JSON: %s", je.text);
        if (!json_is_object(j)) {
                json_decref(j);
                return fail(e, "%s", "JSON is not an object");
        }
        *ret = j;
        return 0;
}

int token_header_check(json_t *hdr, size_t index, const char **ret_kid, hyb_error *e)
{
        const char *expect_typ = index == 0 ? TOKEN_TYP_AUTHORITY : TOKEN_TYP_ATTENUATION;
        json_t *alg = json_object_get(hdr, "alg"), *typ = json_object_get(hdr, "typ");
        json_t *kid = json_object_get(hdr, "kid");
        size_t want = index == 0 ? 3 : 2;

        /* Exactly the template's members: anything else (jku, jwk, x5u, crit...) is refused
         * rather than ignored. */
        if (json_object_size(hdr) != want || !json_is_string(alg) || !json_is_string(typ) ||
            (index == 0) != (kid != NULL))
                return err_set(e, HYB_E_UNAUTHORIZED, -1, "block %zu: header is not the template",
                               index);
        if (strcmp(json_string_value(alg), "ES256") != 0 || json_string_length(alg) != 5)
                return err_set(e, HYB_E_UNAUTHORIZED, -1, "block %zu: alg is not ES256", index);
        if (strcmp(json_string_value(typ), expect_typ) != 0 ||
            json_string_length(typ) != strlen(expect_typ))
                return err_set(e, HYB_E_UNAUTHORIZED, -1, "block %zu: typ is not %s", index,
                               expect_typ);
        if (kid) {
                /* A thumbprint: 43 base64url characters, nothing path- or URL-like. */
                const char *k = json_is_string(kid) ? json_string_value(kid) : NULL;

                if (!k || json_string_length(kid) != 43)
                        return fail(e, "%s", "block 0: kid is not a key thumbprint");
                for (size_t i = 0; i < 43; i++)
                        if (!token_is_b64url_char((unsigned char)k[i]))
                                return fail(e, "%s", "block 0: kid is not a key thumbprint");
                *ret_kid = k;
        }
        return 0;
}

int token_claim_time(json_t *claims, const char *name, bool required, int64_t *ret, hyb_error *e)
{
        json_t *v = json_object_get(claims, name);

        if (!v) {
                if (required)
                        return fail(e, "claim %s is missing", name);
                return 0;
        }
        /* jansson keeps 1 and 1.0 apart: a real is refused, as a string is. */
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) >= ((json_int_t)1 << 53))
                return fail(e, "claim %s is not an integer NumericDate", name);
        *ret = (int64_t)json_integer_value(v);
        return 1;
}

int token_claim_string(json_t *claims, const char *name, bool required, const char **ret,
                       hyb_error *e)
{
        json_t *v = json_object_get(claims, name);
        size_t n;

        if (!v) {
                if (required)
                        return fail(e, "claim %s is missing", name);
                return 0;
        }
        n = json_is_string(v) ? json_string_length(v) : 0;
        if (n == 0 || n > TOKEN_MAX_STRING)
                return fail(e, "claim %s is not a string of 1 to 256 bytes", name);
        *ret = json_string_value(v);
        return 1;
}

int token_claims_only(json_t *claims, const char *const *allowed, hyb_error *e)
{
        const char *key;
        json_t *v;

        json_object_foreach(claims, key, v)
        {
                bool ok = false;

                for (const char *const *a = allowed; *a && !ok; a++)
                        ok = strcmp(key, *a) == 0;
                if (!ok)
                        return fail(e, "unexpected claim %s", key);
        }
        return 0;
}
