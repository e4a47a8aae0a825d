/* SPDX-License-Identifier: MIT */
/*
 * A disk as slow as a test wants (LD_PRELOAD into hybridd): while the file named by
 * $HYB_FSYNC_HOLD exists, fsync and fdatasync wait; the first one that waits creates
 * "$HYB_FSYNC_HOLD.waiting", so the test knows a commit is inside its fsync.  Without
 * the variable, or once the file is gone, they are the real calls.
 * (_GNU_SOURCE, for RTLD_NEXT, comes from the project's arguments.)
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void hold(void)
{
        const char *p = getenv("HYB_FSYNC_HOLD");
        char mark[4096];
        int fd;

        if (!p || access(p, F_OK) != 0)
                return;
        snprintf(mark, sizeof mark, "%s.waiting", p);
        fd = open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0)
                close(fd);
        while (access(p, F_OK) == 0) {
                struct timespec ts = { 0, 2 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
}

int fsync(int fd)
{
        static int (*real)(int);

        if (!real)
                real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
        hold();
        return real(fd);
}

int fdatasync(int fd)
{
        static int (*real)(int);

        if (!real)
                real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
        hold();
        return real(fd);
}
