/* SPDX-License-Identifier: MIT */
/*
 * hybrid token inspect TOKEN|-
 * prints every block's header and claims as one JSON document marked
 * "verified": false: nothing is checked but the format.
 */
#include <stdlib.h>

#include "cmd-token-util.h"

int token_inspect(cli_ctx *ctx)
{
        char *tok = NULL, *json = NULL;
        hyb_error e = {0};
        int status, r;

        status = token_arg(ctx, "inspect", &tok);
        if (status != EXIT_OK)
                return status;
        r = hyb_token_inspect(tok, &json, &e);
        if (r < 0)
                status = cli_fail(EXIT_FAILED, "token inspect", hyb_err_name(r), "%s",
                                  *e.message ? e.message : hyb_strerror(r));
        else
                cli_println("%s", json);
        free(tok);
        hyb_free(json);
        return status;
}
