/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer: hyb_key_load_memory (PEM in its three forms, JWK) and the strict
 * base64url decoder.  Properties: a key that loads exports to PEM and JWK that
 * load back to the same key (same kid, private part kept), a key pair's
 * signature verifies with it; base64url that decodes re-encodes to the very
 * same text (one encoding per byte string).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hybrid/token.h"
#include "token/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void reload(const hyb_key *k, const char *text, const char *what)
{
        hyb_key *back = NULL;
        hyb_error e;

        if (hyb_key_load_memory(text, strlen(text), &back, &e) < 0) {
                fprintf(stderr, "%s export does not load: %s\n%s\n", what, e.message, text);
                abort();
        }
        if (!hyb_key_equal(k, back) || strcmp(hyb_key_get_kid(k), hyb_key_get_kid(back)) != 0 ||
            hyb_key_has_private(k) != hyb_key_has_private(back)) {
                fprintf(stderr, "%s round trip differs:\n%s\n", what, text);
                abort();
        }
        hyb_key_unref(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        hyb_key_export_flags f;
        hyb_key *k = NULL;
        hyb_error e;
        char *text = NULL;
        uint8_t *dec = NULL, sig[HYB_KEY_SIGNATURE_SIZE];
        size_t n;

        if (b64u_decode((const char *)data, size, &dec, &n) == 0) {
                char *enc = NULL;
                if (b64u_encode(dec, n, &enc) < 0 || strlen(enc) != size ||
                    memcmp(enc, data, size) != 0) {
                        fprintf(stderr, "base64url: a second encoding of the same bytes\n");
                        abort();
                }
                free(enc);
                free(dec);
        }

        if (hyb_key_load_memory((const char *)data, size, &k, &e) < 0)
                return 0;
        f = hyb_key_has_private(k) ? HYB_KEY_EXPORT_PRIVATE : HYB_KEY_EXPORT_PUBLIC;
        if (hyb_key_to_pem(k, f, &text) < 0)
                abort();
        reload(k, text, "PEM");
        hyb_free(text);
        if (hyb_key_to_jwk(k, f, &text) < 0)
                abort();
        reload(k, text, "JWK");
        hyb_free(text);
        if (hyb_key_has_private(k) &&
            (hyb_key_sign(k, data, size, sig) < 0 || hyb_key_verify(k, data, size, sig, sizeof(sig)) != 0))
                abort();
        hyb_key_unref(k);
        return 0;
}
