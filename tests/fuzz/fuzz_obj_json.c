/* SPDX-License-Identifier: MIT */
/* libFuzzer: hyb_obj_from_json, to_json, from_json again: the same obj (ids included). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hybrid/obj.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        hyb_obj *o = NULL, *back = NULL;
        char *json = NULL, *a = NULL, *b = NULL;
        hyb_error e;

        if (hyb_obj_from_json((const char *)data, size, &o, &e) < 0)
                return 0;
        if (hyb_obj_to_json(o, &json, &e) < 0) {
                fprintf(stderr, "to_json failed: %s\n", e.message);
                abort();
        }
        if (hyb_obj_from_json(json, strlen(json), &back, &e) < 0) {
                fprintf(stderr, "to_json output does not load: %s\n%s\n", json, e.message);
                abort();
        }
        if (hyb_obj_format(o, HYB_FORMAT_EXACT, &a) < 0 ||
            hyb_obj_format(back, HYB_FORMAT_EXACT, &b) < 0)
                abort();
        if (!hyb_obj_equal(o, back) || strcmp(a, b) != 0) {
                fprintf(stderr, "JSON round trip differs: %s\n%s\n%s\n", json, a, b);
                abort();
        }
        hyb_free(json);
        hyb_free(a);
        hyb_free(b);
        hyb_obj_unref(o);
        hyb_obj_unref(back);
        return 0;
}
