/* SPDX-License-Identifier: MIT */
/* Error names and messages, generated from the one X-macro in hybrid/common.h. */
#include <stdio.h>

#include "util.h"

static const struct {
        int code;
        const char *name;
        const char *msg;
} hyb_codes[] = {
#define HYB_X_ROW(name, value, msg) { (value), "HYB_E_" #name, msg },
        HYB_ERRORS(HYB_X_ROW)
#undef HYB_X_ROW
};

static const struct {
        int errnum;
        const char *name;
} errno_names[] = {
        { EPERM, "EPERM" },   { ENOENT, "ENOENT" },       { EIO, "EIO" },
        { EBADF, "EBADF" },   { EAGAIN, "EAGAIN" },       { ENOMEM, "ENOMEM" },
        { EACCES, "EACCES" }, { EEXIST, "EEXIST" },       { EINVAL, "EINVAL" },
        { ENOSPC, "ENOSPC" }, { EPIPE, "EPIPE" },         { ERANGE, "ERANGE" },
        { ENOTSUP, "ENOTSUP" }, { ETIMEDOUT, "ETIMEDOUT" }, { ECONNREFUSED, "ECONNREFUSED" },
        { ECONNRESET, "ECONNRESET" }, { ENOTCONN, "ENOTCONN" }, { EMSGSIZE, "EMSGSIZE" },
        { EBUSY, "EBUSY" },   { ENAMETOOLONG, "ENAMETOOLONG" }, { EINTR, "EINTR" },
        { ECANCELED, "ECANCELED" }, { EPROTO, "EPROTO" }, { ENOBUFS, "ENOBUFS" },
        { EALREADY, "EALREADY" }, { EINPROGRESS, "EINPROGRESS" }, { ESTALE, "ESTALE" },
};

_Static_assert(HYB_E_BASE > 4096, "HYB_E_* must stay far below errno values");

HYB_EXPORT const char *hyb_strerror(int code)
{
        if (code == 0)
                return "Success";
        for (size_t i = 0; i < ELEMENTSOF(hyb_codes); i++)
                if (hyb_codes[i].code == code)
                        return hyb_codes[i].msg;
        if (code < 0 && code > -4096)
                return strerror(-code); /* glibc: thread-safe for known values */
        return "Unknown error";
}

HYB_EXPORT const char *hyb_err_name(int code)
{
        if (code == 0)
                return "OK";
        for (size_t i = 0; i < ELEMENTSOF(hyb_codes); i++)
                if (hyb_codes[i].code == code)
                        return hyb_codes[i].name;
        for (size_t i = 0; i < ELEMENTSOF(errno_names); i++)
                if (-errno_names[i].errnum == code)
                        return errno_names[i].name;
        return "UNKNOWN";
}

HYB_EXPORT int hyb_err_to_status(int code)
{
        if (code >= 0)
                return 200;
        if (code <= -(HYB_E_BASE + 100) && code > -(HYB_E_BASE + 600))
                return -code - HYB_E_BASE;
        switch (code) {
        case -ENOMEM:
        case -ENOSPC:
                return 507;
        case -ETIMEDOUT:
                return 504;
        case -EINVAL:
        case HYB_E_PARSE:
        case HYB_E_TYPE:
                return 400;
        case -ENOENT:
                return 404;
        case -EACCES:
        case -EPERM:
        case HYB_E_READ_ONLY:
                return 403;
        case HYB_E_LIMIT:
        case -EMSGSIZE:
                return 413;
        default:
                return 500;
        }
}

HYB_EXPORT int hyb_err_from_status(int status)
{
        if (status >= 200 && status < 300)
                return 0;
        for (size_t i = 0; i < ELEMENTSOF(hyb_codes); i++)
                if (hyb_codes[i].code == -(HYB_E_BASE + status))
                        return hyb_codes[i].code;
        return HYB_E_INTERNAL;
}

HYB_EXPORT void hyb_error_clear(hyb_error *e)
{
        if (!e)
                return;
        e->code = 0;
        e->line = 0;
        e->column = 0;
        e->offset = -1;
        e->message[0] = '\0';
}

int err_setv(hyb_error *e, int code, long offset, const char *fmt, va_list ap)
{
        if (!e)
                return code;
        e->code = code;
        e->offset = offset;
        e->line = 0;
        e->column = 0;
        vsnprintf(e->message, sizeof(e->message), fmt, ap);
        return code;
}

int err_set(hyb_error *e, int code, long offset, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        err_setv(e, code, offset, fmt, ap);
        va_end(ap);
        return code;
}

int err_set_at(hyb_error *e, int code, long offset, int line, int column, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        err_setv(e, code, offset, fmt, ap);
        va_end(ap);
        if (e) {
                e->line = line;
                e->column = column;
        }
        return code;
}

void err_prefix(hyb_error *e, const char *fmt, ...)
{
        char buf[2 * sizeof(e->message)];
        size_t n;
        va_list ap;
        int k;

        if (!e)
                return;
        va_start(ap, fmt);
        k = vsnprintf(buf, sizeof(buf) / 2, fmt, ap);
        va_end(ap);
        n = k < 0 ? 0 : (size_t)k < sizeof(buf) / 2 ? (size_t)k : sizeof(buf) / 2 - 1;
        buf[n++] = ':';
        buf[n++] = ' ';
        memcpy(buf + n, e->message, strnlen(e->message, sizeof(e->message) - 1) + 1);
        buf[sizeof(e->message) - 1] = '\0';
        memcpy(e->message, buf, sizeof(e->message));
}
