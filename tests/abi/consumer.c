/* A user's program: only the installed headers and pkg-config flags. */
#include <hybrid/hybrid.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
        if (strcmp(hyb_version(), "0.1.0") != 0) {
                fprintf(stderr, "unexpected version %s\n", hyb_version());
                return 1;
        }
        if (strcmp(hyb_err_name(HYB_E_NOT_FOUND), "HYB_E_NOT_FOUND") != 0)
                return 1;
        printf("consumer ok: libhybrid %s\n", hyb_version());
        return 0;
}
