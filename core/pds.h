/*
 * pds.h - the I/O-free core of pdsync.
 *
 * This header defines the data model (keys, versions, records, log
 * entries), the error table, the hybrid logical clock, and the core state
 * machine driven by pds_core_step(). Nothing in core/ calls a clock, a
 * socket, the disk or the allocator's random neighbours: time comes in with
 * every event and all I/O is asked for in the returned update.
 *
 * The byte layouts of keys, records and log entries are defined here once;
 * storage/ stores them as they are and net/ sends them as they are.
 */
#ifndef PDS_H
#define PDS_H

#include <stddef.h>
#include <stdint.h>

typedef uint64_t pds_epoch;
typedef uint64_t pds_index;
typedef uint64_t pds_node_id;
/* A hybrid logical clock value: milliseconds << 16 | logical counter. */
typedef uint64_t pds_hlc;
/* Wall-clock milliseconds since the Unix epoch, as passed in by the host. */
typedef uint64_t pds_time;

/*
 * Error codes. Every int-returning function of pdsync returns 0 or one of
 * these negative values; pds_strerror() gives the text.
 */
#define PDS_ERRNO_MAP(X)                                                       \
    X(ENOMEM, "out of memory")                                                 \
    X(EINVAL, "invalid argument")                                              \
    X(ENOTFOUND, "not found")                                                  \
    X(ETOOBIG, "value too large")                                              \
    X(EBADNAME, "invalid name")                                                \
    X(ELIMIT, "limit reached")                                                 \
    X(ENOSPC, "storage budget exhausted")                                      \
    X(EFULL, "disk full")                                                      \
    X(EIO, "I/O error")                                                        \
    X(ECORRUPT, "data corrupt")                                                \
    X(EVERSION, "unsupported format version")                                  \
    X(EPROTO, "protocol error")                                                \
    X(EBUSY, "already running")                                                \
    X(ECONN, "connection error")                                               \
    X(EPERM, "permission denied")                                              \
    X(EAUTH, "authentication failed")                                          \
    X(ETIMEDOUT, "timed out")                                                  \
    X(ECANCELED, "operation canceled")

enum pds_errno {
    PDS_EFIRST = -1000,
#define PDS__ERR_ENUM(name, text) PDS_##name,
    PDS_ERRNO_MAP(PDS__ERR_ENUM)
#undef PDS__ERR_ENUM
        PDS_ELAST
};

/* The text of an error code; "unknown error" for codes not in the table. */
const char *pds_strerror(int rv);
/* The short name of an error code ("ENOTFOUND"); "EUNKNOWN" otherwise. */
const char *pds_errname(int rv);

/* Size of the errmsg buffers carried by long-lived objects. */
#define PDS_ERRMSG_SIZE 256

/* ---- Data model ------------------------------------------------------ */

enum pds_scope { PDS_SCOPE_USER = 0, PDS_SCOPE_GROUP = 1 };

/* Hard upper bounds; the configurable limits are at most these. */
#define PDS_OWNER_MAX 255
#define PDS_ITEM_MAX 255
#define PDS_VALUE_MAX (64u * 1024u * 1024u)

/* A record's key. The strings are not NUL-terminated; lengths rule. */
struct pds_key {
    enum pds_scope scope;
    const char *owner;
    size_t owner_len;
    const char *item;
    size_t item_len;
};

/* A record version: last writer wins by (hlc, node). */
struct pds_version {
    pds_hlc hlc;
    pds_node_id node;
};

/*
 * Compare two versions by last-writer-wins order: hlc first, then node id.
 * Returns <0, 0 or >0 like memcmp.
 */
int pds_version_cmp(const struct pds_version *a, const struct pds_version *b);

enum pds_user_policy {
    PDS_USER_POLICY_REFUSE = 0,
    PDS_USER_POLICY_EVICT_LRU = 1
};

/* Limits from the configuration. */
struct pds_limits {
    uint32_t max_users;               /* users per group, default 1000 */
    enum pds_user_policy user_policy; /* when max_users is reached */
    uint32_t max_value;               /* value bytes, default 1 MiB */
    uint32_t max_owner;               /* owner name bytes, default 64 */
    uint32_t max_item;                /* item name bytes, default 128 */
    /* Punctuation allowed in owner names besides ASCII letters and digits;
     * NUL-terminated. Default "._-@". */
    char owner_chars[32];
};

/* Fill limits with the defaults above. */
void pds_limits_default(struct pds_limits *limits);

/*
 * Check a key against the limits: owner is 1..max_owner bytes of ASCII
 * letters, digits and owner_chars, not starting with punctuation; item is
 * 1..max_item bytes of dot-separated segments of [a-z0-9_-] (case
 * insensitive), no empty segment. On failure returns PDS_EBADNAME and writes
 * a message naming the limit and its setting into errmsg (PDS_ERRMSG_SIZE).
 */
int pds_key_validate(const struct pds_limits *limits,
                     const struct pds_key *key,
                     char *errmsg);

/*
 * The first control character (a byte below 0x20, or 0x7f) of the len
 * bytes at s, or NULL. Text that is shown or logged as one line (a node's
 * name, a peer's reason, a log entry) must have none: a line feed would
 * start a forged log line, an escape a terminal sequence.
 */
const char *pds_find_control(const char *s, size_t len);
/* Show each control character of the string s as '?'. */
void pds_replace_controls(char *s);

/* Check an owner name alone, as pds_key_validate() does. */
int pds_owner_validate(const struct pds_limits *limits,
                       const char *owner,
                       size_t owner_len,
                       char *errmsg);

/* Check a value's size against max_value: PDS_ETOOBIG with a message
 * naming the limit and its setting in errmsg (PDS_ERRMSG_SIZE). */
int pds_value_validate(const struct pds_limits *limits,
                       uint64_t value_len,
                       char *errmsg);

/* ---- Hybrid logical clock -------------------------------------------- */

#define PDS_HLC_LOGICAL_BITS 16
#define PDS_HLC_MS(h) ((h) >> PDS_HLC_LOGICAL_BITS)
#define PDS_HLC_LOGICAL(h) ((h) & ((1u << PDS_HLC_LOGICAL_BITS) - 1u))
#define PDS_HLC_MAKE(ms, l) (((pds_hlc)(ms) << PDS_HLC_LOGICAL_BITS) | (l))

/*
 * The clock for a new local event: strictly greater than every value this
 * clock has produced or observed, and at least the wall time. A wall clock
 * that steps backwards never makes it go back.
 */
pds_hlc pds_hlc_next(pds_hlc *last, pds_time wall_ms);

/* Take a remote clock value into account (on receive). */
void pds_hlc_observe(pds_hlc *last, pds_hlc remote);

/* ---- Encodings (defined once) ---------------------------------------- */

/*
 * Record table key: scope byte, owner bytes, a NUL, item bytes. Names never
 * contain NUL, so keys sort by (scope, owner, item) and an owner's records
 * are one contiguous range. Returns the encoded length; buf must hold
 * 2 + owner_len + item_len bytes (PDS_RECKEY_MAX is always enough).
 */
#define PDS_RECKEY_MAX (2 + PDS_OWNER_MAX + PDS_ITEM_MAX)
size_t pds_reckey_encode(const struct pds_key *key, uint8_t *buf);
/* The prefix of every record key of one owner: scope, owner, NUL. */
size_t pds_reckey_prefix(enum pds_scope scope,
                         const char *owner,
                         size_t owner_len,
                         uint8_t *buf);
/* Decode a record key; the key's strings point into buf. PDS_ECORRUPT. */
int pds_reckey_decode(const uint8_t *buf, size_t len, struct pds_key *key);

/* A stored record: version, the log index that wrote it, tombstone flag. */
struct pds_record {
    struct pds_version version;
    pds_index index;
    int is_tombstone;
    const uint8_t *value; /* borrowed */
    uint32_t value_len;
};

#define PDS_RECORD_HDR 25
/* Encoded size of a record value. */
size_t pds_record_size(const struct pds_record *rec);
/* Encode into buf (pds_record_size() bytes); returns that size. */
size_t pds_record_encode(const struct pds_record *rec, uint8_t *buf);
/* Decode; rec->value points into buf. PDS_ECORRUPT on a bad layout. */
int pds_record_decode(const uint8_t *buf, size_t len, struct pds_record *rec);

/* Log entry operations. */
enum pds_op {
    PDS_OP_PUT = 1,       /* set item of owner to value */
    PDS_OP_DEL = 2,       /* tombstone item of owner */
    PDS_OP_DEL_OWNER = 3, /* remove every record of owner */
    PDS_OP_SCOPE = 4      /* item becomes shared (value 0) or device (1) */
};

/*
 * A log entry. Layout (little-endian):
 *   u8 format(=1) u8 op u8 scope u8 reserved
 *   u64 epoch u64 index u64 hlc u64 node
 *   u16 owner_len u16 item_len u32 value_len owner item value
 */
struct pds_entry {
    pds_epoch epoch;
    pds_index index;
    enum pds_op op;
    struct pds_key key;
    struct pds_version version;
    const uint8_t *value; /* borrowed */
    uint32_t value_len;
};

#define PDS_ENTRY_FORMAT 1
#define PDS_ENTRY_HDR 44
size_t pds_entry_size(const struct pds_entry *entry);
size_t pds_entry_encode(const struct pds_entry *entry, uint8_t *buf);
/* The owner name every PDS_OP_SCOPE entry carries. */
#define PDS_SCOPE_OWNER "scope"

/* Decode; strings and value point into buf. PDS_ECORRUPT on a bad layout. */
int pds_entry_decode(const uint8_t *buf, size_t len, struct pds_entry *entry);

/* Do the two keys name the same owner (scope and owner name)? */
int pds_key_same_owner(const struct pds_key *a, const struct pds_key *b);
/* Does the entry decide key: the same scope and owner, and the same item
 * or a delete of the whole owner? */
int pds_entry_covers(const struct pds_entry *entry, const struct pds_key *key);

/* Little-endian and big-endian helpers shared by every encoder. */
void pds_put_u64be(uint8_t *p, uint64_t v);
uint64_t pds_get_u64be(const uint8_t *p);
/* The 4-byte big-endian length before each entry of a batch of entries
 * (pds_store_log_range(), the ENTRIES message) and in snapshot items. */
void pds_put_u32be(uint8_t *p, uint32_t v);
uint32_t pds_get_u32be(const uint8_t *p);

/* ---- The core state machine ------------------------------------------ */

#include "member.h"
#include "repl.h"
#include "follow.h"
#include "link.h"
#include "role.h"
#include "ack.h"
#include "outbox.h"

/* Events fed to pds_core_step(). */
enum pds_event_type {
    PDS_EVENT_WRITE = 1,      /* a local write request */
    PDS_EVENT_TOUCH,          /* an owner was read: refresh its LRU time */
    PDS_EVENT_PERSISTED,      /* entries up to index are durable */
    PDS_EVENT_PERSIST_FAILED, /* entries from index on were not written */
    PDS_EVENT_TICK,           /* timer */
    PDS_EVENT_PEER_JOIN,      /* an authenticated node asks to join */
    PDS_EVENT_PEER_LEFT,      /* a member's connection ended */
    PDS_EVENT_MEMBER_ADMIN,   /* clients stop/start ID|NAME */
    PDS_EVENT_APPLIED,        /* a follower stored the server's entries */
    PDS_EVENT_ACK_TIMEOUT,    /* durable here, not confirmed by the standby */
    PDS_EVENT_ROLE_CHANGE,    /* a move to another role is asked for */
    PDS_EVENT_ROLE_STORED,    /* the role the update asked for is stored */
    PDS_EVENT_EPOCH_HEARD,    /* a peer's message carried its epoch */
    PDS_EVENT_EPOCH_STORED    /* the epoch the update asked for is stored */
};

enum pds_member_op { PDS_MEMBER_OP_STOP = 1, PDS_MEMBER_OP_START = 2 };

/* A local write. Strings and value are copied by the core. */
struct pds_write {
    uint64_t req;       /* host's request handle, echoed in the reply */
    enum pds_op op;     /* PUT, DEL or DEL_OWNER */
    struct pds_key key; /* item unused for DEL_OWNER */
    const uint8_t *value;
    uint32_t value_len;
    int exists; /* DEL: the host saw a live record for the key */
    /*
     * A client's write on the server: the version the client gave it (its
     * clock, its node id), decided by last-writer-wins against the version
     * the host holds for the key (has_current). A clock further ahead of
     * this node's than max_skew_ms is not believed: the write is stamped
     * with this node's clock instead (outcome PDS_OUTCOME_CLAMPED).
     */
    int has_origin;
    struct pds_version origin;
    int has_current;
    struct pds_version current;
    /*
     * The log index of that current version, and the index up to which
     * the host trusts a version to stay (in standby acknowledgement mode,
     * what the standby confirmed; all of it otherwise). A write that loses
     * to a version beyond it is not decided: PDS_ETIMEDOUT, and the
     * client sends it again. Told it lost, it must have lost for good.
     */
    pds_index current_index;
    pds_epoch current_epoch; /* the epoch of that entry */
    /* DEL_OWNER with an origin: the highest log index of the owner's
     * records (live or deleted) newer than it, 0 when none. */
    pds_index owner_newer;
    /* Writes with an origin (not a first join's uploads): the owner's
     * latest delete-user the host applied (its version and index): a write
     * older than it loses, and a queued delete-user newer than it moves it
     * on though the owner is gone. */
    int has_gone;
    struct pds_version gone;
    pds_index gone_index;
    pds_epoch gone_epoch; /* the epoch of that entry */
    /* A client's write from its outbox, made while the server was
     * unreachable (a delete-user of an owner deleted since still counts). */
    int is_queued;
    pds_index trusted;
    /*
     * The host's memo of this origin (pds_clamp): the same write came
     * before with a clock too far ahead and was stamped with this node's
     * clock. Its replay (the answer was lost) is that write again, not a
     * new one: answered as a duplicate, never stamped a second time over
     * what came after it.
     */
    int has_clamp;
    struct pds_version clamp_version;
    pds_epoch clamp_epoch;
    pds_index clamp_index;
};

/*
 * A write whose clock was not believed (PDS_OUTCOME_CLAMPED): the version
 * it came with, and the entry it became. The host keeps it with the entry,
 * in the same transaction, for as long as the entry is in the log.
 */
struct pds_clamp {
    struct pds_version origin;
    struct pds_version version;
    pds_epoch epoch;
    pds_index index;
};

/* A memo as followers receive it with its entry (ENTRIES "c"): origin
 * node and clock, the stamp's clock and node, epoch, index; big-endian. */
#define PDS_CLAMP_BYTES 48
void pds_clamp_encode(const struct pds_clamp *clamp, uint8_t *buf);
void pds_clamp_decode(const uint8_t *buf, struct pds_clamp *clamp);

/* How a write with an origin version was decided (pds_reply.outcome). */
enum pds_outcome {
    PDS_OUTCOME_APPLIED = 0,
    PDS_OUTCOME_SUPERSEDED = 1, /* a newer version is there: not applied */
    PDS_OUTCOME_DUPLICATE = 2,  /* this version was there: written again */
    PDS_OUTCOME_CLAMPED = 3     /* applied with this node's clock */
};

struct pds_event {
    enum pds_event_type type;
    pds_time now;
    union {
        struct pds_write write;
        struct {
            enum pds_scope scope;
            const char *owner;
            size_t owner_len;
        } touch;
        struct {
            pds_index index;
        } persisted;
        struct {
            pds_index index; /* first entry that was not written */
            int status;      /* PDS_E* */
            const char *errmsg;
        } persist_failed;
        struct pds_join join;
        struct {
            uint64_t conn;
            uint8_t pk[PDS_KEY_BYTES];
            const char *error; /* why it ended, NULL for a clean close */
            int has_position;  /* it followed the log, durable at: */
            uint64_t position;
        } left;
        struct {
            uint64_t req;
            enum pds_member_op op;
            const char *target; /* id in hex, or name */
        } member_admin;
        struct {
            const struct pds_entry *entries; /* durable, in log order */
            size_t n_entries;
        } applied;
        struct {
            pds_index index; /* entries up to here are durable locally */
            const char *errmsg;
        } ack_timeout;
        struct {
            enum pds_role to;
            enum pds_role_cause cause;
        } role_change;
        struct {
            enum pds_role role; /* the one update.role asked for */
            int status;         /* 0: stored; PDS_E*: not stored */
        } role_stored;
        struct {
            pds_epoch epoch;
        } epoch_heard;
        struct {
            pds_epoch epoch; /* the one update.epoch asked for */
            int status;      /* 0: stored; PDS_E*: not stored */
        } epoch_stored;
    } u;
};

/* A reply the host sends to a writer. */
struct pds_reply {
    uint64_t req;
    int status;      /* 0 or PDS_E* */
    pds_epoch epoch; /* position of the write when status == 0 */
    pds_index index;
    struct pds_version version;
    int outcome; /* enum pds_outcome */
    char errmsg[PDS_ERRMSG_SIZE];
};

/*
 * What the host must do after a step, in this order: persist the entries
 * (one transaction, durable), then send the replies. The arrays are owned
 * by the core and valid until the next pds_core_step() or pds_core_free();
 * the strings and values an entry points to stay valid until the step that
 * reports that entry persisted or failed.
 */
struct pds_update {
    const struct pds_entry *entries;
    size_t n_entries;
    /* Writes among the entries stamped with this node's clock: persisted
     * with them (pds_write.has_clamp). */
    const struct pds_clamp *clamps;
    size_t n_clamps;
    const struct pds_reply *replies;
    size_t n_replies;
    /* Members whose stored row must be written (clients table). */
    const struct pds_member *members;
    size_t n_members;
    /* Answers to joins: send welcome or refuse (and close). */
    const struct pds_join_reply *joins;
    size_t n_joins;
    /* Members whose connection must be closed now (stopped). */
    const uint64_t *disconnect;
    size_t n_disconnect;
    /* Store this role, then report PDS_EVENT_ROLE_STORED with the result
     * (the core is still in its old role until then). */
    int has_role;
    enum pds_role role;
    enum pds_role role_from;
    /* Store this epoch as the node's (above every one it has seen), then
     * report PDS_EVENT_EPOCH_STORED. */
    int has_epoch;
    pds_epoch epoch;
    /* Why the step refused an event (PDS_EINVAL, PDS_EBUSY): a sentence,
     * "" otherwise. */
    const char *errmsg;
};

/* An owner known to the core, as loaded from storage at start. */
struct pds_owner_info {
    enum pds_scope scope;
    const char *owner;
    size_t owner_len;
    pds_time last_used;
};

struct pds_core_config {
    pds_node_id node_id;
    pds_epoch epoch;      /* current epoch (>= 1) */
    pds_index last_index; /* last durable log index */
    pds_hlc last_hlc;     /* highest clock value ever stored */
    struct pds_limits limits;
    enum pds_role role;
    uint32_t max_machines; /* group limit, server included (default 10) */
    /* Reclaim the slot of a client not seen for this long (ms); 0: never
     * (the default). Checked on PDS_EVENT_TICK. */
    uint64_t reclaim_after_ms;
    /* The most a client's clock may be ahead of this node's (ms); 0: the
     * default, 60 s. */
    uint64_t max_skew_ms;
};

struct pds_core; /* private */

/*
 * Create a core. Returns 0 and writes *out, or PDS_ENOMEM / PDS_EINVAL
 * (epoch 0, node id 0). The config is copied.
 */
int pds_core_new(const struct pds_core_config *config, struct pds_core **out);
void pds_core_free(struct pds_core *core);

/* Before the first step: tell the core about an existing owner. */
int pds_core_load_owner(struct pds_core *core, const struct pds_owner_info *o);

/*
 * Advance the state machine by one event. On return *update says what the
 * host must do. Returns 0, or PDS_ENOMEM (the event had no effect) or
 * PDS_EINVAL (an event that makes no sense now, e.g. persisted beyond what
 * was asked).
 */
int pds_core_step(struct pds_core *core,
                  const struct pds_event *event,
                  struct pds_update *update);

/* Before the first step: a member row from the clients table. */
int pds_core_load_member(struct pds_core *core, const struct pds_member *m);

/*
 * Before the first step: the role the node stored (pds_core_config.role
 * when the core was made before the role was read). PDS_EINVAL for a
 * value out of range. Every later change is an event: PDS_EVENT_ROLE_CHANGE
 * (refused with PDS_EINVAL when the table of role.h does not allow it or
 * the cause does not explain it, PDS_EBUSY while another move waits to be
 * stored; update.errmsg says why), then PDS_EVENT_ROLE_STORED. Leaving the
 * server role forgets no member: they are kept for the next server start.
 */
int pds_core_load_role(struct pds_core *core, enum pds_role role);
/* The role a move waits to have stored (the current role when none). */
enum pds_role pds_core_role_pending(const struct pds_core *core);

/* The member table (valid until the next step). */
const struct pds_member *pds_core_members(const struct pds_core *core,
                                          size_t *n_members);
/*
 * The member named by target: its id in hex or its name (which must be
 * unique). NULL, with the reason in errmsg (PDS_ERRMSG_SIZE), when there is
 * none. Valid until the next step.
 */
const struct pds_member *
pds_core_member_find(struct pds_core *core, const char *target, char *errmsg);

/* Machines counted against max_machines: the server and every enrolled
 * (not stopped) client. */
size_t pds_core_n_machines(const struct pds_core *core);

/* Read-only views of the core's state. */
enum pds_role pds_core_role(const struct pds_core *core);
pds_epoch pds_core_epoch(const struct pds_core *core);
/* A new term: the entries made from now on carry epoch (never lower). */
void pds_core_set_epoch(struct pds_core *core, pds_epoch epoch);
pds_index pds_core_last_index(const struct pds_core *core); /* durable */
size_t pds_core_n_users(const struct pds_core *core);
size_t pds_core_n_groups(const struct pds_core *core);
/* A new version stamped by this node's clock (a client's own write, sent to
 * its server with the time the user made it). */
struct pds_version pds_core_stamp(struct pds_core *core, pds_time now);
/* Clients' writes that lost to a newer version, and clocks not believed,
 * since the core started. */
uint64_t pds_core_n_superseded(const struct pds_core *core);
uint64_t pds_core_n_clamped(const struct pds_core *core);
/* Writes waiting to become durable. */
size_t pds_core_n_pending(const struct pds_core *core);

#endif /* PDS_H */
