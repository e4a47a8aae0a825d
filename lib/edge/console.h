/* SPDX-License-Identifier: MIT */
/*
 * The browser console (doc/console.md): a static single-page app served by the edge at
 * `/` and its assets under `/console/`, from memory.  The assets are the files of
 * lib/edge/console/, turned into the table below at build time (console/embed.py), so
 * hybridd needs no data directory.
 */
#ifndef HYB_EDGE_CONSOLE_H
#define HYB_EDGE_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>

struct evhttp_request;

typedef struct edge_console_asset {
        const char *path; /* "/" or "/console/<file>" */
        const char *type; /* the Content-Type */
        const unsigned char *data;
        size_t len;
} edge_console_asset;

/* The table made by console/embed.py (console-assets.c). */
extern const edge_console_asset edge_console_assets[];
extern const size_t edge_console_n_assets;

/* The asset at path (exact, not decoded), or NULL. */
const edge_console_asset *edge_console_find(const char *path);

/*
 * Answers req when raw_path (the request's path, percent-encoded, without the query) is
 * the console's: `/` or under `/console/`.  Returns false, without answering, for every
 * other path.  The console's routes are anonymous: they serve static files only.
 */
bool edge_console_serve(struct evhttp_request *req, const char *raw_path);

#endif
