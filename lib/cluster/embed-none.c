/* SPDX-License-Identifier: MIT */
/* hyb_cluster_backend_new without libmosquitto (embed.c has the real one). */
#include "common/util.h"
#include "hybrid/bus-store.h"

HYB_EXPORT int hyb_cluster_backend_new(const char *url, hyb_backend **ret, hyb_error *reterr)
{
        hyb_assert_return(ret, -EINVAL);
        return err_set(reterr, HYB_E_NOT_IMPLEMENTED, -1,
                       "the cluster scope needs libmosquitto, which this libhybrid was built "
                       "without");
}
