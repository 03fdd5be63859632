/*
 * store.h - pdsync's durable storage on LMDB.
 *
 * One LMDB environment in a directory, with named tables:
 *   records  record key (pds_reckey_encode) -> record (pds_record_encode)
 *   log      u64 big-endian index -> entry (pds_entry_encode), stored as is
 *   meta     short names -> values: node id, format version, epoch, last
 *            position, highest clock, live record count
 *   owners   scope byte + owner -> u64be last_used ms
 *   clients  member public key -> member row (pds_member_encode)
 *
 * Storage is synchronous and knows no event loop: the daemon decides on
 * which thread a call runs. A write transaction begins and commits inside
 * one call. The writing calls (pds_store_commit*, init_node, new_epoch,
 * blob_put, members_put, local_put, outbox_add, outbox_remove, snap_begin,
 * snap_put, snap_finish) may run on one thread, one at a time, while the
 * reading functions run on another (LMDB's readers do not wait for its
 * writer: MDB_NOTLS, so a read transaction is not tied to its thread); map
 * growth waits for the readers. Every function returns 0 or a negative
 * PDS_E* code; the text of the last error, with context, is in
 * pds_store_errmsg() for a reading or setup call and in
 * pds_store_commit_errmsg() for a writing one, so that each thread reads
 * its own.
 *
 * Map growth: the map starts at map_initial bytes and doubles on
 * MDB_MAP_FULL up to budget; beyond that writes fail with PDS_ENOSPC
 * ("storage budget exhausted") while reads keep working.
 */
#ifndef PDS_STORE_H
#define PDS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "../core/pds.h"

/* The on-disk format this build writes and reads. */
#define PDS_STORE_FORMAT 1

struct pds_store_config {
    const char *path;        /* directory of the environment; must exist */
    size_t map_initial;      /* first map size, bytes (0: 8 MiB) */
    size_t budget;           /* largest map size, bytes (0: 512 MiB) */
    uint64_t retain_entries; /* log entries kept (0: 100000) */
    /* Also at most this many bytes of log (0: no bound) and no entry older
     * than this (ms; 0: no bound). The newest entry always stays. */
    uint64_t retain_bytes;
    uint64_t retain_ms;
};

struct pds_store_meta {
    pds_node_id node_id; /* 0 until pds_store_init_node() */
    uint32_t format;
    pds_epoch epoch;       /* current epoch, 1 on a new store */
    pds_epoch last_epoch;  /* position of the last log entry */
    pds_index last_index;  /* 0 when the log is empty */
    pds_index first_index; /* oldest retained entry; 0 when empty */
    pds_hlc last_hlc;      /* highest clock value stored */
};

struct pds_store_stats {
    uint64_t n_records;  /* live records (tombstones not counted) */
    uint64_t n_users;    /* owners of scope user */
    uint64_t n_groups;   /* owners of scope group */
    uint64_t n_log;      /* retained log entries */
    uint64_t n_clamps;   /* memos of restamped writes */
    uint64_t bytes_used; /* pages in use * page size */
    uint64_t map_size;   /* current map size */
    uint64_t budget;
};

struct pds_store; /* private */

/*
 * Open (creating if needed) the store in config->path. A store written by a
 * newer format is refused with PDS_EVERSION and left untouched; a damaged
 * file gives PDS_ECORRUPT; an unwritable directory PDS_EPERM or PDS_EIO.
 * On failure *out is untouched and errmsg (PDS_ERRMSG_SIZE bytes) says why.
 */
int pds_store_open(const struct pds_store_config *config,
                   struct pds_store **out,
                   char *errmsg);
void pds_store_close(struct pds_store *store);

/* Text of the last error of a reading or setup call, with context. */
const char *pds_store_errmsg(const struct pds_store *store);
/* Text of the last failed writing call (pds_store_commit() and the others
 * listed above). */
const char *pds_store_commit_errmsg(const struct pds_store *store);

/* Set the node id if the store has none yet (first start). */
int pds_store_init_node(struct pds_store *store, pds_node_id node_id);

int pds_store_meta(struct pds_store *store, struct pds_store_meta *out);
int pds_store_stats(struct pds_store *store, struct pds_store_stats *out);
/*
 * Epochs. Each term of a server is an epoch of its own, so that one
 * (epoch, index) names one entry on every node: the server begins a new
 * one (above every epoch its store has seen) each time it starts writing.
 * pds_store_epoch_of() gives the epoch of the entry at index, also when
 * the log no longer holds it (from the epochs table: where each epoch's
 * first entry went; a snapshot brings the epoch of its stamp).
 */
int pds_store_new_epoch(struct pds_store *store, pds_epoch *out);
/*
 * Record an epoch heard from a peer: the stored epoch becomes epoch when
 * that is higher (a later new epoch begins above it). Durable on return.
 * 0, or PDS_ENOSPC / PDS_EIO with errmsg (the epoch was not changed).
 */
int pds_store_raise_epoch(struct pds_store *store, pds_epoch epoch);
/* Keep the entries after index (0: none) against the count and age
 * retention while a follower takes a snapshot stamped there, for at most
 * one more retention's worth (10,000 entries at least); the byte bound
 * still applies. Any thread. */
void pds_store_hold_log(struct pds_store *store, pds_index index);
int pds_store_epoch_of(struct pds_store *store,
                       pds_index index,
                       pds_epoch *out);

/*
 * Append entries to the log and apply them to the records, owners, position
 * and clock in ONE durable write transaction. Entries must have consecutive
 * indexes following the last one. The log is trimmed to retain_entries in
 * the same transaction. Nothing is written on failure: PDS_ENOSPC when the
 * budget is exhausted, PDS_EINVAL for a gap in indexes, PDS_EIO otherwise.
 */
int pds_store_commit(struct pds_store *store,
                     const struct pds_entry *entries,
                     size_t n_entries,
                     pds_time now);

/*
 * The same, keeping the memo of the clamped writes among the entries (the
 * core's pds_update.clamps, or on a follower what the server sent with
 * them) in the same transaction. A memo lives while its entry is in the
 * log and at least 30 days after its stamp (up to 100,000 memos).
 */
int pds_store_commit_clamped(struct pds_store *store,
                             const struct pds_entry *entries,
                             size_t n_entries,
                             const struct pds_clamp *clamps,
                             size_t n_clamps,
                             pds_time now);

/*
 * The memos of the clamped writes among entries first..last, in index
 * order, for a follower (*out malloc'ed, NULL when none).
 */
int pds_store_clamps_range(struct pds_store *store,
                           pds_index first,
                           pds_index last,
                           struct pds_clamp **out,
                           size_t *n_out);

/* The memo of a clamped write by the version it came with; PDS_ENOTFOUND. */
int pds_store_clamp_get(struct pds_store *store,
                        const struct pds_version *origin,
                        struct pds_clamp *out);

/*
 * Read one record. On success *rec is filled and, if the record has a
 * value, *value is a malloc'ed copy the caller frees (rec->value points to
 * it). Tombstones are returned too (rec->is_tombstone). PDS_ENOTFOUND when
 * the key was never written.
 */
int pds_store_get(struct pds_store *store,
                  const struct pds_key *key,
                  struct pds_record *rec,
                  uint8_t **value);

/*
 * Iterate live records of one owner (owner != NULL) or of all owners, in
 * key order. The callback's key and record are borrowed and valid only
 * during the call; a non-zero return stops the iteration and is returned.
 */
typedef int (*pds_store_record_cb)(void *arg,
                                   const struct pds_key *key,
                                   const struct pds_record *rec);
int pds_store_list(struct pds_store *store,
                   enum pds_scope scope,
                   const char *owner,
                   size_t owner_len,
                   pds_store_record_cb cb,
                   void *arg);

/* Iterate owners (both scopes) with their last-used time. */
typedef int (*pds_store_owner_cb)(void *arg, const struct pds_owner_info *o);
int pds_store_owners(struct pds_store *store, pds_store_owner_cb cb, void *arg);

/*
 * Named blobs in the meta table, for the node's role configuration ("role",
 * "group", "secret", "server", "server_pk"). get: PDS_ENOTFOUND when
 * absent, PDS_ETOOBIG when it does not fit in cap (nothing copied). put
 * with value NULL deletes. Each put is one durable transaction.
 */
int pds_store_blob_get(struct pds_store *store,
                       const char *name,
                       uint8_t *buf,
                       size_t cap,
                       size_t *len);
int pds_store_blob_put(struct pds_store *store,
                       const char *name,
                       const uint8_t *value,
                       size_t len);

/*
 * Sharing scopes: the items that are device-specific (PDS_OP_SCOPE entries
 * set them). Their values live in a local table of each node, never in the
 * log: pds_store_local_put() (rec NULL deletes; PDS_ENOTFOUND when there
 * was nothing) and pds_store_local_get() (like pds_store_get()).
 */
typedef int (*pds_store_scope_cb)(void *arg, const char *item, size_t len);
int pds_store_scopes(struct pds_store *store, pds_store_scope_cb cb, void *arg);
int pds_store_local_put(struct pds_store *store,
                        const struct pds_key *key,
                        const struct pds_record *rec);
int pds_store_local_list(struct pds_store *store,
                         enum pds_scope scope,
                         const char *owner,
                         size_t owner_len,
                         pds_store_record_cb cb,
                         void *arg);
int pds_store_local_get(struct pds_store *store,
                        const struct pds_key *key,
                        struct pds_record *rec,
                        uint8_t **value);

/* Write member rows (clients table, keyed by public key) durably. */
int pds_store_members_put(struct pds_store *store,
                          const struct pds_member *members,
                          size_t n_members);
/* Iterate the clients table. */
typedef int (*pds_store_member_cb)(void *arg, const struct pds_member *m);
int pds_store_members(struct pds_store *store,
                      pds_store_member_cb cb,
                      void *arg);

/*
 * Read retained log entries from index `from` on, as stored, into one
 * malloc'ed buffer of [u32 big-endian length][entry bytes] items, up to
 * about max_bytes (at least one entry). *n_entries is 0 (and *buf NULL)
 * when from is past the last entry; PDS_ENOTFOUND when from is no longer
 * retained.
 */
int pds_store_log_range(struct pds_store *store,
                        pds_index from,
                        size_t max_bytes,
                        uint8_t **buf,
                        size_t *len,
                        size_t *n_entries);

/*
 * Read one log entry by index into a malloc'ed copy (*buf, *len), for
 * tests and followers. PDS_ENOTFOUND when not retained.
 */
/* The version and index of the latest delete-user of the owner that this
 * store applied; PDS_ENOTFOUND when none. */
int pds_store_owner_gone(struct pds_store *store,
                         enum pds_scope scope,
                         const char *owner,
                         size_t owner_len,
                         struct pds_version *version,
                         pds_index *index);
/* The highest log index of the owner's records (live or deleted) newer
 * than version; 0 when none. */
int pds_store_owner_newer(struct pds_store *store,
                          enum pds_scope scope,
                          const char *owner,
                          size_t owner_len,
                          const struct pds_version *version,
                          pds_index *newer);
/* The bytes of the retained log from index from on, and the clock (ms)
 * of its first entry there (0 when none). */
int pds_store_log_span(struct pds_store *store,
                       pds_index from,
                       uint64_t *bytes,
                       pds_time *first_ms);
int pds_store_log_get(struct pds_store *store,
                      pds_index index,
                      uint8_t **buf,
                      size_t *len);

/* ---- Outbox (client) -----------------------------------------------------
 * Writes made while the server is unreachable, kept durably in order until
 * the server answers them. An entry's index is its sequence number; its
 * epoch is PDS_OUTBOX_UPLOAD for the node's own records queued at its
 * first join (pds_store_snap_finish), 0 for writes.
 */
#define PDS_OUTBOX_UPLOAD 1
int pds_store_outbox_add(struct pds_store *store,
                         const struct pds_entry *entry,
                         uint64_t *seq);
typedef int (*pds_store_outbox_cb)(void *arg,
                                   uint64_t seq,
                                   const struct pds_entry *e);
/* Iterate in order; strings point into the read transaction (copy them). */
int pds_store_outbox_list(struct pds_store *store,
                          pds_store_outbox_cb cb,
                          void *arg);
int pds_store_outbox_remove(struct pds_store *store,
                            const uint64_t *seqs,
                            size_t n);

/* ---- Snapshots -------------------------------------------------------------
 * Server: pds_store_snap_write() copies the records, scopes, memos of
 * restamped writes and delete marks, read in one transaction (so the copy
 * is the data at exactly the position it reports), to the file fd as a
 * sequence of items: u8 kind (1 record, 2 scope, 3 memo, 4 delete mark), u16
 * key length, key, u32 value length, value (big-endian lengths). It may run
 * on another thread than the other calls on the store: its errors go to
 * errmsg (PDS_ERRMSG_SIZE), not to the store's. PDS_EFULL when the file
 * system is full.
 * pds_store_snap_read() reads whole items from offset on, about max_bytes
 * (one larger item whole): a malloc'ed chunk for pds_store_snap_put() on
 * the follower; *len 0 at the end of the file. PDS_ECORRUPT when the file
 * does not hold whole items.
 */
int pds_store_snap_write(struct pds_store *store,
                         int fd,
                         pds_epoch *epoch,
                         pds_index *index,
                         uint64_t *bytes,
                         char *errmsg);
int pds_store_snap_read(int fd,
                        uint64_t offset,
                        uint64_t size,
                        size_t max_bytes,
                        uint8_t **chunk,
                        size_t *len,
                        char *errmsg);

/*
 * Follower: stage a snapshot in tables of its own (begin clears them, put
 * adds a chunk, PDS_ECORRUPT for one that does not decode), then swap it in
 * with finish, in one transaction: the records, owners and scopes become
 * the snapshot's (and so do the memos and delete marks), the log empties,
 * the position becomes (epoch, index) and
 * the data is marked as the group's. Until finish, readers see the old
 * copy; a snapshot cut off midway leaves only the staging tables.
 * keep says which of this node's own records to queue in the outbox for the
 * server first (a first join): none; the owners the snapshot lacks (the
 * server's copy wins); or every record newer than the snapshot's (merge).
 */
enum pds_snap_keep {
    PDS_SNAP_KEEP_NONE = 0,
    PDS_SNAP_KEEP_NEW_OWNERS = 1,
    PDS_SNAP_KEEP_NEWER = 2
};
int pds_store_snap_begin(struct pds_store *store);
int pds_store_snap_put(struct pds_store *store,
                       const uint8_t *chunk,
                       size_t len);
int pds_store_snap_finish(struct pds_store *store,
                          pds_epoch epoch,
                          pds_index index,
                          const uint8_t *group,
                          size_t group_len,
                          enum pds_snap_keep keep,
                          pds_time now,
                          uint64_t *n_uploaded);

#endif /* PDS_STORE_H */
