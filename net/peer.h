/*
 * peer.h - group connections between nodes: libuv TCP (IPv4 and IPv6,
 * host names through uv_getaddrinfo), length-prefixed frames with a
 * maximum size, the handshake of secure.h, encrypted msgpack messages,
 * heartbeats, and an outbound connector that retries with capped
 * exponential back-off and jitter.
 */
#ifndef PDS_PEER_H
#define PDS_PEER_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "../core/pds.h"
#include "secure.h"

#define PDS_NET_FRAME_MAX (4u * 1024u * 1024u)

/*
 * The handshake (hellos, then each side's stream header) is bounded so
 * that connections which never complete it cannot hold a node's memory
 * and descriptors:
 * - it must complete within PDS_NET_HANDSHAKE_MS of the connection (a
 *   legitimate one takes one round trip and a few milliseconds of
 *   X25519; the rest is margin for lossy links and a busy node), or the
 *   connection is closed with "handshake not completed within 10 s";
 * - until it completes, a frame over PDS_NET_HANDSHAKE_FRAME bytes is
 *   malformed (a hello is about 120 bytes, a stream header 32, a
 *   plaintext refusal under 200);
 * - at most PDS_NET_HANDSHAKE_MAX accepted connections may be unclaimed at
 *   once (in the handshake, or through it but neither joined nor
 *   administered: any key completes the handshake); the next ones get a
 *   plaintext REFUSE and are closed at once (reported through on_close at
 *   most once a minute, with a count).
 */
#define PDS_NET_HANDSHAKE_MS 10000u
/* After the handshake, an accepted connection the application has not
 * claimed (pds_conn_set_data: a member's join; pds_conn_hold: an
 * administrator's request) within this long is closed. */
#define PDS_NET_CLAIM_MS 60000u
#define PDS_NET_HANDSHAKE_FRAME (16u * 1024u)
#define PDS_NET_HANDSHAKE_MAX 64u

/* ---- Messages ------------------------------------------------------- */

enum pds_msg_type {
    PDS_MSG_HELLO = 1, /* plaintext, first frame of each side */
    PDS_MSG_REFUSE,    /* plaintext or encrypted: why the peer closes */
    PDS_MSG_JOIN,      /* client -> server */
    PDS_MSG_WELCOME,   /* server -> client */
    PDS_MSG_PING,
    PDS_MSG_PONG,
    PDS_MSG_LEAVE,       /* client -> server: synchronization stopped */
    PDS_MSG_ADMIN,       /* remote administrator -> node: password, request */
    PDS_MSG_ADMIN_REPLY, /* node -> remote administrator: reply */
    PDS_MSG_SYNC,        /* follower -> server: my position */
    PDS_MSG_ENTRIES,     /* server -> follower: log entries as stored */
    PDS_MSG_ACK,         /* follower -> server: durable up to index */
    PDS_MSG_WRITE,       /* client -> server: a write made on the client */
    PDS_MSG_WRITE_ACK,   /* server -> client: its outcome */
    PDS_MSG_NOTICE,      /* server -> follower: why it is not followed */
    PDS_MSG_SNAPSHOT,    /* server -> follower: a chunk of a refresh */
    PDS_MSG_SNAP_ACK,    /* follower -> server: chunk rid is stored */
    PDS_MSG_ROLE         /* server -> follower: whether it is the standby */
};
#define PDS_MSG_LAST PDS_MSG_ROLE

/* How the server decided a client's write (WRITE_ACK, code 0). */
enum pds_write_outcome {
    PDS_WRITE_APPLIED = 0,    /* it is the newest version: in the log */
    PDS_WRITE_SUPERSEDED = 1, /* a newer version was already there */
    PDS_WRITE_DUPLICATE = 2,  /* this very version is already there */
    PDS_WRITE_CLAMPED = 3     /* applied, its clock too far ahead: restamped */
};

/* A decoded message; strings are NUL-terminated copies. */
struct pds_msg {
    enum pds_msg_type type;
    uint32_t version;                  /* HELLO */
    uint8_t group[PDS_GROUP_ID_BYTES]; /* HELLO, WELCOME */
    int has_group;
    uint8_t pk[PDS_KEY_BYTES];      /* HELLO */
    uint8_t epk[PDS_KEY_BYTES];     /* HELLO */
    uint32_t aead;                  /* HELLO: PDS_AEAD_* bits */
    uint8_t proof[PDS_PROOF_BYTES]; /* JOIN, WELCOME */
    int has_proof;
    int32_t code;               /* REFUSE: PDS_E* */
    uint64_t member_id;         /* WELCOME */
    char name[PDS_MEMBER_TEXT]; /* JOIN */
    char product[PDS_MEMBER_TEXT];
    char location[PDS_MEMBER_TEXT];
    char version_text[PDS_MEMBER_TEXT];
    char err[PDS_MEMBER_ERROR]; /* REFUSE */
    uint8_t pw[PDS_SECRET_MAX]; /* ADMIN */
    size_t pw_len;
    uint8_t *blob; /* ADMIN request, ADMIN_REPLY reply, ENTRIES entries,
                    * WRITE value (owned) */
    size_t blob_len;
    uint8_t *clamps; /* ENTRIES: memos of its restamped entries,
                      * PDS_CLAMP_BYTES each (owned; optional) */
    size_t clamps_len;
    /* Every message but HELLO (optional in REFUSE, which may be sent
     * before the handshake): the sender's epoch, the highest it knows of
     * ("se"). Set by pds_conn_send() from pds_net_set_epoch(); 0 from a
     * command line, which is no node. */
    uint64_t sender_epoch;
    uint64_t index;      /* SYNC, ENTRIES (first), ACK, WRITE_ACK */
    uint64_t epoch;      /* SYNC, WRITE_ACK, SNAPSHOT: of that position */
    uint64_t last_index; /* ENTRIES: the server's last index */
    int is_standby;      /* ROLE: the follower is the replication
                          * destination (0: a plain client) */
    uint64_t window_end; /* ENTRIES: the last index sent before an ACK is
                          * needed (absent: this message's last) */
    uint64_t rid;        /* WRITE, WRITE_ACK: the client's request; SNAPSHOT:
                          * the chunk's number from 0 */
    int is_fresh;        /* SYNC: the follower's data came from this group */
    int op;              /* WRITE: enum pds_op */
    int scope;           /* WRITE: enum pds_scope */
    char owner[PDS_OWNER_MAX + 1]; /* WRITE */
    char item[PDS_ITEM_MAX + 1];   /* WRITE */
    uint64_t hlc;  /* WRITE: the client's version (0: the server stamps);
                    * SYNC: the version of the follower's last entry (0:
                    * unknown, after a snapshot) */
    uint64_t node; /* WRITE, SYNC: the node that made that version */
    int outcome;   /* WRITE_ACK: enum pds_write_outcome */
    int is_last;   /* SNAPSHOT: the last chunk (index/epoch: its position) */
    int is_upload; /* WRITE: the node's own data, uploaded at its first join
                    * (optional) */
    int is_queued; /* WRITE: from the outbox, made while the server was
                    * unreachable (optional) */
};

/* Release what pds_msg_decode() allocated (blob); wipes the password. */
void pds_msg_free(struct pds_msg *m);

/* Encode a message body (no length prefix); *out is malloc'ed. */
int pds_msg_encode(const struct pds_msg *m, uint8_t **out, size_t *len);
/* Decode a message body; PDS_EPROTO with errmsg for anything malformed. */
int pds_msg_decode(const uint8_t *buf,
                   size_t len,
                   struct pds_msg *m,
                   char *errmsg);

/* ---- Connections ---------------------------------------------------- */

struct pds_net;
struct pds_conn;

struct pds_net_callbacks {
    /* The handshake completed: the peer holds the private key of pk. */
    void (*on_open)(void *arg, struct pds_conn *conn);
    /* An encrypted message arrived on an open connection. The callback
     * may keep msg->blob (setting it to NULL); the rest is freed after. */
    void (*on_message)(void *arg, struct pds_conn *conn, struct pds_msg *msg);
    /* The connection ended (error NULL for a clean close by us). After
     * this call conn is gone. */
    void (*on_close)(void *arg, struct pds_conn *conn, const char *error);
    /* Optional (NULL: not told): a message from conn carried an epoch
     * above this node's (pds_net_set_epoch), before it is delivered. The
     * callback may close conn; the message is then dropped. */
    void (*on_epoch)(void *arg, struct pds_conn *conn, uint64_t epoch);
};

struct pds_net_config {
    const struct pds_identity *id;
    uint32_t heartbeat_ms; /* PING interval (default 1000) */
    uint32_t dead_ms;      /* silence that ends a connection (3000) */
    uint32_t max_frame;    /* default PDS_NET_FRAME_MAX */
    /* Time to complete the handshake (default PDS_NET_HANDSHAKE_MS, or
     * the environment's PDSYNC_DEBUG_HANDSHAKE_MS, for the tests). */
    uint32_t handshake_ms;
    /* Time for an accepted connection to be claimed after the handshake
     * (default PDS_NET_CLAIM_MS). */
    uint32_t claim_ms;
    const char *version; /* software version sent in JOIN */
};

int pds_net_new(uv_loop_t *loop,
                const struct pds_net_config *config,
                const struct pds_net_callbacks *cb,
                void *arg,
                struct pds_net **out);
/* Close every connection and the listener; frees once the loop ran. */
void pds_net_close(struct pds_net *net);

/* The epoch every message this node sends carries (0 until set). */
void pds_net_set_epoch(struct pds_net *net, pds_epoch epoch);

/* The group id this node's hellos carry and expect (zero: any). */
void pds_net_set_group(struct pds_net *net, const uint8_t *group);

/*
 * Listen on HOST:PORT (port 0 picks one). Writes the bound address as
 * "HOST:PORT" into bound (at least 64 bytes). PDS_EBUSY when the port is
 * in use, PDS_EINVAL for a bad address.
 */
int pds_net_listen(struct pds_net *net,
                   const char *host_port,
                   char *bound,
                   char *errmsg);

/* Connect to HOST:PORT; the result comes through the callbacks (on_close
 * with the error when it fails). *conn_id names the connection. */
int pds_net_connect(struct pds_net *net,
                    const char *host_port,
                    uint64_t *conn_id,
                    char *errmsg);

/* Close every connection (not the listener). */
void pds_net_close_all(struct pds_net *net, const char *why);

/* Split "HOST:PORT" or "[V6]:PORT"; 0 or PDS_EINVAL. */
int pds_net_split(const char *host_port,
                  char *host,
                  size_t host_size,
                  char *port,
                  size_t port_size);

/* Per-connection data. */
const uint8_t *pds_conn_peer_pk(const struct pds_conn *conn);
const uint8_t *pds_conn_hash(const struct pds_conn *conn);
int pds_conn_is_initiator(const struct pds_conn *conn);
const char *pds_conn_address(const struct pds_conn *conn);
/* The cipher of an open connection's stream, "" before it is open. */
const char *pds_conn_cipher(const struct pds_conn *conn);
uint64_t pds_conn_id(const struct pds_conn *conn);
void pds_conn_set_data(struct pds_conn *conn, void *data);
/*
 * An administrator's request (its password checked) runs on this
 * connection: it is claimed, and for up to ms neither the claim deadline
 * nor the silence of dead_ms closes it (the tool sends no heartbeats while
 * it waits for a long request, a write waiting for the standby say).
 * Released (ms 0) when the answer is sent; the deadlines then count from
 * there.
 */
void pds_conn_hold(struct pds_conn *conn, uint32_t ms);
void *pds_conn_data(const struct pds_conn *conn);
/* Find an open connection by id (NULL when gone). */
struct pds_conn *pds_net_find(struct pds_net *net, uint64_t id);

/* Send an encrypted message on an open connection. */
int pds_conn_send(struct pds_conn *conn, const struct pds_msg *msg);
/* Seal and write what was sent so far now (before blocking on a disk). */
int pds_conn_flush(struct pds_conn *conn);
/*
 * Bytes from the peer already here and not yet delivered as messages: the
 * rest of the frame being read and what waits in the socket. A receiver
 * may wait for them before acting on what it has.
 */
size_t pds_conn_pending(struct pds_conn *conn);
/* Bytes sent on conn and not yet taken by the socket. */
size_t pds_conn_queued(struct pds_conn *conn);
/* Send REFUSE (encrypted when open, plain before) then close. */
void pds_conn_refuse(struct pds_conn *conn, int code, const char *err);
/* Close once what was sent is flushed (uv_shutdown), cleanly; from now on
 * nothing more is sent (pds_conn_send: PDS_ECONN) or delivered. on_close
 * follows with why (may be NULL). */
void pds_conn_finish(struct pds_conn *conn, const char *why);
/* Close now; on_close follows with error (may be NULL). */
void pds_conn_close(struct pds_conn *conn, const char *error);

#endif /* PDS_PEER_H */
