/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for what the HTTP edge parses itself (lib/edge; evhttp parses HTTP):
 * the first byte picks the parser, the rest is its input.
 *   0  a request path (edge_route_parse): on success the kind is known, /bus/ and
 *      /events/ name an endpoint "@localhost/<app>/<runner>" and a member, /store/ and
 *      /watch/ a fURI that parses, and the decoded path holds no NUL
 *   1  a query string (edge_query_params): on success a JSON object
 *   2  a DPoP proof (edge_dpop_check) for a fixed holder key and token, with the replay
 *      cache: it must never be accepted (the fuzzer has no private key), and the same
 *      input must be refused twice alike
 * Any violation aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "edge/edge-internal.h"
#include "hybrid/furi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static hyb_key *holder;
static struct edge_dpop_cache *cache;

static void fail(const char *what, const char *text)
{
        fprintf(stderr, "fuzz_edge: %s: '%s'\n", what, text);
        abort();
}

static void route(const char *text)
{
        edge_route r;
        hyb_error e;
        int st = edge_route_parse(text, &r, &e);

        if (st != 0) {
                if (st != 400 && st != 404)
                        fail("a refusal that is not 400 or 404", text);
                if (r.path || r.furi)
                        fail("a refusal left memory behind", text);
                return;
        }
        if (!r.path)
                fail("no decoded path", text);
        switch (r.kind) {
        case EDGE_ROUTE_BUS:
        case EDGE_ROUTE_EVENTS:
                if (strncmp(r.endpoint, "@localhost/", 11) != 0 || !r.member[0] ||
                    strchr(r.member, '/'))
                        fail("a bad endpoint or member", text);
                break;
        case EDGE_ROUTE_STORE:
        case EDGE_ROUTE_WATCH: {
                hyb_furi *f = NULL;

                if (!r.furi || r.furi[0] != '/' ||
                    hyb_furi_parse(r.furi, strlen(r.furi), NULL, &f, NULL) < 0)
                        fail("a fURI that does not parse", text);
                hyb_furi_unref(f);
                break;
        }
        default:
                fail("an unknown kind", text);
        }
        edge_route_clear(&r);
}

static void query(const char *text)
{
        char *out = NULL;
        json_t *j;

        if (edge_query_params(text, &out) < 0)
                return;
        j = json_loads(out, 0, NULL);
        if (!json_is_object(j))
                fail("params that are not a JSON object", text);
        json_decref(j);
        free(out);
}

static void dpop(const char *text, size_t len)
{
        static const char token[] = "tok.en.text";
        hyb_error e;

        if (!holder && hyb_key_generate(&holder) < 0)
                abort();
        for (int i = 0; i < 2; i++)
                if (edge_dpop_check(&cache, text, len, holder, "GET", "http://h/store/x", token,
                                    sizeof token - 1, 1700000000, &e) == 0)
                        fail("a proof accepted without the holder's key", text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *text;

        if (size < 1 || size > 65536)
                return 0;
        text = malloc(size);
        if (!text)
                return 0;
        memcpy(text, data + 1, size - 1);
        text[size - 1] = 0;
        switch (data[0] % 3) {
        case 0:
                route(text);
                break;
        case 1:
                query(text);
                break;
        default:
                dpop(text, size - 1);
                break;
        }
        free(text);
        return 0;
}
