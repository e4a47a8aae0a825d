/* SPDX-License-Identifier: MIT */
/*
 * The source address the per-address bounds of the edge count by (doc/edge.md "Source
 * addresses"): an IPv4 address, or the /64 prefix of an IPv6 address.  A host given an IPv6
 * network usually holds a whole /64 (RFC 4291 2.5.1, SLAAC, privacy addresses of RFC 8981),
 * so counting each /128 apart would hand one attacker 2^64 separate quotas.  An
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d, a dual-stack listener's view of an IPv4 peer) is
 * the IPv4 address it maps.  HTTP, WebSocket and CoAP all count through here.
 */
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "edge-internal.h"

void edge_addr_key(const struct sockaddr *sa, struct sockaddr_storage *key)
{
        memset(key, 0, sizeof *key);
        if (sa && sa->sa_family == AF_INET) {
                struct sockaddr_in *k4 = (struct sockaddr_in *)key;

                k4->sin_family = AF_INET;
                k4->sin_addr = ((const struct sockaddr_in *)sa)->sin_addr;
        } else if (sa && sa->sa_family == AF_INET6) {
                const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;

                if (IN6_IS_ADDR_V4MAPPED(a6)) {
                        struct sockaddr_in *k4 = (struct sockaddr_in *)key;

                        k4->sin_family = AF_INET;
                        memcpy(&k4->sin_addr, a6->s6_addr + 12, 4);
                } else {
                        struct sockaddr_in6 *k6 = (struct sockaddr_in6 *)key;

                        k6->sin6_family = AF_INET6;
                        memcpy(k6->sin6_addr.s6_addr, a6->s6_addr, 8); /* the /64 */
                }
        }
}

bool edge_addr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
        struct sockaddr_storage ka, kb;

        edge_addr_key((const struct sockaddr *)a, &ka);
        edge_addr_key((const struct sockaddr *)b, &kb);
        if (ka.ss_family != kb.ss_family)
                return false;
        if (ka.ss_family == AF_INET)
                return ((const struct sockaddr_in *)&ka)->sin_addr.s_addr ==
                       ((const struct sockaddr_in *)&kb)->sin_addr.s_addr;
        if (ka.ss_family == AF_INET6)
                return memcmp(&((const struct sockaddr_in6 *)&ka)->sin6_addr,
                              &((const struct sockaddr_in6 *)&kb)->sin6_addr,
                              sizeof(struct in6_addr)) == 0;
        return false;
}
