/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the broker's YAML configuration loader
 * (lib/broker/config-load.c): loads the input over a default configuration.
 * A load must never crash or leak; a refused load must leave the defaults
 * untouched (it is all-or-nothing), and an accepted one must respect the
 * ranges and relations of the limits table.  Seeds: tests/fuzz/corpus/config/.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "broker/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        broker_config c, dflt;
        hyb_error err;

        if (broker_config_init(&c) < 0 || broker_config_init(&dflt) < 0)
                return 0;
        hyb_error_clear(&err);
        int r = broker_config_load_string(&c, (const char *)data, size, &err);
        if (r < 0) {
                /* All or nothing: a refused file changed nothing. */
                assert(c.max_body == dflt.max_body && c.max_frame == dflt.max_frame &&
                       c.send_queue_bytes == dflt.send_queue_bytes && c.n_admins == 0 && c.n_apps == 0 &&
                       c.listen_unix == NULL && strcmp(c.host, dflt.host) == 0 &&
                       c.n_boot_data == 0 && c.n_boot_programs == 0 && c.store_path == NULL &&
                       c.store_durability == -1);
                assert(err.message[0] != 0);
        } else {
                /* Every accepted file leaves each limit in its range and every relation true. */
                assert(broker_config_validate(&c, NULL) == 0);
                assert(c.host != NULL);
                /* Exercise the policy queries the broker asks on every connect. */
                (void)broker_config_is_admin(&c, 0);
                (void)broker_config_is_admin(&c, 1000);
                (void)broker_config_may_claim(&c, 1000, "org.example.app", 15);
                (void)broker_config_may_claim(&c, 0, "a", 1);
        }
        broker_config_clear(&c);
        broker_config_clear(&dflt);
        return 0;
}
