/* SPDX-License-Identifier: MIT */
/*
 * The daemon's side of the cluster (doc/cluster.md): the MQTT link of cluster: and the
 * cluster scope //... served over it.
 */
#include <stdio.h>

#include "broker-internal.h"
#include "common/util.h"
#ifdef HYB_HAVE_CLUSTER
#include "cluster/link.h"
#endif

#ifdef HYB_HAVE_CLUSTER
static void link_log(int level, const char *msg, void *ud)
{
        broker_log(ud, level, "%s", msg);
}
#endif

int broker_cluster_start(hyb_broker *b, hyb_error *e)
{
#ifdef HYB_HAVE_CLUSTER
        char id[300];
        int r;

        if (!b->c->cluster.broker || b->link)
                return 0;
        snprintf(id, sizeof id, "hybrid-%s", b->c->host ? b->c->host : "localhost");
        r = cluster_link_new(b->base, &b->c->cluster, id, link_log, b, &b->link, e);
        if (r < 0)
                return r;
        return 0;
#else
        return 0;
#endif
}

void broker_cluster_stop(hyb_broker *b)
{
#ifdef HYB_HAVE_CLUSTER
        b->link = cluster_link_free(b->link);
#endif
}
