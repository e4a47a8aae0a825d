/* SPDX-License-Identifier: MIT */
/*
 * What the fuzz targets that drive a live in-process broker over raw sockets share
 * (fuzz_broker.c, fuzz_auth.c): one event base and a temp dir for the socket per process,
 * raw clients that check that every frame the broker sends decodes, and the pump that runs
 * the broker and drains the clients until all goes quiet.
 */
#ifndef HYB_FUZZ_BROKER_HARNESS_H
#define HYB_FUZZ_BROKER_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "bus/wire.h"
#include "hybrid/broker.h"

typedef struct fz_client fz_client;

/* Called for each frame the broker sent to c, after it decoded. */
typedef void (*fz_frame_fn)(fz_client *c, const wire_packet *p);

/* A raw client; a target embeds it as the first member of its own client struct. */
struct fz_client {
        int fd; /* -1: not connected, or closed */
        uint8_t *rx;
        size_t rlen, rx_max;
        fz_frame_fn on_frame;
};

extern struct event_base *fz_base;
#define FZ_DIR_MAX 64
extern char fz_dir[FZ_DIR_MAX]; /* the temp dir: the socket and whatever a target puts there */
extern char fz_sock_path[]; /* the broker's socket in it */

/*
 * Makes the event base and the temp dir /tmp/hyb-fuzz-<name>.XXXXXX (emptied and removed
 * at exit) the first time; true then, false on every later call.  Aborts on failure.
 */
bool fz_setup_once(const char *name);

/* Sets cfg's socket to fz_sock_path, makes the broker on fz_base and starts it, quiet.
 * Aborts on failure. */
hyb_broker *fz_broker_start(hyb_broker_config *cfg);

/*
 * Connects c to the broker with an rx buffer of rx_max bytes; on_frame (may be NULL) sees
 * every frame.  From then on fz_pump drains c too.  Aborts on failure.
 */
void fz_client_connect(fz_client *c, size_t rx_max, fz_frame_fn on_frame);

/* Runs the broker until neither it nor any connected client has anything to do. */
void fz_pump(void);

/* Writes p to c, pumping while the socket is full; gives up once the broker closed c. */
void fz_client_write(fz_client *c, const void *p, size_t len);

/* Builds the frame h (wire_build) with these names and body and writes it to c. */
void fz_client_send(fz_client *c, wire_hdr *h, const char *to, size_t to_len,
                    const char *member, size_t member_len, const void *body, size_t len);

/* Closes c (the broker sees it go); it stays known to fz_pump as closed. */
void fz_client_close(fz_client *c);

/*
 * Ends an input: closes and frees every client, asserts the broker then drops all its
 * connections, and frees the broker and cfg (LeakSanitizer sees what is left).
 */
void fz_finish(hyb_broker *b, hyb_broker_config *cfg);

#endif
