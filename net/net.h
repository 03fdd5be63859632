/*
 * net.h - pdsync's local API: the Unix-domain socket a node serves inside
 * its data directory, and the small blocking client library the CLI, the
 * tests and the benchmarks use.
 *
 * Wire format: every message is a frame of a 4-byte big-endian length
 * followed by that many bytes of msgpack. A request is a map with at least
 * "id" (uint) and "op" (str); a reply is a map with "id", "rc" (0 or a
 * negative PDS_E* code), "err" (str, empty on success) and the op's fields.
 * Frames longer than PDS_LOCAL_FRAME_MAX are malformed. A malformed frame
 * closes that connection only.
 */
#ifndef PDS_NET_H
#define PDS_NET_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "../core/pds.h"

#define PDS_LOCAL_FRAME_MAX (PDS_VALUE_MAX + 64u * 1024u)
#define PDS_SOCKET_NAME "pdsyncd.sock"

enum pds_req_op {
    PDS_REQ_PUT = 1,
    PDS_REQ_GET,
    PDS_REQ_DEL,
    PDS_REQ_LIST,
    PDS_REQ_USERS,
    PDS_REQ_DELETE_USER,
    PDS_REQ_STATUS,
    PDS_REQ_LOG,
    PDS_REQ_SERVER_START, /* secret (optional) */
    PDS_REQ_SERVER_STOP,
    PDS_REQ_CLIENT_START, /* target HOST:PORT, secret, name (optional) */
    PDS_REQ_CLIENT_STOP,
    PDS_REQ_CLIENTS,
    PDS_REQ_CLIENTS_STOP,      /* target ID or name */
    PDS_REQ_CLIENTS_START,     /* target ID or name */
    PDS_REQ_ADMIN_PASSWORD,    /* secret: the new password */
    PDS_REQ_REPLICATION_START, /* target: the standby, ID or name */
    PDS_REQ_REPLICATION_STOP,
    PDS_REQ_SCOPE_SET, /* item, target "shared" or "device" */
    PDS_REQ_SCOPES     /* the device-specific items */
};
#define PDS_REQ_LAST PDS_REQ_SCOPES

/* The op's wire name ("put", "delete-user"...). */
const char *pds_req_op_name(enum pds_req_op op);

/* A decoded request; strings and value borrow the frame buffer. */
struct pds_request {
    uint64_t id;
    enum pds_req_op op;
    enum pds_scope scope;
    const char *owner; /* NULL when absent */
    size_t owner_len;
    const char *item;
    size_t item_len;
    const uint8_t *value;
    size_t value_len;
    uint32_t limit;     /* LOG: number of lines, 0 = default; CLIENT_START: 1
                         * to merge this node's data (--merge) */
    const char *target; /* NULL when absent */
    size_t target_len;
    const char *name;
    size_t name_len;
    const uint8_t *secret;
    size_t secret_len;
    void *priv; /* the decoder's memory; see pds_request_free() */
};

/*
 * Decode one frame body (without its length prefix) into *req. Returns 0,
 * or PDS_EPROTO with a reason in errmsg (PDS_ERRMSG_SIZE bytes) for
 * anything malformed: not a map, unknown op, wrong field types, a required
 * field missing. On success req's pointers borrow buf and memory that
 * pds_request_free() releases; on failure there is nothing to release.
 */
int pds_request_decode(const uint8_t *buf,
                       size_t len,
                       struct pds_request *req,
                       char *errmsg);
void pds_request_free(struct pds_request *req);

/*
 * Encode a request as a complete frame (length prefix included), for the
 * client library and tests. *frame is malloc'ed; the caller frees it.
 */
int pds_request_encode(const struct pds_request *req,
                       uint8_t **frame,
                       size_t *len);

/* ---- Replies --------------------------------------------------------- */

struct pds_status {
    const char *role;
    pds_node_id node_id;
    pds_epoch epoch;
    pds_epoch last_epoch;
    pds_index last_index;
    uint64_t n_records;
    uint64_t n_users;
    uint64_t n_groups;
    uint64_t n_log;
    uint64_t n_clamps; /* memos of restamped writes (server or follower) */
    uint64_t bytes_used;
    uint64_t budget;
    uint64_t max_users;
    uint64_t pid;
    uint64_t n_commits;   /* write transactions since start */
    uint64_t n_committed; /* entries they carried */
    uint64_t n_machines;  /* server: machines of the group */
    uint64_t max_machines;
    uint64_t reclaim_after_s; /* server: 0 when slots are never reclaimed */
    const char *group;        /* group id in hex, "" when none */
    const char *listen;       /* group port, "" when not listening */
    const char *server;       /* client: the server's address */
    const char *link;         /* client: connected, connecting, ... */
    const char *last_error;   /* client: last error of the link */
    const char *cipher;       /* client: the link's cipher, "" when down */
    const char *standby;      /* server: the replication destination */
    uint64_t server_last;     /* client: the server's last index heard */
    const char *ack_mode;     /* server: when writes are acknowledged */
    uint64_t n_outbox;        /* client: writes queued for the server */
    uint64_t n_rejected;      /* client: queued writes the server refused */
    uint64_t n_lost;          /* client: queued writes a newer one beat */
    const char *outbox_error; /* client: the last refusal */
    uint64_t n_superseded;    /* server: clients' writes that lost (LWW) */
    uint64_t n_clamped;       /* server: clients' clocks not believed */
    const char *data_dir;
    const char *version;
};

/* One record in a list reply. */
struct pds_item {
    enum pds_scope scope;
    const char *owner;
    size_t owner_len;
    const char *item;
    size_t item_len;
    const uint8_t *value;
    size_t value_len;
    struct pds_version version;
};

/* One owner in a users reply. */
struct pds_user {
    enum pds_scope scope;
    const char *owner;
    size_t owner_len;
    pds_time last_used;
};

/* Answer to server start. */
struct pds_server_started {
    const char *group;  /* hex */
    const char *secret; /* the generated secret, or NULL when given */
    const char *listen; /* the group port, "" when not listening */
};

/*
 * A reply being built. Encoders write into a growing buffer; pds_reply_take
 * hands it over as a complete frame (length prefix included).
 */
struct pds_reply_buf; /* private */
struct pds_write_result;
struct pds_reply_buf *pds_reply_new(uint64_t id, int rc, const char *err);
/* Add fields; each returns 0 or PDS_ENOMEM (the buffer is then poisoned and
 * pds_reply_take returns PDS_ENOMEM). Call at most one of these. */
int pds_reply_write(struct pds_reply_buf *rb,
                    const struct pds_write_result *res);
int pds_reply_get(struct pds_reply_buf *rb, const struct pds_item *item);
int pds_reply_list(struct pds_reply_buf *rb,
                   const struct pds_item *items,
                   size_t n_items);
int pds_reply_users(struct pds_reply_buf *rb,
                    const struct pds_user *users,
                    size_t n_users);
int pds_reply_status(struct pds_reply_buf *rb, const struct pds_status *st);
int pds_reply_log(struct pds_reply_buf *rb,
                  const char *const *lines,
                  size_t n_lines);
int pds_reply_members(struct pds_reply_buf *rb,
                      const struct pds_member *members,
                      size_t n_members,
                      uint64_t now);
int pds_reply_server_started(struct pds_reply_buf *rb,
                             const struct pds_server_started *st);
/* Finish: *frame (malloc'ed, caller frees) and *len. Frees rb always. */
int pds_reply_take(struct pds_reply_buf *rb, uint8_t **frame, size_t *len);

/* ---- Server side (libuv) --------------------------------------------- */

struct pds_local_server;
struct pds_local_conn;

/*
 * Called for every well-formed request. req is valid only during the call.
 * The handler must eventually answer with pds_local_send() on conn exactly
 * once per request; it may keep conn across loop turns after taking a
 * reference with pds_local_conn_ref().
 */
typedef void (*pds_local_request_cb)(void *arg,
                                     struct pds_local_conn *conn,
                                     const struct pds_request *req);
/* Called when a connection sends a malformed frame (it is then closed). */
typedef void (*pds_local_error_cb)(void *arg, const char *what);

/*
 * Listen on the Unix socket at path (created mode 0600; an existing stale
 * socket file is replaced). Returns 0 or PDS_EIO/PDS_EBUSY with errmsg.
 */
int pds_local_listen(uv_loop_t *loop,
                     const char *path,
                     pds_local_request_cb on_request,
                     pds_local_error_cb on_error,
                     void *arg,
                     struct pds_local_server **out,
                     char *errmsg);
/* Stop listening, close every connection; handles are freed by the loop. */
void pds_local_close(struct pds_local_server *server);

/*
 * A connection object for a request that arrived another way (a remote
 * administrator): pds_local_send() hands each reply frame to cb, which
 * takes ownership of it. Release with pds_local_conn_unref(); when the
 * last reference goes, release(arg) is called (if not NULL), so arg can
 * live exactly as long as the connection. NULL when memory runs out: then
 * release is never called and arg stays the caller's.
 */
typedef void (*pds_local_send_cb)(void *arg, uint8_t *frame, size_t len);
typedef void (*pds_local_release_cb)(void *arg);
struct pds_local_conn *pds_local_conn_virtual(pds_local_send_cb cb,
                                              pds_local_release_cb release,
                                              void *arg);

void pds_local_conn_ref(struct pds_local_conn *conn);
void pds_local_conn_unref(struct pds_local_conn *conn);
/*
 * Send a complete frame (from pds_reply_take) on conn. Takes ownership of
 * frame in every case. A connection that was closed meanwhile drops it.
 */
void pds_local_send(struct pds_local_conn *conn, uint8_t *frame, size_t len);

/* ---- Client library (blocking, no event loop) ------------------------ */

struct pds_client; /* private */

/*
 * Connect to the node socket at path. Returns 0 and *out, or PDS_ECONN
 * ("no pdsyncd is running at ...") / PDS_EPERM / PDS_EINVAL with errmsg.
 */
int pds_client_open(const char *path, struct pds_client **out, char *errmsg);

/*
 * Connect to a node's group port for remote administration: an encrypted
 * link (secure.h) on which every request carries the administrator
 * password. Returns 0, or PDS_ECONN / PDS_EAUTH / PDS_EPROTO with errmsg.
 */
struct pds_identity;
struct pds_session;
/* The handshake of secure.h on a blocking socket (fd), either side. */
int pds_client_handshake(int fd,
                         const struct pds_identity *id,
                         int is_initiator,
                         struct pds_session *s,
                         char *errmsg);

int pds_client_open_remote(const char *host_port,
                           const uint8_t *password,
                           size_t password_len,
                           struct pds_client **out,
                           char *errmsg);
void pds_client_close(struct pds_client *c);
/* Text of the last error (the server's message for a refused request). */
const char *pds_client_errmsg(const struct pds_client *c);

struct pds_write_result {
    pds_epoch epoch;
    pds_index index;
    struct pds_version version;
    /* A client node: the write waits in its outbox (number > 0) for the
     * server, which is unreachable. */
    uint64_t queued;
    int outcome; /* enum pds_outcome: superseded by a newer version... */
};

int pds_client_put(struct pds_client *c,
                   const struct pds_key *key,
                   const uint8_t *value,
                   size_t value_len,
                   struct pds_write_result *res);
/*
 * pds_client_put in two halves, for one thread that keeps many local
 * clients busy: send the request, then, once pds_client_fd() is readable,
 * take its answer (one request outstanding per client).
 */
int pds_client_put_send(struct pds_client *c,
                        const struct pds_key *key,
                        const uint8_t *value,
                        size_t value_len);
int pds_client_put_recv(struct pds_client *c, struct pds_write_result *res);
int pds_client_fd(const struct pds_client *c);
int pds_client_del(struct pds_client *c,
                   const struct pds_key *key,
                   struct pds_write_result *res);
int pds_client_delete_user(struct pds_client *c,
                           enum pds_scope scope,
                           const char *owner,
                           struct pds_write_result *res);

/*
 * Results of reading calls live in memory owned by the client and stay
 * valid until the next call on the same client.
 */
int pds_client_get(struct pds_client *c,
                   const struct pds_key *key,
                   struct pds_item *out);
int pds_client_list(struct pds_client *c,
                    enum pds_scope scope,
                    const char *owner, /* NULL: every owner */
                    const struct pds_item **items,
                    size_t *n_items);
int pds_client_users(struct pds_client *c,
                     const struct pds_user **users,
                     size_t *n_users);
int pds_client_status(struct pds_client *c, struct pds_status *out);
int pds_client_log(struct pds_client *c,
                   uint32_t max_lines,
                   const char *const **lines,
                   size_t *n_lines);

/* Administration of the group (strings NUL-terminated). */
int pds_client_server_start(struct pds_client *c,
                            const uint8_t *secret,
                            size_t secret_len,
                            struct pds_server_started *out);
int pds_client_server_stop(struct pds_client *c);
int pds_client_client_start(struct pds_client *c,
                            const char *server,
                            const uint8_t *secret,
                            size_t secret_len,
                            const char *name,
                            int merge); /* keep the newer of each record */
int pds_client_client_stop(struct pds_client *c);
int pds_client_clients(struct pds_client *c,
                       const struct pds_member **members,
                       size_t *n_members);
int pds_client_clients_admin(struct pds_client *c,
                             int start,
                             const char *target);
/* Sharing scope of an item ("shared" or "device"), and the device items. */
int pds_client_scope_set(struct pds_client *c,
                         const char *item,
                         const char *scope);
int pds_client_scopes(struct pds_client *c,
                      const char *const **items,
                      size_t *n_items);
/* Designate the replication destination (NULL target: stop). */
int pds_client_replication(struct pds_client *c, const char *target);
/* Set the administrator password for remote use (local socket only). */
int pds_client_admin_password(struct pds_client *c,
                              const uint8_t *password,
                              size_t len);

/*
 * Send raw bytes on the connection and read one reply frame; for tests of
 * malformed input. Returns 0 when a reply came, PDS_ECONN when the server
 * closed the connection.
 */
int pds_client_raw(struct pds_client *c, const uint8_t *buf, size_t len);

#endif /* PDS_NET_H */
