/* SPDX-License-Identifier: MIT */
/* The in-process broker harness of the fuzz targets (broker-harness.h). */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "broker-harness.h"
#include "broker/broker-internal.h"

#define FZ_MAX_CLIENTS 8

struct event_base *fz_base;
char fz_dir[FZ_DIR_MAX];
char fz_sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

static fz_client *clients[FZ_MAX_CLIENTS];
static int n_clients;
static hyb_broker *fz_b; /* the broker of this input, for its token checks in flight */

static void remove_dir(void)
{
        DIR *d = opendir(fz_dir);
        struct dirent *de;

        while (d && (de = readdir(d)))
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, ".."))
                        unlinkat(dirfd(d), de->d_name, 0);
        if (d)
                closedir(d);
        rmdir(fz_dir);
}

bool fz_setup_once(const char *name)
{
        if (fz_base)
                return false;
        fz_base = event_base_new();
        snprintf(fz_dir, sizeof fz_dir, "/tmp/hyb-fuzz-%s.XXXXXX", name);
        if (!fz_base || !mkdtemp(fz_dir))
                abort();
        snprintf(fz_sock_path, sizeof fz_sock_path, "%s/bus.sock", fz_dir);
        atexit(remove_dir);
        return true;
}

hyb_broker *fz_broker_start(hyb_broker_config *cfg)
{
        hyb_broker *b = NULL;

        if (hyb_broker_config_set_socket(cfg, fz_sock_path) < 0 ||
            hyb_broker_new(cfg, fz_base, &b, NULL) < 0)
                abort();
        hyb_broker_set_log(b, 0, NULL, NULL);
        if (hyb_broker_start(b, NULL) < 0)
                abort();
        fz_b = b;
        return b;
}

/* Reads what the broker sent; every complete frame must decode. */
static bool client_drain(fz_client *c)
{
        bool got = false;

        if (c->fd < 0)
                return false;
        for (;;) {
                if (c->rlen == c->rx_max)
                        c->rlen = 0; /* a huge reply: only its frame headers are checked */
                ssize_t n = recv(c->fd, c->rx + c->rlen, c->rx_max - c->rlen, MSG_DONTWAIT);
                if (n <= 0)
                        break;
                got = true;
                c->rlen += (size_t)n;
                size_t off = 0;
                for (;;) {
                        wire_packet p;
                        size_t used;
                        int r = wire_parse(c->rx + off, c->rlen - off, UINT32_MAX, &p, &used);
                        /* The broker only ever sends frames its peers can decode. */
                        assert(r >= 0);
                        if (r == 0)
                                break;
                        if (c->on_frame)
                                c->on_frame(c, &p);
                        off += used;
                }
                memmove(c->rx, c->rx + off, c->rlen - off);
                c->rlen -= off;
        }
        return got;
}

/* One turn of the loop; while token signatures are checked on the broker's threads, one
 * that waits for them (up to 100 ms) so their verdict is part of this input's run. */
static bool fz_turn(void)
{
        bool busy = fz_b && auth_pool_in_flight(fz_b) > 0;

        if (busy) {
                struct timeval tv = { 0, 100000 };

                event_base_loopexit(fz_base, &tv);
                event_base_loop(fz_base, EVLOOP_ONCE);
        } else {
                event_base_loop(fz_base, EVLOOP_NONBLOCK);
        }
        return busy;
}

void fz_pump(void)
{
        int quiet = 0;

        for (int round = 0; round < 256 && quiet < 3; round++) {
                bool got = fz_turn();
                for (int i = 0; i < n_clients; i++)
                        got |= client_drain(clients[i]);
                quiet = got ? 0 : quiet + 1;
        }
}

void fz_client_connect(fz_client *c, size_t rx_max, fz_frame_fn on_frame)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        if (n_clients == FZ_MAX_CLIENTS)
                abort();
        *c = (fz_client){ .fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0),
                          .rx = malloc(rx_max),
                          .rx_max = rx_max,
                          .on_frame = on_frame };
        memcpy(sa.sun_path, fz_sock_path, strlen(fz_sock_path) + 1);
        if (c->fd < 0 || !c->rx || connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0)
                abort();
        clients[n_clients++] = c;
}

void fz_client_write(fz_client *c, const void *data, size_t len)
{
        const uint8_t *p = data;
        int stuck = 0;

        while (len > 0 && c->fd >= 0 && stuck < 64) {
                ssize_t n = send(c->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n > 0) {
                        p += n;
                        len -= (size_t)n;
                        stuck = 0;
                } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                        return; /* the broker closed this client */
                } else {
                        stuck++;
                }
                fz_pump();
        }
}

void fz_client_send(fz_client *c, wire_hdr *h, const char *to, size_t to_len,
                    const char *member, size_t member_len, const void *body, size_t len)
{
        uint8_t hdr[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        int k = wire_build(h, NULL, 0, to, to_len, member, member_len, body, len, hdr, iov);

        for (int j = 0; j < k; j++)
                fz_client_write(c, iov[j].iov_base, iov[j].iov_len);
}

void fz_client_close(fz_client *c)
{
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -1;
}

void fz_finish(hyb_broker *b, hyb_broker_config *cfg)
{
        for (int i = 0; i < n_clients; i++) {
                fz_client_close(clients[i]);
                free(clients[i]->rx);
                clients[i]->rx = NULL;
        }
        n_clients = 0;
        /* Every client is gone: the broker must notice each of them. */
        for (int round = 0; round < 1000 && hyb_broker_get_n_connections(b) > 0; round++)
                fz_turn();
        assert(hyb_broker_get_n_connections(b) == 0);
        hyb_broker_free(b);
        fz_b = NULL;
        hyb_broker_config_unref(cfg);
}
