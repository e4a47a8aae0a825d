/*
 * Built with -fshort-enums (as some ABIs and binding generators lay enums out):
 * the enums that sit in public structs keep 32 bits, so the struct layout does
 * not depend on the compiler's enum size.
 */
#include <hybrid/hybrid.h>
#include <stdio.h>

_Static_assert(sizeof(hyb_durability) == 4, "hyb_durability is forced to 32 bits");
_Static_assert(sizeof(hyb_json_type) == 4, "hyb_json_type is forced to 32 bits");
_Static_assert(sizeof(((hyb_arg_policy *)0)->type) == 4, "hyb_arg_policy.type is 32 bits");
_Static_assert(sizeof(((hyb_store_options *)0)->durability) == 4, "durability is 32 bits");

int main(void)
{
        hyb_store_options o;

        hyb_store_options_init(&o);
        if (o.size != sizeof o || o.durability != HYB_DURABILITY_NORMAL)
                return 1;
        printf("enum widths ok\n");
        return 0;
}
