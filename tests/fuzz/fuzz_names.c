/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for bus names (lib/bus/names.c).  The input is parsed as an
 * endpoint and as a member name.  An accepted name must consist of its parts
 * (the views point into the input, in order, and "@" host "/" app "/" runner
 * ["/" name] rebuilds it), each part must pass its own check, and equality and
 * hashing must ignore ASCII case.  A refusal must say why.  Seeds:
 * tests/fuzz/corpus/names/.
 */
#include <assert.h>
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bus/names.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_parsed(const char *s, size_t len, const bus_name *n, bool member)
{
        char buf[BUS_MEMBER_MAX + 8];
        size_t k = 0;

        assert(n->host >= s && n->host + n->host_len <= s + len);
        assert(bus_name_check_host(n->host, n->host_len, NULL) == 0);
        assert(bus_name_check_app(n->app, n->app_len, NULL) == 0);
        assert(bus_name_check_ident(n->runner, n->runner_len, NULL) == 0);
        if (member)
                assert(n->name && bus_name_check_ident(n->name, n->name_len, NULL) == 0);
        else
                assert(!n->name && n->name_len == 0);
        assert(len <= sizeof buf);
        buf[k++] = '@';
        memcpy(buf + k, n->host, n->host_len), k += n->host_len;
        buf[k++] = '/';
        memcpy(buf + k, n->app, n->app_len), k += n->app_len;
        buf[k++] = '/';
        memcpy(buf + k, n->runner, n->runner_len), k += n->runner_len;
        if (member) {
                buf[k++] = '/';
                memcpy(buf + k, n->name, n->name_len), k += n->name_len;
        }
        assert(k == len && memcmp(buf, s, len) == 0);

        /* Case does not matter for equality or hashing. */
        for (size_t i = 0; i < len; i++)
                buf[i] = (char)(isupper((unsigned char)buf[i]) ? tolower((unsigned char)buf[i])
                                                                : toupper((unsigned char)buf[i]));
        assert(bus_name_equal(s, len, buf, len));
        assert(bus_name_hash(s, len) == bus_name_hash(buf, len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *s = (const char *)data;
        bus_name n;
        hyb_error err;

        hyb_error_clear(&err);
        memset(&n, 0, sizeof n);
        if (bus_name_parse_endpoint(s, size, &n, &err) == 0)
                check_parsed(s, size, &n, false);
        else
                assert(err.message[0] != 0);
        hyb_error_clear(&err);
        memset(&n, 0, sizeof n);
        if (bus_name_parse_member(s, size, &n, &err) == 0)
                check_parsed(s, size, &n, true);
        else
                assert(err.message[0] != 0);
        /* The part checks alone, on the whole input. */
        (void)bus_name_check_host(s, size, NULL);
        (void)bus_name_check_app(s, size, NULL);
        (void)bus_name_check_ident(s, size, NULL);
        return 0;
}
