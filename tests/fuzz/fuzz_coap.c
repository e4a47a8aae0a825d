/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for what the CoAP edge reads out of a request itself (lib/edge/coap.c;
 * libcoap parses the datagram): the input is one CoAP message over UDP, parsed by libcoap
 * as the daemon's would be; then
 *   edge_coap_path: on success a path that starts with '/' and holds only unreserved,
 *      sub-delim, '/' and %XX characters; edge_route_parse of it answers 0, 400 or 404
 *   edge_coap_query_params (Uri-Query options to params): on success a JSON object
 *   edge_coap_cred_read (option 65003, the credentials): 0, 1 or -EINVAL; 1 only for one
 *      option of exactly 120 bytes
 *   edge_coap_uri (RFC 7252 6.5 from the options, for an IPv4 and an IPv6 destination): on
 *      success "coap://" then only unreserved, sub-delim, ":/?@[]" and %XX characters; and
 *      edge_coap_proof_input of it: exactly its documented length, the URI at byte 23
 * Any violation aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>

#include <jansson.h>

#include "edge/coap-parse.h"
#include "edge/edge-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *text)
{
        fprintf(stderr, "fuzz_coap: %s: '%s'\n", what, text);
        abort();
}

/* The credentials' readers: the option, the URI a proof signs, the signed input. */
static void check_creds(const coap_pdu_t *pdu)
{
        struct sockaddr_storage ss[2];
        struct sockaddr_in *v4 = (struct sockaddr_in *)&ss[0];
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss[1];
        coap_opt_iterator_t it;
        edge_coap_cred c;
        char uri[EDGE_COAP_URI_MAX];
        unsigned n = 0, len = 0;
        int r = edge_coap_cred_read(pdu, &c);

        coap_option_iterator_init(pdu, &it, COAP_OPT_ALL);
        for (coap_opt_t *o; (o = coap_option_next(&it));)
                if (it.number == EDGE_COAP_OPT_PROOF) {
                        n++;
                        len = coap_opt_length(o);
                }
        if (r != (n == 0 ? 0 : n == 1 && len == EDGE_COAP_PROOF_LEN ? 1 : -EINVAL))
                fail("edge_coap_cred_read's answer", n ? "option 65003" : "no option");
        memset(ss, 0, sizeof ss);
        v4->sin_family = AF_INET;
        v4->sin_addr.s_addr = htonl(0x7f000001);
        v4->sin_port = htons(5683);
        v6->sin6_family = AF_INET6;
        v6->sin6_addr = in6addr_loopback;
        v6->sin6_port = htons(61616);
        for (int i = 0; i < 2; i++) {
                uint8_t h[32] = {0}, *in = NULL;
                size_t in_len = 0;

                if (edge_coap_uri(pdu, &ss[i], uri, sizeof uri) < 0)
                        continue;
                if (strncmp(uri, "coap://", 7) != 0)
                        fail("a URI without coap://", uri);
                for (const char *p = uri + 7; *p; p++)
                        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                              (*p >= '0' && *p <= '9') || strchr("-._~!$&'()*+,;=:@/?%[]", *p)))
                                fail("a raw character in the URI", uri);
                if (edge_coap_proof_input(1, uri, h, h, &c, &in, &in_len) == 0) {
                        if (in_len != 20 + 1 + 2 + strlen(uri) + 32 + 32 + 8 + 16 ||
                            memcmp(in + 23, uri, strlen(uri)) != 0)
                                fail("a signed input of the wrong form", uri);
                        free(in);
                }
        }
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
        check_creds(pdu);
        coap_delete_pdu(pdu);
        return 0;
}
