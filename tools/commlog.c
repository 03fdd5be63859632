/*
 * commlog.c - stderr logging and the communication log file.
 *
 * The daemon is one thread, so the logger keeps its state in this file
 * (tools/ may have process state; core/ may not).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../core/pds.h"
#include "commlog.h"

static struct {
    enum pds_log_level level;
    size_t max_bytes;
    int fd;
    char path[PATH_MAX];
    char old_path[PATH_MAX];
} logger = {PDS_LOG_INFO, 1024 * 1024, -1, "", ""};

static const char *const level_names[] = {"ERROR", "WARNING", "INFO", "DEBUG"};

int pds_log_level_parse(const char *s)
{
    static const char *const names[] = {"error", "warning", "info", "debug"};
    int i;

    for (i = 0; i < 4; i++) {
        if (strcasecmp(s, names[i]) == 0)
            return i;
    }
    return -1;
}

const char *pds_log_level_name(enum pds_log_level level)
{
    return level_names[level];
}

int pds_log_open(const char *dir, enum pds_log_level level, size_t max_bytes)
{
    logger.level = level;
    logger.max_bytes = max_bytes;
    snprintf(logger.path, sizeof(logger.path), "%s/comm.log", dir);
    snprintf(logger.old_path, sizeof(logger.old_path), "%s/comm.log.1", dir);
    logger.fd =
        open(logger.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    return logger.fd < 0 ? -1 : 0;
}

void pds_log_close(void)
{
    if (logger.fd >= 0)
        close(logger.fd);
    logger.fd = -1;
}

static void timestamp(char *buf, size_t n)
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             ts.tv_nsec / 1000000);
}

static void rotate_if_needed(void)
{
    struct stat st;

    if (fstat(logger.fd, &st) != 0 || (size_t)st.st_size < logger.max_bytes)
        return;
    close(logger.fd);
    rename(logger.path, logger.old_path);
    logger.fd =
        open(logger.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

__attribute__((format(printf, 3, 0))) static void
vlog(int to_file, enum pds_log_level level, const char *fmt, va_list ap)
{
    char ts[40];
    char msg[1024];
    char line[1200];
    int n;

    if (level > logger.level && !to_file)
        return;
    timestamp(ts, sizeof(ts));
    vsnprintf(msg, sizeof(msg), fmt, ap);
    /* One entry, one line: a name or reason from outside holding a line
     * break (or an escape) cannot forge another entry. */
    pds_replace_controls(msg);
    n = snprintf(line, sizeof(line), "%s %s %s\n", ts, level_names[level], msg);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line)) {
        n = (int)sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    if (level <= logger.level)
        fprintf(stderr, "pdsyncd: %s", line);
    if (to_file && logger.fd >= 0) {
        if (write(logger.fd, line, (size_t)n) < 0)
            fprintf(stderr, "pdsyncd: communication log: %s\n",
                    strerror(errno));
        rotate_if_needed();
    }
}

void pds_log(enum pds_log_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog(0, level, fmt, ap);
    va_end(ap);
}

void pds_commlog(enum pds_log_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog(1, level, fmt, ap);
    va_end(ap);
}

/* Append the lines of one file to a ring of the last max lines. */
static int tail_file(const char *path, char **ring, size_t max, size_t *n_seen)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;

    if (f == NULL)
        return errno == ENOENT ? 0 : -1;
    while ((len = getline(&line, &cap, f)) >= 0) {
        size_t slot = *n_seen % max;
        if (len > 0 && line[len - 1] == '\n')
            line[len - 1] = '\0';
        free(ring[slot]);
        ring[slot] = strdup(line);
        if (ring[slot] == NULL)
            break;
        (*n_seen)++;
    }
    free(line);
    fclose(f);
    return 0;
}

int pds_commlog_tail(size_t max_lines, char ***lines, size_t *n_lines)
{
    char **ring;
    char **out;
    size_t n_seen = 0;
    size_t n;
    size_t i;

    if (max_lines == 0)
        max_lines = 100;
    ring = calloc(max_lines, sizeof(*ring));
    if (ring == NULL)
        return -1;
    tail_file(logger.old_path, ring, max_lines, &n_seen);
    tail_file(logger.path, ring, max_lines, &n_seen);
    n = n_seen < max_lines ? n_seen : max_lines;
    out = calloc(n + 1, sizeof(*out));
    if (out == NULL) {
        pds_commlog_tail_free(ring, max_lines);
        return -1;
    }
    /* Oldest first. */
    for (i = 0; i < n; i++) {
        size_t slot = (n_seen - n + i) % max_lines;
        out[i] = ring[slot];
        ring[slot] = NULL;
    }
    pds_commlog_tail_free(ring, max_lines);
    *lines = out;
    *n_lines = n;
    return 0;
}

void pds_commlog_tail_free(char **lines, size_t n_lines)
{
    size_t i;

    for (i = 0; i < n_lines; i++)
        free(lines[i]);
    free(lines);
}
