/*
 * commlog.h - the daemon's logging: level-tagged lines to stderr, and the
 * communication log kept in the data directory (comm.log, rotated to
 * comm.log.1) with the Warning and Error entries an administrator reads
 * with 'pdsync log'.
 */
#ifndef PDS_COMMLOG_H
#define PDS_COMMLOG_H

#include <stddef.h>

enum pds_log_level {
    PDS_LOG_ERROR = 0,
    PDS_LOG_WARNING = 1,
    PDS_LOG_INFO = 2,
    PDS_LOG_DEBUG = 3
};

/* Parse "error", "warning", "info", "debug"; -1 when unknown. */
int pds_log_level_parse(const char *s);
const char *pds_log_level_name(enum pds_log_level level);

/*
 * Start logging: stderr lines at level and below; Warning and Error lines
 * (and Info lines flagged for it) also go to DIR/comm.log, rotated when it
 * passes max_bytes. Returns 0 or -1 with errno when the file can't be
 * opened.
 */
int pds_log_open(const char *dir, enum pds_log_level level, size_t max_bytes);
void pds_log_close(void);

/* Log to stderr only. */
void pds_log(enum pds_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Log to stderr and to the communication log. */
void pds_commlog(enum pds_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * The last max_lines lines of the communication log (both files), as an
 * array of malloc'ed strings; free with pds_commlog_tail_free().
 */
int pds_commlog_tail(size_t max_lines, char ***lines, size_t *n_lines);
void pds_commlog_tail_free(char **lines, size_t n_lines);

#endif /* PDS_COMMLOG_H */
