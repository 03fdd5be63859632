/*
 * daemon.h - the state of pdsyncd shared by its files, which depend on
 * each other in one direction only (a file calls those below it):
 *
 *   pdsyncd.c   main, start and stop, the local API's requests
 *   group.c     roles, enrollment, settings, the group's connections
 *   status.c    the status reply
 *   admin.c     remote administration
 *   replicate.c log shipping, forwarded writes, the outbox, snapshots
 *   host.c      carrying out core updates, the group commit, the
 *               standby's acknowledgements, epochs, scopes
 *   diskq.c, commlog.c, config.c
 *
 * Where a lower file must reach a higher one (host.c at a commit, admin.c
 * serving a remote request) it calls through d->hooks, which pdsyncd.c
 * sets before anything runs, or through a waiter's answer callback.
 */
#ifndef PDS_DAEMON_H
#define PDS_DAEMON_H

#include <limits.h>
#include <stdint.h>

#include <uv.h>

#include "../core/pds.h"
#include "../net/net.h"
#include "../net/peer.h"
#include "../net/secure.h"
#include "../storage/store.h"
#include "admin.h"
#include "config.h"
#include "diskq.h"

struct daemon;
struct waiter;
struct pds_batch;

/* A request waiting for the core's reply. */
struct waiter {
    struct pds_local_conn *conn; /* NULL for a client's forwarded write */
    uint64_t id;
    enum pds_req_op op;
    uint64_t remote_conn; /* the client's connection, for WRITE_ACK */
    /* For conn NULL: answers the reply r (the caller frees w after). */
    void (*answer)(struct daemon *d,
                   const struct waiter *w,
                   const struct pds_reply *r);
};

/*
 * What host.c and admin.c call in the files above them (set by pdsyncd.c
 * before the node opens; none is NULL).
 */
struct pds_host_hooks {
    /* The group parts of a core update: member rows, joins, disconnects.
     * 1 when it took the update's replies too (sent once its rows are
     * stored), 0 when the host sends them now (group.c). */
    int (*update)(struct daemon *d, const struct pds_update *u);
    /* Before the server's commit of b with a standby to wait for: send b
     * to it, so that the fsyncs overlap; whether it was sent. After a
     * failed commit of a batch sent so (from index first): drop that
     * link (replicate.c). */
    int (*ship_early)(struct daemon *d, const struct pds_batch *b);
    void (*unship)(struct daemon *d, pds_index first);
    /* A commit of these entries is durable (lag figures), then the new
     * log goes to the followers (replicate.c). */
    void (*committed)(struct daemon *d,
                      const struct pds_entry *entries,
                      size_t n);
    void (*after_commit)(struct daemon *d);
    /* Once per loop turn, and every 100 ms (replicate.c). */
    void (*turn)(struct daemon *d);
    void (*tick)(struct daemon *d);
    /* Serve one local-API request (admin.c, for a remote administrator). */
    void (*request)(struct daemon *d,
                    struct pds_local_conn *conn,
                    const struct pds_request *req);
};

/* A new epoch begun in the store (pds__daemon_epoch_begin, on any thread),
 * for pds__daemon_epoch_begun on the loop. */
struct epoch_result {
    int rv;
    pds_epoch epoch;
    char errmsg[PDS_ERRMSG_SIZE];
};

/* The replication state (replicate.c; its size is private). */
struct pds_repl;

/* Entries stepped for one commit, and the clamped writes among them. */
struct pds_batch {
    struct pds_entry *e;
    size_t n;
    size_t cap;
    struct pds_clamp *clamps;
    size_t n_clamps;
    size_t cap_clamps;
};

struct daemon {
    uv_loop_t loop;
    struct pds_host_hooks hooks;
    uv_check_t commit_check;
    /* Active while a small batch waits for the writers the last commit
     * answered (the loop then polls without blocking). */
    uv_idle_t commit_idle;
    uint64_t answered_at; /* uv_hrtime() when the last commit was answered */
    size_t commit_goal;   /* the writes the next commit waits for */
    uv_signal_t sigterm;
    uv_signal_t sigint;
    struct pds_local_server *local;
    struct pds_store *store;
    struct pds_core *core;
    struct pds_core_config core_cfg; /* as the core was made at start */
    struct pds_config cfg;
    char data_dir[PATH_MAX];
    int lock_fd;
    int is_stopping;

    /* Every durable storage write, one at a time on a pool thread. */
    struct pds_diskq diskq;
    /* Entries stepped and not yet handed to a commit. */
    struct pds_batch batch;
    /* The commit queued or running on the pool, if any (pdsyncd.c). */
    struct pds_diskq_job commit_job;
    int is_committing;
    struct pds_batch cbatch;
    long debug_oom_batch; /* tests: the Nth batch_add runs out of memory */
    pds_time commit_time;
    int commit_rv;
    char commit_errmsg[PDS_ERRMSG_SIZE];
    int commit_shipped;
    /* After a failed commit of entries sent to the standby: the new epoch
     * the same job began. */
    struct epoch_result commit_epoch;
    int commit_waits; /* begun to be answered once the standby confirms */
    /* Writes up to here were taken to be confirmed by the standby, and the
     * server stopped before they were committed: not acknowledged. */
    pds_index unconfirmed_until;
    uint64_t n_commits;
    uint64_t n_committed;

    /* The group (group.c). */
    struct pds_identity id;
    struct pds_net *net;
    char listen_arg[128]; /* --listen, "" for none */
    char listen[80];      /* the bound address */
    int has_group;
    uint8_t group[PDS_GROUP_ID_BYTES];
    uint8_t secret[PDS_SECRET_MAX];
    size_t secret_len;
    /* Client role. */
    char server[128];
    char name[PDS_MEMBER_TEXT];
    int has_server_pk;
    uint8_t server_pk[PDS_KEY_BYTES];
    uint64_t link_conn;    /* connection to the server, 0 when none */
    pds_index server_last; /* the server's last index, as last heard */
    int is_linked;         /* welcome received */
    uv_timer_t retry_timer;
    uv_timer_t tick_timer; /* the core's clock, for slot reclaim */
    uint32_t n_retries;
    char link_error[PDS_ERRMSG_SIZE + 64];
    uint64_t notice_conn; /* the link whose server said why it drops us */
    /* Server: the last refusal logged, against log floods. */
    char last_refusal[PDS_MEMBER_ERROR];
    uint64_t last_refusal_ms;
    /* Replication destination (standby) and acknowledgements. */
    pds_index committed; /* durable here (the core may wait for more) */
    int has_standby;
    uint8_t standby_pk[PDS_KEY_BYTES];
    /* When the server's writes are acknowledged (core/ack.h). */
    struct pds_ack ack;
    /* The server's followers (core/follow.h), set up with d->repl. */
    struct pds_follow follow;
    int epoch_owed;       /* a new epoch could not be begun: tried again */
    int is_epoch_pending; /* that retry is on the storage queue */
    /* An administrator's change of the node's settings is being stored
     * (group.c): the next one waits for its answer. */
    int is_settings_busy;
    /* A change of the client role is being stored: the entries and
     * snapshot chunks of the server wait in memory until it is done. */
    int is_role_changing;
    /* Member rows on the storage queue: the joins and disconnects of later
     * updates go out after them (persist, then send). */
    size_t n_member_jobs;
    uv_timer_t ack_timer;
    /* Items whose values are device-specific (sharing scope). */
    char **device_items;
    size_t n_device_items;
    /* Remote administration: the password and its checks (admin.c). */
    struct pds_admin admin;
    /* Followers, forwarded writes, the outbox, the entries and snapshot
     * chunks received (replicate.c). */
    struct pds_repl *repl;
};

pds_time pds__wall_ms(void);

/* A waiter for a request the core will answer (holds a conn reference);
 * NULL, with the requester answered, when memory runs out. */
struct waiter *pds__daemon_waiter(struct pds_local_conn *conn,
                                  const struct pds_request *req);

/* host.c: its timer (every 100 ms: acknowledgement deadlines, the
 * hooks' tick), the check phase that commits each turn's writes and its
 * idle poll, on d->loop (closed by the caller). */
void pds__daemon_host_init(struct daemon *d);
/* Hand this turn's writes to the storage queue now (shutting down). */
void pds__daemon_commit_now(struct daemon *d);

/* Step the core with one event and carry out its update. */
int pds__daemon_step(struct daemon *d, const struct pds_event *ev);

/* Serve one local-API request (from the socket or a remote admin). */
void pds__daemon_request(struct daemon *d,
                         struct pds_local_conn *conn,
                         const struct pds_request *req);

/* Answer the requesters of the core's replies (frees their waiters). */
void pds__daemon_deliver(struct daemon *d,
                         const struct pds_reply *replies,
                         size_t n_replies);

/* Send a reply frame built with pds_reply_* (takes rb). */
void pds__daemon_send(struct pds_local_conn *conn, struct pds_reply_buf *rb);
/* Send an error reply (rc, msg) to request id on conn. */
void pds__daemon_reply_error(struct pds_local_conn *conn,
                             uint64_t id,
                             int rc,
                             const char *msg);
/* Storage iteration callbacks that load an owner or a member into the
 * core given as the argument. */
int pds__daemon_load_owner(void *core, const struct pds_owner_info *o);
int pds__daemon_load_member(void *core, const struct pds_member *m);

/*
 * group.c: load the role configuration and members, listen when --listen
 * was given, and reconnect a client to its server. 0 or -1 with errmsg.
 */
int pds__group_open(struct daemon *d, char *errmsg);
void pds__group_close(struct daemon *d);
/* The group parts of a core update: members, joins, disconnects. Returns 1
 * when it took the update's replies too (they go out once its member rows
 * are stored), 0 when the caller sends them now. */
int pds__group_update(struct daemon *d, const struct pds_update *u);
/* server/client start/stop, clients (stop|start). */
void pds__group_request(struct daemon *d,
                        struct pds_local_conn *conn,
                        const struct pds_request *req);
/* Sharing scopes: reload after an entry changed one; ask about an item. */
void pds__scope_reload(struct daemon *d);
/* Reload the scopes when committed entries changed one. */
void pds__scope_after_commit(struct daemon *d,
                             const struct pds_entry *entries,
                             size_t n);
int pds__scope_is_device(const struct daemon *d, const char *item, size_t len);

/* Append k items of size bytes to a growing array *arr (*n of *cap):
 * 0, or PDS_ENOMEM with the array unchanged. */
int pds__append(void **arr,
                size_t *n,
                size_t *cap,
                const void *items,
                size_t k,
                size_t size);

/* Server: the standby made entries up to index durable. */
void pds__daemon_standby_ack(struct daemon *d, pds_index index);
/* No standby to wait for any more (replication stop): the writes waiting
 * for one are durable here and are answered. */
/* The node stopped being the server: the writes waiting for the standby
 * (and those of a commit under way that was to wait) get an error. */
void pds__daemon_server_stopped(struct daemon *d, int waited);
/* Is a write acknowledged only once the standby confirmed it (now)? */
int pds__daemon_waits_for_standby(const struct daemon *d);
/* A replication destination is set, or none (replication start/stop, the
 * settings at start): writes that waited for it may be answered now. */
void pds__daemon_standby_set(struct daemon *d, int has_standby);
/* The standby's link ended: its position counts from its next word. */
void pds__daemon_standby_gone(struct daemon *d);
/* The acknowledgement mode in force ("local", "standby", ...). */
const char *pds__daemon_ack_mode(const struct daemon *d);

/* Server: send a batch to the standby before committing it (the fsyncs
 * overlap); after a failed commit of a batch sent so, drop that link. */
int pds__repl_ship_early(struct daemon *d, const struct pds_batch *b);
void pds__repl_unship(struct daemon *d, pds_index first);
/* Server: ship new log entries to the followers after a commit. */
void pds__group_after_commit(struct daemon *d);
/* Client: send a local write to the server (replies when applied). */
void pds__group_forward(struct daemon *d,
                        struct pds_local_conn *conn,
                        const struct pds_request *req);
/* Server: begin a new epoch (at its start, and after a failed commit
 * whose entries the standby may hold): in the store, on the thread of the
 * caller (the writing calls' rules), then into the core on the loop. */
void pds__daemon_epoch_begin(struct pds_store *store, struct epoch_result *r);
int pds__daemon_epoch_begun(struct daemon *d, const struct epoch_result *r);
/* Again after a failure (every 100 ms), on the storage queue. */
void pds__daemon_retry_epoch(struct daemon *d);
/* The connection with this id, NULL when gone or the group is closing. */
struct pds_conn *pds__daemon_conn(struct daemon *d, uint64_t id);
/*
 * replicate.c: the log shipping and forwarded writes of group.c.
 *
 * pds__repl_new makes d->repl: before anything calls into replicate.c
 * (before pds__group_open). 0, or PDS_ENOMEM with errmsg
 * (PDS_ERRMSG_SIZE) and nothing to clean up. pds__repl_free frees it once
 * the loop has ended (the links closed, every pool job done); d->repl may
 * be NULL (nothing to do).
 */
int pds__repl_new(struct daemon *d, char *errmsg);
void pds__repl_free(struct daemon *d);
void pds__repl_conn_closed(struct daemon *d, uint64_t conn);
void pds__repl_on_sync(struct daemon *d,
                       struct pds_conn *c,
                       const struct pds_msg *m);
void pds__repl_on_ack(struct daemon *d,
                      struct pds_conn *c,
                      const struct pds_msg *m);
void pds__repl_on_write(struct daemon *d,
                        struct pds_conn *c,
                        const struct pds_msg *m);
void pds__repl_start(struct daemon *d, struct pds_conn *c);
/* Takes m->blob. */
void pds__repl_on_entries(struct daemon *d,
                          struct pds_conn *c,
                          struct pds_msg *m);
void pds__repl_on_write_ack(struct daemon *d, const struct pds_msg *m);
void pds__repl_on_notice(struct daemon *d, const struct pds_msg *m);
/* Server: tell every follower whether it is the replication destination
 * (after replication start or stop). */
void pds__repl_tell_roles(struct daemon *d);
void pds__repl_link_lost(struct daemon *d);
/* A local write outside the client role: the data leaves the group's. */
void pds__repl_local_write(struct daemon *d);
/* The position the follower on conn last confirmed durable (1), or 0
 * when it confirmed none on this connection. */
int pds__repl_durable(struct daemon *d, uint64_t conn, uint64_t *position);
/* The same for the member with this key, on any of its connections. */
int pds__repl_durable_of(struct daemon *d,
                         const uint8_t *pk,
                         pds_index *position);
/* Is the member with this key following the log? Fills its runtime
 * replication fields (position, sent, lag, sync). */
int pds__repl_follower(struct daemon *d,
                       const uint8_t *pk,
                       struct pds_member *out);
/* Server: a commit of these entries happened (lag figures). */
void pds__repl_note_commit(struct daemon *d,
                           const struct pds_entry *entries,
                           size_t n);
/* Once per loop turn: the server ships on to followers paused on a full
 * link; a client removes the answered outbox writes. */
void pds__repl_flush(struct daemon *d);
/* Client, every 100 ms: timed-out outbox writes go again when due. */
void pds__repl_tick(struct daemon *d);
/* Client: the queued writes (returns their number; *e = entry i, or NULL
 * for one the server has answered, which reads no longer see). */
size_t pds__repl_outbox(struct daemon *d, const struct pds_entry **e, size_t i);
/* Client: a change of role was stored or refused: the server's entries
 * and snapshot chunks held meanwhile go on to the store. */
void pds__repl_resume(struct daemon *d);
void pds__repl_client_status(struct daemon *d, struct pds_status *st);
/* Takes m->blob. */
void pds__repl_on_snapshot(struct daemon *d,
                           struct pds_conn *c,
                           struct pds_msg *m);
void pds__repl_on_snap_ack(struct daemon *d,
                           struct pds_conn *c,
                           const struct pds_msg *m);
/* Rebuild the core from the store (after a snapshot replaced the data). */
int pds__daemon_core_reload(struct daemon *d);

/* status.c: answer a status request ('pdsync status'). */
void pds__status_request(struct daemon *d,
                         struct pds_local_conn *conn,
                         const struct pds_request *req);

#endif /* PDS_DAEMON_H */
