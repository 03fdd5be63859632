/*
 * peer.c - group connections on libuv TCP: frames, handshake, encrypted
 * messages, heartbeats.
 *
 * A connection goes HELLO (plaintext hellos exchanged) -> HEADER (keys
 * derived, each side's sealed stream header confirms them) -> OPEN
 * (encrypted messages). Any
 * malformed frame, failed decryption or protocol violation closes it with
 * an error the callbacks log; nothing else is affected.
 */
#include <stdarg.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "peer.h"
#include "proto.h"

/* ST_FINISHING: closing once what was sent is flushed (pds_conn_finish);
 * nothing more is sent or taken. */
enum conn_state {
    ST_CONNECTING,
    ST_HELLO,
    ST_HEADER,
    ST_OPEN,
    ST_FINISHING,
    ST_CLOSED
};

/* Seal the queued messages once they reach this size. */
#define FLUSH_AT (64u * 1024u)

/* Connections closed at once for PDS_NET_HANDSHAKE_MAX are reported at
 * most this often. */
#define BUSY_REPORT_MS 60000u

struct pds_conn;

struct connect_req {
    uv_getaddrinfo_t gai;
    uv_connect_t connect;
    struct pds_conn *conn;
};

struct pds_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    struct pds_net *net;
    struct pds_conn *next;
    uint64_t id;
    enum conn_state state;
    int is_initiator;
    int n_closing; /* handles still closing */
    int has_notified;
    struct pds_handshake hs;
    struct pds_session session;
    uint8_t peer_pk[PDS_KEY_BYTES];
    uint8_t *my_hello;
    size_t my_hello_len;
    uint8_t *buf;
    size_t len;
    size_t cap;
    size_t delivered; /* bytes of buf up to the frame being delivered */
    uint64_t last_rx;
    uint64_t started;    /* uv_now() when it was made */
    int is_counted;      /* in net->n_handshaking: accepted, not yet claimed */
    int is_held;         /* an administrator's request runs (pds_conn_hold) */
    uint64_t held_until; /* uv_now() past which the hold no longer counts */
    uint64_t finish_at;  /* uv_now() when pds_conn_finish() began */
    struct connect_req *resolving; /* name resolution in flight */
    /* Messages waiting to be sealed together as one frame: each is a
     * 4-byte length and its msgpack body. */
    uint8_t *out;
    size_t out_len;
    size_t out_cap;
    void *data;
    char address[80];
    char error[PDS_ERRMSG_SIZE];
};

struct pds_net {
    uv_loop_t *loop;
    struct pds_net_config config;
    struct pds_net_callbacks cb;
    void *arg;
    uv_tcp_t listener;
    uv_check_t flush_check;
    /* Started when a message is queued outside the I/O phase (timers,
     * commits in the check phase): an active idle handle makes the loop
     * come round at once and flush it, instead of after the next poll. */
    uv_idle_t flush_idle;
    int n_closing;
    int is_listening;
    int is_closing;
    struct pds_conn *conns;
    uint64_t next_id;
    uint8_t group[PDS_GROUP_ID_BYTES];
    int has_group;
    pds_epoch epoch; /* this node's, in every message it sends */
    /* Accepted connections not yet claimed: in the handshake, or through
     * it but not joined nor administered (PDS_NET_HANDSHAKE_MAX),
     * and those closed at once for it since the last report. */
    unsigned n_handshaking;
    uint64_t n_busy;
    uint64_t busy_reported_at;
    int has_busy_reported;
};

/* ---- Messages --------------------------------------------------------- */

static const char *const type_names[] = {
    NULL,     "hello",    "refuse",       "join",  "welcome",
    "ping",   "pong",     "leave",        "admin", "admin-reply",
    "sync",   "entries",  "ack",          "write", "write-ack",
    "notice", "snapshot", "snapshot-ack", "role"};

void pds_msg_free(struct pds_msg *m)
{
    free(m->blob);
    m->blob = NULL;
    free(m->clamps);
    m->clamps = NULL;
    sodium_memzero(m->pw, sizeof(m->pw));
}

static void
pack_bin(msgpack_packer *pk, const char *key, const uint8_t *b, size_t n)
{
    pds__mp_pack_cstr(pk, key);
    msgpack_pack_bin(pk, n);
    msgpack_pack_bin_body(pk, b, n);
}

static void pack_u64(msgpack_packer *pk, const char *key, uint64_t v)
{
    pds__mp_pack_cstr(pk, key);
    msgpack_pack_uint64(pk, v);
}

static void pack_text(msgpack_packer *pk, const char *key, const char *s)
{
    pds__mp_pack_cstr(pk, key);
    pds__mp_pack_cstr(pk, s);
}

/* pds_msg_encode() with the sender's epoch given apart (the node's, at
 * send time, without copying the message). */
static int msg_encode(const struct pds_msg *m,
                      uint64_t sender_epoch,
                      uint8_t **out,
                      size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t n = 1;

    if ((int)m->type < PDS_MSG_HELLO || (int)m->type > PDS_MSG_LAST)
        return PDS_EINVAL;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    switch (m->type) {
    case PDS_MSG_HELLO:
        n += 4 + (m->has_group ? 1 : 0);
        break;
    case PDS_MSG_REFUSE:
        n += 2;
        break;
    case PDS_MSG_JOIN:
        n += 4 + (m->has_proof ? 1 : 0);
        break;
    case PDS_MSG_WELCOME:
        n += 2 + (m->has_proof ? 1 : 0);
        break;
    case PDS_MSG_ADMIN:
        n += 2;
        break;
    case PDS_MSG_ADMIN_REPLY:
        n += 1;
        break;
    case PDS_MSG_SYNC:
        n += 5;
        break;
    case PDS_MSG_ENTRIES:
        n += 4 + (m->clamps_len > 0 ? 1 : 0);
        break;
    case PDS_MSG_ACK:
        n += 1;
        break;
    case PDS_MSG_WRITE:
        n += 8 + (m->is_upload ? 1 : 0) + (m->is_queued ? 1 : 0);
        break;
    case PDS_MSG_WRITE_ACK:
        n += 6;
        break;
    case PDS_MSG_SNAPSHOT:
        n += 5;
        break;
    case PDS_MSG_SNAP_ACK:
        n += 1;
        break;
    case PDS_MSG_NOTICE:
        n += 2;
        break;
    case PDS_MSG_ROLE:
        n += 1;
        break;
    default:
        break;
    }
    if (m->type != PDS_MSG_HELLO)
        n++; /* "se" */
    msgpack_pack_map(&pk, n);
    pack_text(&pk, "t", type_names[m->type]);
    if (m->type != PDS_MSG_HELLO)
        pack_u64(&pk, "se", sender_epoch);
    switch (m->type) {
    case PDS_MSG_HELLO:
        pds__mp_pack_cstr(&pk, "v");
        msgpack_pack_uint32(&pk, m->version);
        pack_bin(&pk, "pk", m->pk, PDS_KEY_BYTES);
        pack_bin(&pk, "epk", m->epk, PDS_KEY_BYTES);
        pds__mp_pack_cstr(&pk, "aead");
        msgpack_pack_uint32(&pk, m->aead);
        if (m->has_group)
            pack_bin(&pk, "group", m->group, PDS_GROUP_ID_BYTES);
        break;
    case PDS_MSG_REFUSE:
        pds__mp_pack_cstr(&pk, "code");
        msgpack_pack_int32(&pk, m->code);
        pack_text(&pk, "err", m->err);
        break;
    case PDS_MSG_JOIN:
        pack_text(&pk, "name", m->name);
        pack_text(&pk, "product", m->product);
        pack_text(&pk, "location", m->location);
        pack_text(&pk, "sw", m->version_text);
        if (m->has_proof)
            pack_bin(&pk, "proof", m->proof, PDS_PROOF_BYTES);
        break;
    case PDS_MSG_WELCOME:
        pack_bin(&pk, "group", m->group, PDS_GROUP_ID_BYTES);
        pds__mp_pack_cstr(&pk, "id");
        msgpack_pack_uint64(&pk, m->member_id);
        if (m->has_proof)
            pack_bin(&pk, "proof", m->proof, PDS_PROOF_BYTES);
        break;
    case PDS_MSG_ADMIN:
        pack_bin(&pk, "pw", m->pw, m->pw_len);
        pack_bin(&pk, "req", m->blob, m->blob_len);
        break;
    case PDS_MSG_ADMIN_REPLY:
        pack_bin(&pk, "rep", m->blob, m->blob_len);
        break;
    case PDS_MSG_SYNC:
        pack_u64(&pk, "i", m->index);
        pack_u64(&pk, "e", m->epoch);
        pack_u64(&pk, "h", (uint64_t)m->is_fresh);
        pack_u64(&pk, "vh", m->hlc);
        pack_u64(&pk, "vn", m->node);
        break;
    case PDS_MSG_ENTRIES:
        pack_u64(&pk, "i", m->index);
        pack_u64(&pk, "l", m->last_index);
        pack_u64(&pk, "w", m->window_end);
        pack_bin(&pk, "b", m->blob, m->blob_len);
        if (m->clamps_len > 0)
            pack_bin(&pk, "c", m->clamps, m->clamps_len);
        break;
    case PDS_MSG_ACK:
        pack_u64(&pk, "i", m->index);
        break;
    case PDS_MSG_WRITE:
        pack_u64(&pk, "r", m->rid);
        pack_u64(&pk, "o", (uint64_t)m->op);
        pack_u64(&pk, "s", (uint64_t)m->scope);
        pack_text(&pk, "ow", m->owner);
        pack_text(&pk, "it", m->item);
        pack_bin(&pk, "b", m->blob, m->blob_len);
        pack_u64(&pk, "vh", m->hlc);
        pack_u64(&pk, "vn", m->node);
        if (m->is_upload)
            pack_u64(&pk, "up", 1);
        if (m->is_queued)
            pack_u64(&pk, "q", 1);
        break;
    case PDS_MSG_SNAP_ACK:
        pack_u64(&pk, "r", m->rid);
        break;
    case PDS_MSG_SNAPSHOT:
        pack_u64(&pk, "i", m->index);
        pack_u64(&pk, "e", m->epoch);
        pack_u64(&pk, "r", m->rid);
        pack_u64(&pk, "z", (uint64_t)m->is_last);
        pack_bin(&pk, "b", m->blob, m->blob_len);
        break;
    case PDS_MSG_WRITE_ACK:
        pack_u64(&pk, "x", (uint64_t)m->outcome);
        pack_u64(&pk, "r", m->rid);
        pds__mp_pack_cstr(&pk, "code");
        msgpack_pack_int32(&pk, m->code);
        pack_text(&pk, "err", m->err);
        pack_u64(&pk, "e", m->epoch);
        pack_u64(&pk, "i", m->index);
        break;
    case PDS_MSG_NOTICE:
        pds__mp_pack_cstr(&pk, "code");
        msgpack_pack_int32(&pk, m->code);
        pack_text(&pk, "err", m->err);
        break;
    case PDS_MSG_ROLE:
        pack_u64(&pk, "sb", (uint64_t)m->is_standby);
        break;
    default:
        break;
    }
    if (sb.data == NULL) {
        msgpack_sbuffer_destroy(&sb);
        return PDS_ENOMEM;
    }
    *out = (uint8_t *)sb.data;
    *len = sb.size;
    return 0;
}

int pds_msg_encode(const struct pds_msg *m, uint8_t **out, size_t *len)
{
    return msg_encode(m, m->sender_epoch, out, len);
}

/* Copy a string field into a fixed buffer; absent is "". */
static int get_text(const msgpack_object *m,
                    const char *key,
                    char *out,
                    size_t size,
                    int required)
{
    const char *s;
    size_t n;

    out[0] = '\0';
    if (pds__mp_get(m, key) == NULL)
        return required ? PDS_EPROTO : 0;
    if (pds__mp_str(m, key, &s, &n) != 0 || n >= size ||
        memchr(s, 0, n) != NULL)
        return PDS_EPROTO;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

static int
get_fixed(const msgpack_object *m, const char *key, uint8_t *out, size_t size)
{
    const uint8_t *b;
    size_t n;

    if (pds__mp_bin(m, key, &b, &n) != 0 || n != size)
        return PDS_EPROTO;
    memcpy(out, b, n);
    return 0;
}

int pds_msg_decode(const uint8_t *buf,
                   size_t len,
                   struct pds_msg *m,
                   char *errmsg)
{
    msgpack_unpacked up;
    const msgpack_object *o;
    const char *t;
    size_t tn;
    size_t off = 0;
    uint64_t u;
    int64_t i64;
    int type = 0;
    int rv = PDS_EPROTO;
    int k;

    memset(m, 0, sizeof(*m));
    msgpack_unpacked_init(&up);
    if (pds__mp_check(buf, len) != 0 ||
        msgpack_unpack_next(&up, (const char *)buf, len, &off) !=
            MSGPACK_UNPACK_SUCCESS ||
        off != len || up.data.type != MSGPACK_OBJECT_MAP) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "message is not a msgpack map");
        goto out;
    }
    o = &up.data;
    if (pds__mp_str(o, "t", &t, &tn) == 0) {
        for (k = PDS_MSG_HELLO; k <= PDS_MSG_LAST; k++) {
            if (strlen(type_names[k]) == tn &&
                memcmp(type_names[k], t, tn) == 0)
                type = k;
        }
    }
    if (type == 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "message has no known type");
        goto out;
    }
    m->type = (enum pds_msg_type)type;
    /* The sender's epoch: in every message of this protocol but the
     * hello; a refusal may come before the handshake, from any version. */
    if (m->type != PDS_MSG_HELLO &&
        pds__mp_uint(o, "se", &m->sender_epoch) != 0 &&
        m->type != PDS_MSG_REFUSE)
        goto bad;
    switch (m->type) {
    case PDS_MSG_HELLO:
        if (pds__mp_uint(o, "v", &u) != 0 || u > UINT32_MAX ||
            get_fixed(o, "pk", m->pk, PDS_KEY_BYTES) != 0 ||
            get_fixed(o, "epk", m->epk, PDS_KEY_BYTES) != 0)
            goto bad;
        m->version = (uint32_t)u;
        /* "aead" is optional: a peer that names no cipher gets
         * ChaCha20-Poly1305. */
        if (pds__mp_get(o, "aead") != NULL) {
            if (pds__mp_uint(o, "aead", &u) != 0 || u > UINT32_MAX)
                goto bad;
            m->aead = (uint32_t)u;
        }
        if (pds__mp_get(o, "group") != NULL) {
            if (get_fixed(o, "group", m->group, PDS_GROUP_ID_BYTES) != 0)
                goto bad;
            m->has_group = 1;
        }
        break;
    case PDS_MSG_REFUSE:
        if (pds__mp_int(o, "code", &i64) != 0 || i64 > 0 || i64 < PDS_EFIRST ||
            get_text(o, "err", m->err, sizeof(m->err), 1) != 0)
            goto bad;
        m->code = (int32_t)i64;
        pds_replace_controls(m->err);
        break;
    case PDS_MSG_JOIN: {
        char *const texts[] = {m->name, m->product, m->location,
                               m->version_text};
        if (get_text(o, "name", m->name, sizeof(m->name), 1) != 0 ||
            get_text(o, "product", m->product, sizeof(m->product), 0) != 0 ||
            get_text(o, "location", m->location, sizeof(m->location), 0) != 0 ||
            get_text(o, "sw", m->version_text, sizeof(m->version_text), 0) != 0)
            goto bad;
        /* They are shown and logged as the node's: printable only. A
         * node enrolled before names were checked may still send control
         * characters in its stored name: shown as '?', not refused (it
         * would retry for ever without being told why). */
        for (k = 0; k < 4; k++)
            pds_replace_controls(texts[k]);
        if (pds__mp_get(o, "proof") != NULL) {
            if (get_fixed(o, "proof", m->proof, PDS_PROOF_BYTES) != 0)
                goto bad;
            m->has_proof = 1;
        }
        break;
    }
    case PDS_MSG_WELCOME:
        if (get_fixed(o, "group", m->group, PDS_GROUP_ID_BYTES) != 0 ||
            pds__mp_uint(o, "id", &m->member_id) != 0)
            goto bad;
        m->has_group = 1;
        if (pds__mp_get(o, "proof") != NULL) {
            if (get_fixed(o, "proof", m->proof, PDS_PROOF_BYTES) != 0)
                goto bad;
            m->has_proof = 1;
        }
        break;
    case PDS_MSG_ADMIN:
    case PDS_MSG_ADMIN_REPLY: {
        const uint8_t *b;
        size_t bn;
        if (m->type == PDS_MSG_ADMIN) {
            if (pds__mp_bin(o, "pw", &b, &bn) != 0 || bn > PDS_SECRET_MAX)
                goto bad;
            memcpy(m->pw, b, bn);
            m->pw_len = bn;
        }
        if (pds__mp_bin(o, m->type == PDS_MSG_ADMIN ? "req" : "rep", &b, &bn) !=
            0)
            goto bad;
        m->blob = malloc(bn + 1);
        if (m->blob == NULL)
            goto bad;
        memcpy(m->blob, b, bn);
        m->blob_len = bn;
        break;
    }
    case PDS_MSG_SYNC:
        if (pds__mp_uint(o, "i", &m->index) != 0 ||
            pds__mp_uint(o, "e", &m->epoch) != 0 ||
            pds__mp_uint(o, "h", &u) != 0 || u > 1 ||
            pds__mp_uint(o, "vh", &m->hlc) != 0 ||
            pds__mp_uint(o, "vn", &m->node) != 0)
            goto bad;
        m->is_fresh = (int)u;
        break;
    case PDS_MSG_ACK:
        if (pds__mp_uint(o, "i", &m->index) != 0)
            goto bad;
        break;
    case PDS_MSG_SNAP_ACK:
        if (pds__mp_uint(o, "r", &m->rid) != 0)
            goto bad;
        break;
    case PDS_MSG_ROLE:
        if (pds__mp_uint(o, "sb", &u) != 0 || u > 1)
            goto bad;
        m->is_standby = (int)u;
        break;
    case PDS_MSG_NOTICE:
    case PDS_MSG_WRITE_ACK:
        if (pds__mp_int(o, "code", &i64) != 0 || i64 > 0 || i64 < PDS_EFIRST ||
            get_text(o, "err", m->err, sizeof(m->err), 1) != 0)
            goto bad;
        m->code = (int32_t)i64;
        pds_replace_controls(m->err);
        if (m->type == PDS_MSG_WRITE_ACK &&
            (pds__mp_uint(o, "r", &m->rid) != 0 ||
             pds__mp_uint(o, "e", &m->epoch) != 0 ||
             pds__mp_uint(o, "i", &m->index) != 0 ||
             pds__mp_uint(o, "x", &u) != 0 || u > PDS_WRITE_CLAMPED))
            goto bad;
        if (m->type == PDS_MSG_WRITE_ACK)
            m->outcome = (int)u; /* NOTICE has none: u is not read */
        break;
    case PDS_MSG_ENTRIES:
    case PDS_MSG_SNAPSHOT:
    case PDS_MSG_WRITE: {
        const uint8_t *b;
        size_t bn;
        if (m->type == PDS_MSG_SNAPSHOT) {
            if (pds__mp_uint(o, "i", &m->index) != 0 ||
                pds__mp_uint(o, "e", &m->epoch) != 0 ||
                pds__mp_uint(o, "r", &m->rid) != 0 ||
                pds__mp_uint(o, "z", &u) != 0 || u > 1)
                goto bad;
            m->is_last = (int)u;
        } else if (m->type == PDS_MSG_ENTRIES) {
            if (pds__mp_uint(o, "i", &m->index) != 0 ||
                pds__mp_uint(o, "l", &m->last_index) != 0)
                goto bad;
            /* Optional: a sender without it waits for each ACK. */
            if (pds__mp_uint(o, "w", &m->window_end) != 0)
                m->window_end = 0;
            /* Optional: the memos of restamped entries. */
            if (pds__mp_get(o, "c") != NULL) {
                if (pds__mp_bin(o, "c", &b, &bn) != 0 || bn == 0 ||
                    bn % PDS_CLAMP_BYTES != 0 ||
                    (m->clamps = malloc(bn)) == NULL)
                    goto bad;
                memcpy(m->clamps, b, bn);
                m->clamps_len = bn;
            }
        } else {
            if (pds__mp_uint(o, "r", &m->rid) != 0 ||
                pds__mp_uint(o, "o", &u) != 0 || u < PDS_OP_PUT ||
                u > PDS_OP_DEL_OWNER)
                goto bad;
            m->op = (int)u;
            if (pds__mp_uint(o, "s", &u) != 0 || u > PDS_SCOPE_GROUP)
                goto bad;
            m->scope = (int)u;
            if (get_text(o, "ow", m->owner, sizeof(m->owner), 1) != 0 ||
                get_text(o, "it", m->item, sizeof(m->item), 1) != 0 ||
                pds__mp_uint(o, "vh", &m->hlc) != 0 ||
                pds__mp_uint(o, "vn", &m->node) != 0)
                goto bad;
            if (pds__mp_uint(o, "up", &u) == 0) {
                if (u > 1)
                    goto bad;
                m->is_upload = (int)u;
            }
            if (pds__mp_uint(o, "q", &u) == 0) {
                if (u > 1)
                    goto bad;
                m->is_queued = (int)u;
            }
        }
        if (pds__mp_bin(o, "b", &b, &bn) != 0)
            goto bad;
        m->blob = malloc(bn + 1);
        if (m->blob == NULL)
            goto bad;
        memcpy(m->blob, b, bn);
        m->blob_len = bn;
        break;
    }
    default:
        break;
    }
    rv = 0;
    goto out;

bad:
    snprintf(errmsg, PDS_ERRMSG_SIZE, "malformed %s message", type_names[type]);
    free(m->clamps);
    m->clamps = NULL;
    m->clamps_len = 0;
out:
    msgpack_unpacked_destroy(&up);
    return rv;
}

/* ---- Connection plumbing --------------------------------------------- */

struct write_req {
    uv_write_t req;
    uint8_t *frame;
};

static void on_written(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;

    (void)status;
    free(w->frame);
    free(w);
}

static void conn_handle_closed(uv_handle_t *h)
{
    struct pds_conn *c = h->data;

    if (--c->n_closing > 0)
        return;
    free(c->buf);
    free(c->out);
    free(c->my_hello);
    pds_session_wipe(&c->session);
    sodium_memzero(&c->hs, sizeof(c->hs));
    free(c);
}

static void unlink_conn(struct pds_conn *c)
{
    struct pds_conn **p = &c->net->conns;

    while (*p != NULL && *p != c)
        p = &(*p)->next;
    if (*p == c)
        *p = c->next;
}

/* The connection left the handshake (open, or closing). */
static void handshake_over(struct pds_conn *c)
{
    if (c->is_counted) {
        c->is_counted = 0;
        c->net->n_handshaking--;
    }
}

void pds_conn_close(struct pds_conn *c, const char *error)
{
    struct pds_net *net = c->net;

    if (c->state == ST_CLOSED)
        return;
    c->state = ST_CLOSED;
    handshake_over(c);
    unlink_conn(c);
    if (c->resolving != NULL) {
        /* The resolver's callback may come after c is freed: detach. */
        c->resolving->conn = NULL;
        uv_cancel((uv_req_t *)&c->resolving->gai);
        c->resolving = NULL;
    }
    if (!c->has_notified) {
        c->has_notified = 1;
        net->cb.on_close(net->arg, c, error);
    }
    c->n_closing = 2;
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

static int conn_flush(struct pds_conn *c);

/* Why a connection being finished ends (pds_conn_finish's why), or NULL. */
static const char *finish_reason(const struct pds_conn *c)
{
    return c->error[0] != '\0' ? c->error : NULL;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct pds_conn *c = req->data;

    (void)status;
    free(req);
    pds_conn_close(c, finish_reason(c));
}

void pds_conn_finish(struct pds_conn *c, const char *why)
{
    uv_shutdown_t *req;

    if (c->state == ST_CLOSED || c->state == ST_FINISHING)
        return;
    if (why != NULL)
        snprintf(c->error, sizeof(c->error), "%s", why);
    conn_flush(c);
    c->state = ST_FINISHING;
    c->finish_at = uv_now(c->net->loop);
    req = malloc(sizeof(*req));
    if (req == NULL) {
        pds_conn_close(c, why);
        return;
    }
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(req);
        pds_conn_close(c, why);
    }
}

static void conn_fail(struct pds_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void conn_fail(struct pds_conn *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->error, sizeof(c->error), fmt, ap);
    va_end(ap);
    pds_conn_close(c, c->error);
}

/* Queue one frame: 4-byte big-endian length, then body (copied). */
static int send_frame(struct pds_conn *c, const uint8_t *body, size_t len)
{
    struct write_req *w;
    uv_buf_t buf;

    if (c->state == ST_CLOSED)
        return PDS_ECONN;
    w = malloc(sizeof(*w));
    if (w == NULL)
        return PDS_ENOMEM;
    w->frame = malloc(len + 4);
    if (w->frame == NULL) {
        free(w);
        return PDS_ENOMEM;
    }
    pds_put_u32be(w->frame, (uint32_t)len);
    memcpy(w->frame + 4, body, len);
    buf = uv_buf_init((char *)w->frame, (unsigned int)(len + 4));
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written) != 0) {
        free(w->frame);
        free(w);
        return PDS_ECONN;
    }
    return 0;
}

static int send_plain(struct pds_conn *c, const struct pds_msg *m)
{
    uint8_t *body;
    size_t len;
    int rv = pds_msg_encode(m, &body, &len);

    if (rv != 0)
        return rv;
    rv = send_frame(c, body, len);
    free(body);
    return rv;
}

/*
 * Seal every queued message as one frame. Messages sent during a loop turn
 * travel together: one encryption and one write per batch, which is what
 * makes the encrypted link nearly as fast as plain TCP.
 */
static int conn_flush(struct pds_conn *c)
{
    uint8_t *sealed;
    int rv;

    if (c->out_len == 0 || c->state != ST_OPEN)
        return 0;
    sealed = malloc(c->out_len + PDS_STREAM_ABYTES);
    if (sealed == NULL)
        return PDS_ENOMEM;
    pds_session_seal(&c->session, c->out, c->out_len, sealed);
    rv = send_frame(c, sealed, c->out_len + PDS_STREAM_ABYTES);
    free(sealed);
    c->out_len = 0;
    if (c->out_cap > 4 * FLUSH_AT) {
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }
    return rv;
}

static void flush_all(struct pds_net *net)
{
    struct pds_conn *c;
    struct pds_conn *next;

    for (c = net->conns; c != NULL; c = next) {
        next = c->next;
        if (c->out_len > 0 && conn_flush(c) != 0)
            pds_conn_close(c, "cannot send");
    }
}

static void on_flush_check(uv_check_t *h)
{
    flush_all(h->data);
}

static void on_flush_idle(uv_idle_t *h)
{
    uv_idle_stop(h);
    flush_all(h->data);
}

size_t pds_conn_pending(struct pds_conn *c)
{
    uv_os_fd_t fd;
    int n = 0;
    size_t in_buf = c->len > c->delivered ? c->len - c->delivered : 0;

    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 ||
        ioctl(fd, FIONREAD, &n) != 0 || n < 0)
        n = 0;
    return in_buf + (size_t)n;
}

size_t pds_conn_queued(struct pds_conn *c)
{
    return uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) + c->out_len;
}

int pds_conn_flush(struct pds_conn *c)
{
    if (c->state != ST_OPEN || c->out_len == 0)
        return 0;
    return conn_flush(c);
}

int pds_conn_send(struct pds_conn *c, const struct pds_msg *m)
{
    uint8_t *body;
    size_t len;
    int rv;

    if (c->state != ST_OPEN)
        return PDS_ECONN;
    /* Every message carries this node's epoch. */
    rv = msg_encode(m, c->net->epoch, &body, &len);
    if (rv != 0)
        return rv;
    if (c->out_len + 4 + len + PDS_STREAM_ABYTES > c->net->config.max_frame &&
        c->out_len > 0) {
        rv = conn_flush(c);
        if (rv != 0) {
            free(body);
            return rv;
        }
    }
    if (c->out_len + 4 + len > c->out_cap) {
        size_t cap = c->out_cap == 0 ? 4096 : c->out_cap;
        uint8_t *p;
        while (cap < c->out_len + 4 + len)
            cap *= 2;
        p = realloc(c->out, cap);
        if (p == NULL) {
            free(body);
            return PDS_ENOMEM;
        }
        c->out = p;
        c->out_cap = cap;
    }
    pds_put_u32be(c->out + c->out_len, (uint32_t)len);
    memcpy(c->out + c->out_len + 4, body, len);
    c->out_len += 4 + len;
    free(body);
    if (c->out_len >= FLUSH_AT)
        return conn_flush(c);
    if (!uv_is_active((uv_handle_t *)&c->net->flush_idle))
        uv_idle_start(&c->net->flush_idle, on_flush_idle);
    return 0;
}

void pds_conn_refuse(struct pds_conn *c, int code, const char *err)
{
    struct pds_msg m;

    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_REFUSE;
    m.code = code;
    snprintf(m.err, sizeof(m.err), "%s", err);
    if (c->state == ST_OPEN) {
        pds_conn_send(c, &m);
        conn_flush(c);
    } else if (c->state != ST_CLOSED && c->state != ST_FINISHING) {
        send_plain(c, &m);
    }
    snprintf(c->error, sizeof(c->error), "refused: %s", err);
    pds_conn_close(c, c->error);
}

/* Refuse during the handshake: the reason goes to the peer and, through
 * on_close, to this node's log. */
static void refuse_handshake(struct pds_conn *c, int code, const char *why)
{
    struct pds_msg m;

    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_REFUSE;
    m.code = code;
    snprintf(m.err, sizeof(m.err), "%s", why);
    send_plain(c, &m);
    snprintf(c->error, sizeof(c->error), "handshake refused: %s", why);
    pds_conn_close(c, c->error);
}

/* The peer refused the connection: close it with its reason. */
static void close_refused(struct pds_conn *c, const struct pds_msg *m)
{
    snprintf(c->error, sizeof(c->error), "refused by %s: %s", c->address,
             m->err);
    pds_conn_close(c, c->error);
}

static int send_hello(struct pds_conn *c)
{
    struct pds_net *net = c->net;
    struct pds_msg m;
    int rv;

    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_HELLO;
    m.version = PDS_PROTOCOL_VERSION;
    /* A hidden knob for the tests of a version mismatch. */
    if (getenv("PDSYNC_DEBUG_PROTOCOL") != NULL)
        m.version = (uint32_t)atoi(getenv("PDSYNC_DEBUG_PROTOCOL"));
    memcpy(m.pk, net->config.id->pk, PDS_KEY_BYTES);
    memcpy(m.epk, c->hs.e_pk, PDS_KEY_BYTES);
    m.aead = c->hs.aead;
    if (net->has_group) {
        memcpy(m.group, net->group, PDS_GROUP_ID_BYTES);
        m.has_group = 1;
    }
    rv = pds_msg_encode(&m, &c->my_hello, &c->my_hello_len);
    if (rv != 0)
        return rv;
    return send_frame(c, c->my_hello, c->my_hello_len);
}

/* A hello arrived: check it, answer, derive the keys. */
static void on_hello(struct pds_conn *c, const uint8_t *body, size_t len)
{
    struct pds_net *net = c->net;
    char errmsg[PDS_ERRMSG_SIZE];
    char why[PDS_MEMBER_ERROR];
    struct pds_msg m;
    int rv;

    if (pds_msg_decode(body, len, &m, errmsg) != 0) {
        conn_fail(c, "handshake: %s", errmsg);
        return;
    }
    if (m.type == PDS_MSG_REFUSE) {
        close_refused(c, &m);
        return;
    }
    if (m.type != PDS_MSG_HELLO) {
        pds_msg_free(&m);
        conn_fail(c, "handshake: expected hello, got %s", type_names[m.type]);
        return;
    }
    if (m.version != PDS_PROTOCOL_VERSION) {
        int peer_newer = m.version > PDS_PROTOCOL_VERSION;
        snprintf(why, sizeof(why),
                 "%s speaks protocol %u, %s speaks %d: upgrade the %s",
                 c->is_initiator ? "server" : "client", (unsigned)m.version,
                 c->is_initiator ? "client" : "server", PDS_PROTOCOL_VERSION,
                 peer_newer ? (c->is_initiator ? "client" : "server")
                            : (c->is_initiator ? "server" : "client"));
        refuse_handshake(c, PDS_EPROTO, why);
        return;
    }
    if (net->has_group && m.has_group &&
        memcmp(net->group, m.group, PDS_GROUP_ID_BYTES) != 0) {
        refuse_handshake(c, PDS_EPERM, "the nodes belong to different groups");
        return;
    }
    if (sodium_memcmp(m.pk, net->config.id->pk, PDS_KEY_BYTES) == 0) {
        refuse_handshake(c, PDS_EINVAL, "a node cannot connect to itself");
        return;
    }
    memcpy(c->peer_pk, m.pk, PDS_KEY_BYTES);
    if (!c->is_initiator && send_hello(c) != 0) {
        conn_fail(c, "handshake: %s", "cannot send hello");
        return;
    }
    rv = pds_handshake_finish(&c->hs, net->config.id, c->my_hello,
                              c->my_hello_len, body, len, m.pk, m.epk, m.aead,
                              &c->session);
    if (rv != 0) {
        conn_fail(c, "handshake: %s",
                  rv == PDS_EAUTH ? "degenerate key from peer"
                                  : "cannot make the stream's cipher (out of "
                                    "memory, or libcrypto lacks it)");
        return;
    }
    c->state = ST_HEADER;
    if (send_frame(c, c->session.tx_header, PDS_STREAM_HEADER) != 0)
        conn_fail(c, "handshake: %s", "cannot send stream header");
}

static void on_message(struct pds_conn *c, struct pds_msg *mp)
{
    struct pds_net *net = c->net;
    struct pds_msg m = *mp;

    /* A higher epoch than this node's: the application records it. */
    if (m.sender_epoch > net->epoch && net->cb.on_epoch != NULL) {
        uint64_t id = c->id;
        net->cb.on_epoch(net->arg, c, m.sender_epoch);
        if (pds_net_find(net, id) == NULL)
            return; /* closed by it */
    }
    switch (m.type) {
    case PDS_MSG_PING:
        memset(&m, 0, sizeof(m));
        m.type = PDS_MSG_PONG;
        pds_conn_send(c, &m);
        return;
    case PDS_MSG_PONG:
        return;
    case PDS_MSG_REFUSE:
        close_refused(c, &m);
        return;
    case PDS_MSG_HELLO:
        conn_fail(c, "%s", "hello after the handshake");
        return;
    default:
        net->cb.on_message(net->arg, c, mp); /* it may take mp->blob */
    }
}

static void on_frame(struct pds_conn *c, const uint8_t *body, size_t len)
{
    struct pds_net *net = c->net;
    char errmsg[PDS_ERRMSG_SIZE];
    struct pds_msg m;
    uint8_t *plain;
    size_t n;
    size_t off;

    switch (c->state) {
    case ST_HELLO:
        on_hello(c, body, len);
        return;
    case ST_HEADER:
        if (len != PDS_STREAM_HEADER &&
            pds_msg_decode(body, len, &m, errmsg) == 0) {
            /* A plaintext message instead: the peer refused after its
             * hello. Say why. */
            if (m.type == PDS_MSG_REFUSE) {
                close_refused(c, &m);
            } else {
                conn_fail(c, "handshake: expected the stream header, got %s",
                          type_names[m.type]);
            }
            pds_msg_free(&m);
            return;
        }
        if (len != PDS_STREAM_HEADER ||
            pds_session_rx_start(&c->session, body) != 0) {
            conn_fail(c, "handshake: %s",
                      "the stream header failed authentication (modified, "
                      "replayed or encrypted with another key)");
            return;
        }
        /* Counted until the application claims it (a join, or an
         * administrator's request): a key of anyone's making completes
         * the handshake. */
        c->state = ST_OPEN;
        net->cb.on_open(net->arg, c);
        return;
    case ST_OPEN:
        break;
    default:
        return;
    }
    if (len < PDS_STREAM_ABYTES) {
        conn_fail(c, "%s", "frame shorter than its authentication tag");
        return;
    }
    plain = malloc(len);
    if (plain == NULL) {
        conn_fail(c, "%s", "out of memory");
        return;
    }
    if (pds_session_open(&c->session, body, len, plain, &n) != 0) {
        free(plain);
        conn_fail(c, "%s",
                  "a frame failed authentication (modified, replayed, "
                  "reordered or encrypted with another key)");
        return;
    }
    /* The frame holds one or more messages, each length-prefixed. */
    off = 0;
    while (c->state == ST_OPEN && off < n) {
        size_t mlen;
        if (n - off < 4) {
            conn_fail(c, "%s", "malformed frame: truncated message length");
            break;
        }
        mlen = pds_get_u32be(plain + off);
        off += 4;
        if (mlen > n - off) {
            conn_fail(c, "%s", "malformed frame: message longer than frame");
            break;
        }
        if (pds_msg_decode(plain + off, mlen, &m, errmsg) != 0) {
            conn_fail(c, "malformed message: %s", errmsg);
            break;
        }
        off += mlen;
        on_message(c, &m);
        pds_msg_free(&m);
    }
    free(plain);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct pds_conn *c = h->data;
    size_t want = c->len + 65536;

    (void)hint;
    if (c->cap < want) {
        uint8_t *p = realloc(c->buf, want);
        if (p == NULL) {
            *buf = uv_buf_init(NULL, 0);
            return;
        }
        c->buf = p;
        c->cap = want;
    }
    *buf =
        uv_buf_init((char *)c->buf + c->len, (unsigned int)(c->cap - c->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct pds_conn *c = s->data;
    size_t off = 0;

    (void)buf;
    if (nread == 0)
        return;
    if (c->state == ST_FINISHING) {
        /* Nothing more is taken; the peer's end ends it too. */
        if (nread < 0)
            pds_conn_close(c, finish_reason(c));
        return;
    }
    if (nread < 0) {
        if (nread == UV_EOF)
            conn_fail(c, "%s",
                      c->state == ST_OPEN ? "peer closed the connection"
                                          : "peer closed the connection during "
                                            "the handshake");
        else
            conn_fail(c, "read: %s", uv_strerror((int)nread));
        return;
    }
    c->len += (size_t)nread;
    c->last_rx = uv_now(c->net->loop);
    while (c->state != ST_CLOSED && c->len - off >= 4) {
        const uint8_t *p = c->buf + off;
        size_t flen = pds_get_u32be(p);
        if (flen == 0 || flen > c->net->config.max_frame) {
            char what[64];
            snprintf(what, sizeof(what), "%zu", flen);
            conn_fail(c, "frame of %s bytes is over the limit", what);
            return;
        }
        /* Before the handshake completes only small frames are taken:
         * nobody unauthenticated makes this node hold max_frame bytes. */
        if (c->state != ST_OPEN && flen > PDS_NET_HANDSHAKE_FRAME) {
            conn_fail(c,
                      "handshake: malformed frame of %zu bytes (at most %u "
                      "before the handshake completes)",
                      flen, PDS_NET_HANDSHAKE_FRAME);
            return;
        }
        if (c->len - off - 4 < flen)
            break;
        off += 4 + flen;
        c->delivered = off;
        on_frame(c, p + 4, flen);
    }
    c->delivered = 0;
    if (c->state != ST_CLOSED && off > 0) {
        memmove(c->buf, c->buf + off, c->len - off);
        c->len -= off;
    }
}

/* A deadline for a message: "10 s", or "300 ms" when not whole seconds. */
static const char *duration_text(uint32_t ms, char *buf, size_t size)
{
    if (ms % 1000 == 0)
        snprintf(buf, size, "%u s", (unsigned)(ms / 1000));
    else
        snprintf(buf, size, "%u ms", (unsigned)ms);
    return buf;
}

static void on_tick(uv_timer_t *t)
{
    struct pds_conn *c = t->data;
    uint64_t now = uv_now(c->net->loop);
    struct pds_msg m;

    if (c->state == ST_FINISHING) {
        /* A peer that does not read would keep it open forever. */
        if (now - c->finish_at > c->net->config.dead_ms)
            pds_conn_close(c, finish_reason(c));
        return;
    }
    if (c->is_held && now > c->held_until)
        c->is_held = 0; /* its request never answered: the usual rules */
    if (now - c->last_rx > c->net->config.dead_ms && !c->is_held) {
        char what[32];
        snprintf(what, sizeof(what), "%llu",
                 (unsigned long long)(now - c->last_rx));
        conn_fail(c, "peer silent for %s ms: connection presumed dead", what);
        return;
    }
    if (c->state < ST_OPEN && now - c->started > c->net->config.handshake_ms) {
        /* Bytes waiting in the socket (not yet read: the loop was held
         * up) may complete it: they get until twice the deadline. */
        uint32_t ms = c->net->config.handshake_ms;
        uv_os_fd_t fd;
        int waiting = 0;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 ||
            ioctl(fd, FIONREAD, &waiting) != 0)
            waiting = 0;
        if (waiting <= 0 || now - c->started > 2ull * ms) {
            char what[32];
            conn_fail(c, "handshake not completed within %s",
                      duration_text(ms, what, sizeof(what)));
            return;
        }
    }
    if (c->state == ST_OPEN && !c->is_initiator && c->data == NULL &&
        !c->is_held && now - c->started > c->net->config.claim_ms) {
        char what[32];
        conn_fail(c, "neither joined nor administered within %s",
                  duration_text(c->net->config.claim_ms, what, sizeof(what)));
        return;
    }
    if (c->state == ST_OPEN) {
        memset(&m, 0, sizeof(m));
        m.type = PDS_MSG_PING;
        pds_conn_send(c, &m);
    }
}

static struct pds_conn *conn_new(struct pds_net *net, int is_initiator)
{
    struct pds_conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->net = net;
    c->id = ++net->next_id;
    c->is_initiator = is_initiator;
    c->state = is_initiator ? ST_CONNECTING : ST_HELLO;
    pds_handshake_init(&c->hs, is_initiator);
    uv_tcp_init(net->loop, &c->tcp);
    uv_timer_init(net->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->last_rx = uv_now(net->loop);
    c->started = c->last_rx;
    c->next = net->conns;
    net->conns = c;
    uv_timer_start(&c->timer, on_tick, net->config.heartbeat_ms,
                   net->config.heartbeat_ms);
    return c;
}

static void peer_name(struct pds_conn *c)
{
    struct sockaddr_storage ss;
    int n = sizeof(ss);
    char host[64] = "?";

    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &n) != 0)
        return;
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, host, sizeof(host));
        snprintf(c->address, sizeof(c->address), "[%s]:%u", host,
                 (unsigned)ntohs(a->sin6_port));
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        uv_ip4_name(a, host, sizeof(host));
        snprintf(c->address, sizeof(c->address), "%s:%u", host,
                 (unsigned)ntohs(a->sin_port));
    }
}

static void on_busy_closed(uv_handle_t *h)
{
    free(h);
}

/*
 * PDS_NET_HANDSHAKE_MAX connections are unclaimed: accept the next
 * one, tell it why in a plaintext REFUSE and close it at once. One such
 * close a minute goes through on_close (for the log), with how many more
 * there were; the others are not reported.
 */
static void refuse_busy(struct pds_net *net, uv_stream_t *listener)
{
    static const char why[] = "the node is busy: too many connections are "
                              "not yet joined; try again later";
    uint64_t now = uv_now(net->loop);
    uint64_t n_more = net->n_busy;
    struct pds_msg m;
    struct pds_conn *c;
    uv_tcp_t *t;
    uint8_t *body;
    size_t len;

    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_REFUSE;
    m.code = PDS_ELIMIT;
    snprintf(m.err, sizeof(m.err), "%s", why);
    if (!net->has_busy_reported ||
        now - net->busy_reported_at >= BUSY_REPORT_MS) {
        c = conn_new(net, 0);
        if (c != NULL) {
            net->n_busy = 0;
            net->busy_reported_at = now;
            net->has_busy_reported = 1;
            if (uv_accept(listener, (uv_stream_t *)&c->tcp) == 0) {
                peer_name(c);
                send_plain(c, &m);
            }
            if (n_more > 0)
                conn_fail(c,
                          "closed at once: %u connections have not joined "
                          "yet (the limit); %llu more were closed the same "
                          "way since the last such warning",
                          PDS_NET_HANDSHAKE_MAX, (unsigned long long)n_more);
            else
                conn_fail(c,
                          "closed at once: %u connections have not joined "
                          "yet (the limit)",
                          PDS_NET_HANDSHAKE_MAX);
            return;
        }
    }
    net->n_busy++;
    /* Not reported: a bare handle, no keys made, nothing kept. */
    t = malloc(sizeof(*t));
    if (t == NULL)
        return;
    uv_tcp_init(net->loop, t);
    if (uv_accept(listener, (uv_stream_t *)t) == 0 &&
        pds_msg_encode(&m, &body, &len) == 0) {
        uint8_t frame[4 + PDS_MEMBER_ERROR + 64];
        if (len <= sizeof(frame) - 4) {
            uv_buf_t buf;
            pds_put_u32be(frame, (uint32_t)len);
            memcpy(frame + 4, body, len);
            buf = uv_buf_init((char *)frame, (unsigned int)(len + 4));
            uv_try_write((uv_stream_t *)t, &buf, 1);
        }
        free(body);
    }
    uv_close((uv_handle_t *)t, on_busy_closed);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct pds_net *net = listener->data;
    struct pds_conn *c;

    if (status < 0)
        return;
    if (net->n_handshaking >= PDS_NET_HANDSHAKE_MAX) {
        refuse_busy(net, listener);
        return;
    }
    c = conn_new(net, 0);
    if (c == NULL)
        return;
    c->is_counted = 1;
    net->n_handshaking++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_fail(c, "%s", "accept failed");
        return;
    }
    /* Small frames (handshake, heartbeats, acks) must not wait for
     * Nagle's algorithm; batching is done above TCP. */
    uv_tcp_nodelay(&c->tcp, 1);
    peer_name(c);
}

/* ---- Outbound --------------------------------------------------------- */

static void on_connected(uv_connect_t *req, int status)
{
    struct connect_req *cr = req->data;
    struct pds_conn *c = cr->conn;

    free(cr);
    if (c->state == ST_CLOSED)
        return;
    if (status < 0) {
        conn_fail(c, "connect: %s", uv_strerror(status));
        return;
    }
    c->state = ST_HELLO;
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0 ||
        send_hello(c) != 0)
        conn_fail(c, "%s", "cannot start the handshake");
}

static void on_resolved(uv_getaddrinfo_t *gai, int status, struct addrinfo *res)
{
    struct connect_req *cr = gai->data;
    struct pds_conn *c = cr->conn;
    int rv;

    if (c == NULL) {
        uv_freeaddrinfo(res);
        free(cr);
        return;
    }
    c->resolving = NULL;
    if (c->state == ST_CLOSED) {
        uv_freeaddrinfo(res);
        free(cr);
        return;
    }
    if (status < 0 || res == NULL) {
        uv_freeaddrinfo(res);
        free(cr);
        conn_fail(c, "resolve: %s", uv_strerror(status));
        return;
    }
    cr->connect.data = cr;
    rv = uv_tcp_connect(&cr->connect, &c->tcp, res->ai_addr, on_connected);
    uv_freeaddrinfo(res);
    if (rv != 0) {
        free(cr);
        conn_fail(c, "connect: %s", uv_strerror(rv));
    }
}

int pds_net_split(const char *host_port,
                  char *host,
                  size_t host_size,
                  char *port,
                  size_t port_size)
{
    const char *colon;
    const char *h = host_port;
    size_t hn;

    if (host_port[0] == '[') {
        const char *close = strchr(host_port, ']');
        if (close == NULL || close[1] != ':')
            return PDS_EINVAL;
        h = host_port + 1;
        hn = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(host_port, ':');
        if (colon == NULL)
            return PDS_EINVAL;
        hn = (size_t)(colon - host_port);
    }
    if (hn >= host_size || strlen(colon + 1) >= port_size || colon[1] == '\0' ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
        atoi(colon + 1) > 65535)
        return PDS_EINVAL;
    memcpy(host, h, hn);
    host[hn] = '\0';
    strcpy(port, colon + 1);
    return 0;
}

int pds_net_connect(struct pds_net *net,
                    const char *host_port,
                    uint64_t *conn_id,
                    char *errmsg)
{
    struct addrinfo hints;
    struct connect_req *cr;
    struct pds_conn *c;
    char host[256];
    char port[8];
    int rv;

    if (pds_net_split(host_port, host, sizeof(host), port, sizeof(port)) != 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "'%s' is not HOST:PORT (use [ADDRESS]:PORT for IPv6)",
                 host_port);
        return PDS_EINVAL;
    }
    cr = calloc(1, sizeof(*cr));
    if (cr == NULL)
        return PDS_ENOMEM;
    c = conn_new(net, 1);
    if (c == NULL) {
        free(cr);
        return PDS_ENOMEM;
    }
    snprintf(c->address, sizeof(c->address), "%s", host_port);
    *conn_id = c->id;
    cr->conn = c;
    cr->gai.data = cr;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    c->resolving = cr;
    rv = uv_getaddrinfo(net->loop, &cr->gai, on_resolved,
                        host[0] != '\0' ? host : NULL, port, &hints);
    if (rv != 0) {
        c->resolving = NULL;
        free(cr);
        conn_fail(c, "resolve: %s", uv_strerror(rv));
    }
    return 0;
}

/* ---- The net object --------------------------------------------------- */

int pds_net_new(uv_loop_t *loop,
                const struct pds_net_config *config,
                const struct pds_net_callbacks *cb,
                void *arg,
                struct pds_net **out)
{
    struct pds_net *net = calloc(1, sizeof(*net));

    if (net == NULL)
        return PDS_ENOMEM;
    net->loop = loop;
    net->config = *config;
    if (net->config.heartbeat_ms == 0)
        net->config.heartbeat_ms = 1000;
    if (net->config.dead_ms == 0)
        net->config.dead_ms = 3 * net->config.heartbeat_ms;
    if (net->config.max_frame == 0)
        net->config.max_frame = PDS_NET_FRAME_MAX;
    if (net->config.handshake_ms == 0) {
        /* A hidden knob for the tests of the deadline. */
        const char *s = getenv("PDSYNC_DEBUG_HANDSHAKE_MS");
        net->config.handshake_ms =
            s != NULL && atoi(s) > 0 ? (uint32_t)atoi(s) : PDS_NET_HANDSHAKE_MS;
    }
    if (net->config.claim_ms == 0)
        net->config.claim_ms = PDS_NET_CLAIM_MS;
    net->cb = *cb;
    net->arg = arg;
    uv_tcp_init(loop, &net->listener);
    net->listener.data = net;
    uv_check_init(loop, &net->flush_check);
    net->flush_check.data = net;
    uv_check_start(&net->flush_check, on_flush_check);
    uv_idle_init(loop, &net->flush_idle);
    net->flush_idle.data = net;
    *out = net;
    return 0;
}

/* The listener and the check handle live in net: free it after both. */
static void on_net_handle_closed(uv_handle_t *h)
{
    struct pds_net *net = h->data;

    if (--net->n_closing == 0)
        free(net);
}

void pds_net_close_all(struct pds_net *net, const char *why)
{
    while (net->conns != NULL)
        pds_conn_close(net->conns, why);
}

void pds_net_close(struct pds_net *net)
{
    net->is_closing = 1;
    pds_net_close_all(net, NULL);
    net->n_closing = 3;
    uv_close((uv_handle_t *)&net->flush_idle, on_net_handle_closed);
    uv_close((uv_handle_t *)&net->flush_check, on_net_handle_closed);
    uv_close((uv_handle_t *)&net->listener, on_net_handle_closed);
}

void pds_net_set_epoch(struct pds_net *net, pds_epoch epoch)
{
    net->epoch = epoch;
}

void pds_net_set_group(struct pds_net *net, const uint8_t *group)
{
    if (group == NULL) {
        net->has_group = 0;
        return;
    }
    memcpy(net->group, group, PDS_GROUP_ID_BYTES);
    net->has_group = 1;
}

int pds_net_listen(struct pds_net *net,
                   const char *host_port,
                   char *bound,
                   char *errmsg)
{
    struct sockaddr_storage ss;
    char host[64];
    char port[8];
    int n = sizeof(ss);
    int rv;

    if (pds_net_split(host_port, host, sizeof(host), port, sizeof(port)) != 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "--listen '%s' is not HOST:PORT (use [ADDRESS]:PORT for "
                 "IPv6, :0 for any free port)",
                 host_port);
        return PDS_EINVAL;
    }
    if (host[0] == '\0')
        strcpy(host, "0.0.0.0");
    if (strchr(host, ':') != NULL)
        rv = uv_ip6_addr(host, atoi(port), (struct sockaddr_in6 *)&ss);
    else
        rv = uv_ip4_addr(host, atoi(port), (struct sockaddr_in *)&ss);
    if (rv != 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "--listen '%s': '%s' is not an IP address", host_port, host);
        return PDS_EINVAL;
    }
    rv = uv_tcp_bind(&net->listener, (struct sockaddr *)&ss, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&net->listener, 64, on_connection);
    if (rv != 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "listen on %s: %s%s", host_port,
                 uv_strerror(rv),
                 rv == UV_EADDRINUSE
                     ? ": another program uses the port; choose another "
                       "with --listen"
                     : "");
        return rv == UV_EADDRINUSE ? PDS_EBUSY : PDS_EIO;
    }
    net->is_listening = 1;
    uv_tcp_getsockname(&net->listener, (struct sockaddr *)&ss, &n);
    if (ss.ss_family == AF_INET6) {
        char name[64];
        uv_ip6_name((struct sockaddr_in6 *)&ss, name, sizeof(name));
        snprintf(bound, 64, "[%s]:%u", name,
                 (unsigned)ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
    } else {
        char name[64];
        uv_ip4_name((struct sockaddr_in *)&ss, name, sizeof(name));
        snprintf(bound, 64, "%s:%u", name,
                 (unsigned)ntohs(((struct sockaddr_in *)&ss)->sin_port));
    }
    return 0;
}

const uint8_t *pds_conn_peer_pk(const struct pds_conn *c)
{
    return c->peer_pk;
}

const uint8_t *pds_conn_hash(const struct pds_conn *c)
{
    return c->hs.hash;
}

int pds_conn_is_initiator(const struct pds_conn *c)
{
    return c->is_initiator;
}

const char *pds_conn_address(const struct pds_conn *c)
{
    return c->address;
}

const char *pds_conn_cipher(const struct pds_conn *c)
{
    return c->state == ST_OPEN || c->state == ST_FINISHING
               ? pds_session_cipher(&c->session)
               : "";
}

uint64_t pds_conn_id(const struct pds_conn *c)
{
    return c->id;
}

void pds_conn_set_data(struct pds_conn *c, void *data)
{
    c->data = data;
    if (data != NULL)
        handshake_over(c); /* claimed */
}

void pds_conn_hold(struct pds_conn *c, uint32_t ms)
{
    uint64_t now = uv_now(c->net->loop);

    if (ms > 0) {
        c->is_held = 1;
        c->held_until = now + ms;
        handshake_over(c); /* claimed */
    } else if (c->is_held) {
        /* Answered: the deadlines count from now. */
        c->is_held = 0;
        c->last_rx = now;
        c->started = now;
    }
}

void *pds_conn_data(const struct pds_conn *c)
{
    return c->data;
}

struct pds_conn *pds_net_find(struct pds_net *net, uint64_t id)
{
    struct pds_conn *c;

    for (c = net->conns; c != NULL; c = c->next) {
        if (c->id == id)
            return c;
    }
    return NULL;
}
