/*
 * config.h - pdsyncd's configuration file (INI, parsed with libinih).
 *
 *   [limits]  max_users, user_limit_policy (refuse-new | evict-lru),
 *             max_value_size, max_owner_len, max_item_len, owner_chars
 *   [storage] map_initial, storage_budget, log_retain_entries,
 *             log_retain_bytes, log_retain_age_s
 *   [log]     level (error|warning|info|debug), commlog_max_bytes
 *   [group]   max_machines, heartbeat_ms, dead_ms, retry_max_ms,
 *             reclaim_after_s
 *   [node]    product, location (shown in the server's client list)
 *   [replication] ack_mode (auto | local | standby | standby-optional),
 *             standby_timeout_ms, max_clock_skew_s, outbox_max,
 *             outbox_max_bytes, catchup_memory
 *
 * Sizes accept a K, M or G suffix (powers of 1024).
 */
#ifndef PDS_CONFIG_H
#define PDS_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "../core/pds.h"

struct pds_config {
    struct pds_limits limits;
    size_t map_initial;
    size_t budget;
    uint64_t retain_entries;
    uint64_t retain_bytes;
    uint64_t retain_age_s;
    int log_level;
    size_t commlog_max;
    uint32_t max_machines;
    uint32_t heartbeat_ms;
    uint32_t dead_ms;
    uint32_t retry_max_ms;
    uint32_t reclaim_after_s; /* 0: never reclaim a silent client's slot */
    int ack_mode;             /* enum pds_ack_mode */
    uint32_t standby_timeout_ms;
    uint32_t max_skew_s;     /* a client's clock ahead of the server's */
    uint32_t outbox_max;     /* writes a client queues while offline */
    size_t outbox_max_bytes; /* and their bytes */
    /* A catch-up's memory: the server keeps about this much in flight to
     * a follower; a follower holds half of it for one commit. */
    size_t catchup_memory;
    char product[PDS_MEMBER_TEXT];
    char location[PDS_MEMBER_TEXT];
};

void pds_config_default(struct pds_config *cfg);

/*
 * Read path into cfg (which holds the defaults). Returns 0, or -1 with a
 * message in errmsg naming the file, line and setting: unknown section or
 * key, a value out of range, or a file that can't be read.
 */
int pds_config_load(const char *path, struct pds_config *cfg, char *errmsg);

#endif /* PDS_CONFIG_H */
