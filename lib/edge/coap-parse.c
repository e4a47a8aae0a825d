/* SPDX-License-Identifier: MIT */
/*
 * What the CoAP edge reads out of a request's options itself (libcoap parses the datagram):
 * the path of its Uri-Path options, the params of its Uri-Query options, an option's value;
 * and the copy of a request an async hands back (coap.c).  fuzz_coap drives the readers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "coap-internal.h"

/* An unreserved or sub-delim character of a path segment (RFC 3986) stays as it is. */
static bool path_char(unsigned char c)
{
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               strchr("-._~!$&'()*+,;=:@", c) != NULL;
}

int edge_coap_path(const coap_pdu_t *pdu, char *out, size_t size)
{
        coap_opt_iterator_t it;
        coap_opt_filter_t f;
        coap_opt_t *o;
        size_t n = 0;

        coap_option_filter_clear(&f);
        coap_option_filter_set(&f, COAP_OPTION_URI_PATH);
        coap_option_iterator_init(pdu, &it, &f);
        while ((o = coap_option_next(&it))) {
                const uint8_t *v = coap_opt_value(o);
                uint32_t len = coap_opt_length(o);

                if (n + 1 >= size)
                        return -E2BIG;
                out[n++] = '/';
                for (uint32_t i = 0; i < len; i++) {
                        if (path_char(v[i])) {
                                if (n + 1 >= size)
                                        return -E2BIG;
                                out[n++] = (char)v[i];
                        } else {
                                if (n + 3 >= size)
                                        return -E2BIG;
                                snprintf(out + n, 4, "%%%02X", v[i]);
                                n += 3;
                        }
                }
        }
        if (n == 0) {
                if (size < 2)
                        return -E2BIG;
                out[n++] = '/';
        }
        out[n] = 0;
        return 0;
}

int edge_coap_query_params(const coap_pdu_t *pdu, char **ret)
{
        coap_opt_iterator_t it;
        coap_opt_filter_t f;
        coap_opt_t *o;
        json_t *obj = json_object();
        int r = 0;

        if (!obj)
                return -ENOMEM;
        coap_option_filter_clear(&f);
        coap_option_filter_set(&f, COAP_OPTION_URI_QUERY);
        coap_option_iterator_init(pdu, &it, &f);
        while (r == 0 && (o = coap_option_next(&it))) {
                const char *v = (const char *)coap_opt_value(o);
                uint32_t len = coap_opt_length(o);
                const char *eq = memchr(v, '=', len);
                char *key, *value;

                if (memchr(v, 0, len)) {
                        r = -EINVAL;
                        break;
                }
                /* "k=v"; a bare "k" is the empty string */
                key = strndup(v, eq ? (size_t)(eq - v) : len);
                value = eq ? strndup(eq + 1, len - (size_t)(eq + 1 - v)) : strdup("");
                r = key && value ? edge_params_add(obj, key, value) : -ENOMEM;
                free(key);
                free(value);
        }
        if (r == 0 && !(*ret = json_dumps(obj, JSON_COMPACT)))
                r = -ENOMEM;
        json_decref(obj);
        return r;
}

bool edge_coap_option(const coap_pdu_t *pdu, uint16_t num, uint32_t *value)
{
        coap_opt_iterator_t it;
        coap_opt_t *o = coap_check_option(pdu, num, &it);

        if (!o)
                return false;
        if (value)
                *value = coap_decode_var_bytes(coap_opt_value(o), coap_opt_length(o));
        return true;
}

/*
 * The copy of req an async hands back: its type, code, token and options without Block1
 * and Size1 (nor its payload: the request was read already).  With obs (an observer's
 * id), its Uri-Path and Uri-Query are hyb-obs/<obs>: the registration lands on the
 * observer's own resource.
 */
coap_pdu_t *edge_coap_request_copy(coap_session_t *s, const coap_pdu_t *req, const char *obs)
{
        coap_bin_const_t tok = coap_pdu_get_token(req);
        coap_pdu_t *c = coap_pdu_init(coap_pdu_get_type(req), coap_pdu_get_code(req),
                                      coap_pdu_get_mid(req), coap_session_max_pdu_size(s));
        coap_opt_iterator_t it;
        coap_opt_t *o;
        bool added = !obs;

        if (!c || !coap_add_token(c, tok.length, tok.s))
                goto fail;
        coap_option_iterator_init(req, &it, COAP_OPT_ALL);
        while ((o = coap_option_next(&it))) {
                if (!added && it.number > COAP_OPTION_URI_PATH) {
                        if (!coap_add_option(c, COAP_OPTION_URI_PATH, strlen(EDGE_COAP_OBS_PATH),
                                             (const uint8_t *)EDGE_COAP_OBS_PATH) ||
                            !coap_add_option(c, COAP_OPTION_URI_PATH, strlen(obs),
                                             (const uint8_t *)obs))
                                goto fail;
                        added = true;
                }
                if (it.number == COAP_OPTION_BLOCK1 || it.number == COAP_OPTION_SIZE1 ||
                    (obs &&
                     (it.number == COAP_OPTION_URI_PATH || it.number == COAP_OPTION_URI_QUERY)))
                        continue;
                if (!coap_add_option(c, it.number, coap_opt_length(o), coap_opt_value(o)))
                        goto fail;
        }
        if (!added &&
            (!coap_add_option(c, COAP_OPTION_URI_PATH, strlen(EDGE_COAP_OBS_PATH),
                              (const uint8_t *)EDGE_COAP_OBS_PATH) ||
             !coap_add_option(c, COAP_OPTION_URI_PATH, strlen(obs), (const uint8_t *)obs)))
                goto fail;
        return c;
fail:
        if (c)
                coap_delete_pdu(c);
        return NULL;
}
