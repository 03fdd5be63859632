/*
 * slow_sync.c - a test fixture preloaded into pdsyncd (LD_PRELOAD): while
 * the file named by PDS_SLOW_SYNC_FLAG exists, every fdatasync(), fsync()
 * and msync(MS_SYNC) of the process takes PDS_SLOW_SYNC_MS milliseconds
 * more (default 2000), as on a worn or busy flash disk, and each such call
 * is appended to the file PDS_SLOW_SYNC_LOG as one line:
 *
 *   DELAYED fdatasync thread=main|pool tid=N
 *
 * "main" is the process's first thread, pdsyncd's event loop: a slowed
 * sync there means the loop waited on the disk, which the test asserts
 * never happens. Unlike strace's fault injection, no thread is stopped at
 * its other system calls, so the timing of the rest of the node is its
 * own even on a busy machine.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static void slow(const char *call)
{
    const char *flag = getenv("PDS_SLOW_SYNC_FLAG");
    const char *log = getenv("PDS_SLOW_SYNC_LOG");
    const char *ms_text = getenv("PDS_SLOW_SYNC_MS");
    long ms = ms_text != NULL ? atol(ms_text) : 2000;
    struct timespec ts;
    char line[128];
    int fd;
    int n;

    if (flag == NULL || access(flag, F_OK) != 0)
        return;
    if (log != NULL) {
        n = snprintf(line, sizeof(line), "DELAYED %s thread=%s tid=%ld\n", call,
                     gettid() == getpid() ? "main" : "pool", (long)gettid());
        fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0) {
            if (n > 0 && write(fd, line, (size_t)n) < 0)
                n = 0;
            close(fd);
        }
    }
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0)
        ;
}

int fdatasync(int fd)
{
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");

    slow("fdatasync");
    return real(fd);
}

int fsync(int fd)
{
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");

    slow("fsync");
    return real(fd);
}

int msync(void *addr, size_t len, int flags)
{
    int (*real)(void *, size_t, int) =
        (int (*)(void *, size_t, int))dlsym(RTLD_NEXT, "msync");

    if (flags & MS_SYNC)
        slow("msync");
    return real(addr, len, flags);
}
