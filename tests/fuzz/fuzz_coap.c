/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for what the CoAP edge reads out of a request itself (lib/edge/coap.c;
 * libcoap parses the datagram): the input is one CoAP message over UDP, parsed by libcoap
 * as the daemon's would be; then
 *   edge_coap_path: on success a path that starts with '/' and holds only unreserved,
 *      sub-delim, '/' and %XX characters; edge_route_parse of it answers 0, 400 or 404
 *   edge_coap_query_params (Uri-Query options to params): on success a JSON object
 * Any violation aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "edge/coap-parse.h"
#include "edge/edge-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *text)
{
        fprintf(stderr, "fuzz_coap: %s: '%s'\n", what, text);
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static int started;
        char path[1024], *params = NULL;
        coap_pdu_t *pdu;
        edge_route r;
        hyb_error e;
        int st;

        if (!started) {
                coap_startup();
                coap_set_log_level(LOG_EMERG);
                started = 1;
        }
        if (size > 65536)
                return 0;
        pdu = coap_pdu_init(0, 0, 0, size ? size : 1);
        if (!pdu)
                return 0;
        if (!coap_pdu_parse(COAP_PROTO_UDP, data, size, pdu)) {
                coap_delete_pdu(pdu);
                return 0;
        }
        if (edge_coap_path(pdu, path, sizeof path) == 0) {
                if (path[0] != '/')
                        fail("a path without its leading /", path);
                for (const char *p = path; *p; p++)
                        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                              (*p >= '0' && *p <= '9') || strchr("-._~!$&'()*+,;=:@/%", *p)))
                                fail("a raw character in the path", path);
                st = edge_route_parse(path, &r, &e);
                if (st != 0 && st != 400 && st != 404)
                        fail("a route refusal that is not 400 or 404", path);
                if (st == 0)
                        edge_route_clear(&r);
        }
        if (edge_coap_query_params(pdu, &params) == 0) {
                json_t *j = json_loads(params, 0, NULL);

                if (!json_is_object(j))
                        fail("params that are not a JSON object", params);
                json_decref(j);
                free(params);
        }
        coap_delete_pdu(pdu);
        return 0;
}
