/* SPDX-License-Identifier: MIT */
/*
 * hybrid/log.h - logging to the bus's logging service, hybrid-logd (doc/log.md).
 *
 * An app logs a record (level, message, optional fields) over its bus connection;
 * hybrid-logd (@localhost/org.hybridos.logd/main) keeps it with the app and runner the
 * broker verified for that connection, in its ring and in the daemon's store under
 * /log/<app>/<seq>, and `hybrid log` shows it.  The call never waits for logd: the
 * record goes out as an asynchronous call, and when no logd answers (none running, or
 * it failed, or the connection closed first) the line is written to stderr instead,
 * in the form `hybrid log` prints:
 *
 *   <time> <level> <@host/app/runner> <message>
 *
 * with <time> in UTC (2026-12-06T14:30:00.123Z) and the message's control characters
 * escaped as `hybrid log` prints them (\n, \r, \t, \xNN), one record per line.  The answer is read when the app next
 * processes its bus (hyb_bus_process, hyb_bus_wait, the attached loop, a sync call), so
 * an app that never does still logs, but learns of a missing logd only when it frees
 * the bus (the lines still pending are then written to stderr, as logd may not have
 * them).  Without a bus (NULL, or a closed one) the line goes to stderr at once; the
 * endpoint is then @localhost/<program name>/p<pid>.
 */
#ifndef HYBRID_LOG_H
#define HYBRID_LOG_H

#include <hybrid/common.h>
#include <hybrid/bus.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Logs message at level (HYB_LOG_ERROR ... HYB_LOG_DEBUG) on bus (may be NULL).
 * fields_json: NULL, or a JSON object kept with the record (numbers, strings... the
 * caller's structured data).  The message and fields are copied.
 * Returns 0 when the record was handed to the bus, 1 when the line was written to
 * stderr instead (no bus, or a closed one), < 0 on error: -EINVAL (NULL message, a
 * level out of range), HYB_E_PARSE (fields_json is not a JSON object), HYB_E_TOO_LARGE
 * (over the broker's max_body), -ENOMEM.
 */
HYB_EXPORT int hyb_log_send(hyb_bus *bus, hyb_log_level level, const char *fields_json,
                            const char *message);

/*
 * printf-style hyb_log_send without fields: hyb_log(bus, HYB_LOG_WARNING, "disk %d%% full", 93).
 * The formatted message is cut at 64 KiB.  Same returns (-EINVAL also for a NULL fmt).
 */
HYB_EXPORT int hyb_log(hyb_bus *bus, hyb_log_level level, const char *fmt, ...);

#ifdef __cplusplus
}
#endif

#endif
