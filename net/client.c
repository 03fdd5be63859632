/*
 * client.c - the blocking client library of the local API.
 *
 * One request at a time per client: encode, send, read one reply frame,
 * check it answers our request, decode. Results borrow memory the client
 * owns until its next call.
 */
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <msgpack.h>

#include "net.h"
#include "peer.h"
#include "proto.h"
#include "secure.h"

/* How long a client waits for a reply before giving up. */
#define CLIENT_TIMEOUT_S 60

struct pds_client {
    int fd;
    uint64_t next_id;
    char path[sizeof(((struct sockaddr_un *)NULL)->sun_path)];
    char errmsg[PDS_ERRMSG_SIZE];
    uint8_t *body; /* the last reply frame's body */
    msgpack_unpacked up;
    int has_up;
    /* Result arrays of the last call. */
    struct pds_item *items;
    struct pds_user *users;
    struct pds_member *members;
    /* Remote administration: an encrypted link and the password. */
    int is_remote;
    struct pds_session session;
    uint8_t password[PDS_SECRET_MAX];
    size_t password_len;
    char **strs;
    size_t n_strs;
};

static int set_err(struct pds_client *c, int rv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int set_err(struct pds_client *c, int rv, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
    va_end(ap);
    return rv;
}

int pds_client_open(const char *path, struct pds_client **out, char *errmsg)
{
    struct sockaddr_un sa;
    struct pds_client *c;
    struct timeval tv = {CLIENT_TIMEOUT_S, 0};
    int fd;
    int rv;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "socket path %s is longer than %zu bytes", path,
                 sizeof(sa.sun_path) - 1);
        return PDS_EINVAL;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "out of memory");
        return PDS_ENOMEM;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "socket: %s", strerror(errno));
        rv = PDS_EIO;
        goto err_after_alloc;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;
        if (e == EACCES || e == EPERM) {
            snprintf(errmsg, PDS_ERRMSG_SIZE,
                     "permission denied on %s: run pdsync as the user that "
                     "runs pdsyncd",
                     path);
            rv = PDS_EPERM;
        } else {
            snprintf(errmsg, PDS_ERRMSG_SIZE,
                     "no pdsyncd is running at %s (%s): start it with "
                     "'pdsyncd --data DIR'",
                     path, strerror(e));
            rv = PDS_ECONN;
        }
        goto err_after_socket;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    c->fd = fd;
    c->next_id = 1;
    strcpy(c->path, path);
    *out = c;
    return 0;

err_after_socket:
    close(fd);
err_after_alloc:
    free(c);
    return rv;
}

static void reset_results(struct pds_client *c)
{
    size_t i;

    if (c->has_up) {
        msgpack_unpacked_destroy(&c->up);
        c->has_up = 0;
    }
    free(c->body);
    c->body = NULL;
    free(c->items);
    c->items = NULL;
    free(c->users);
    c->users = NULL;
    free(c->members);
    c->members = NULL;
    for (i = 0; i < c->n_strs; i++)
        free(c->strs[i]);
    free(c->strs);
    c->strs = NULL;
    c->n_strs = 0;
}

void pds_client_close(struct pds_client *c)
{
    if (c == NULL)
        return;
    reset_results(c);
    close(c->fd);
    pds_session_wipe(&c->session);
    sodium_memzero(c->password, sizeof(c->password));
    free(c);
}

const char *pds_client_errmsg(const struct pds_client *c)
{
    return c->errmsg;
}

static int write_all(struct pds_client *c, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return set_err(c, PDS_ETIMEDOUT,
                               "sending to pdsyncd at %s timed out", c->path);
            return set_err(c, PDS_ECONN, "connection to pdsyncd at %s lost: %s",
                           c->path, strerror(errno));
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int
unpack_reply(struct pds_client *c, size_t len, const msgpack_object **out);

static int read_all(struct pds_client *c, uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = recv(c->fd, buf, len, 0);
        if (n == 0)
            return set_err(c, PDS_ECONN, "pdsyncd at %s closed the connection",
                           c->path);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return set_err(c, PDS_ETIMEDOUT,
                               "no answer from pdsyncd at %s within %d s",
                               c->path, CLIENT_TIMEOUT_S);
            return set_err(c, PDS_ECONN, "connection to pdsyncd at %s lost: %s",
                           c->path, strerror(errno));
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Read one length-prefixed frame into a malloc'ed buffer. */
static int
read_frame(struct pds_client *c, size_t max, uint8_t **body, size_t *len)
{
    uint8_t hdr[4];
    int rv;

    rv = read_all(c, hdr, 4);
    if (rv != 0)
        return rv;
    *len = pds_get_u32be(hdr);
    if (*len == 0 || *len > max)
        return set_err(c, PDS_EPROTO, "frame of %zu bytes", *len);
    *body = malloc(*len);
    if (*body == NULL)
        return set_err(c, PDS_ENOMEM, "out of memory");
    rv = read_all(c, *body, *len);
    if (rv != 0) {
        free(*body);
        *body = NULL;
    }
    return rv;
}

static int write_frame(struct pds_client *c, const uint8_t *body, size_t len)
{
    uint8_t hdr[4];
    int rv;

    pds_put_u32be(hdr, (uint32_t)len);
    rv = write_all(c, hdr, 4);

    return rv != 0 ? rv : write_all(c, body, len);
}

/*
 * Remote: send the request (a local-API frame) inside an encrypted ADMIN
 * message with the password, and wait for the ADMIN_REPLY, skipping the
 * node's heartbeats. The reply body lands in c->body.
 */
static int remote_roundtrip(struct pds_client *c,
                            const uint8_t *frame,
                            size_t len,
                            size_t *body_len)
{
    struct pds_msg m;
    char errmsg[PDS_ERRMSG_SIZE];
    uint8_t *enc;
    uint8_t *inner;
    uint8_t *sealed;
    size_t enc_len;
    int rv;

    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_ADMIN;
    memcpy(m.pw, c->password, c->password_len);
    m.pw_len = c->password_len;
    m.blob = (uint8_t *)frame + 4;
    m.blob_len = len - 4;
    rv = pds_msg_encode(&m, &enc, &enc_len);
    sodium_memzero(m.pw, sizeof(m.pw));
    if (rv != 0)
        return set_err(c, rv, "encode: %s", pds_strerror(rv));
    if (enc_len + 4 + PDS_STREAM_ABYTES > PDS_NET_FRAME_MAX) {
        /* The node would end the connection on it. */
        sodium_memzero(enc, enc_len);
        free(enc);
        return set_err(c, PDS_ETOOBIG,
                       "the request is %zu bytes, over the %u-byte frame "
                       "of the group port that --node uses (nothing was "
                       "sent)",
                       len, (unsigned)PDS_NET_FRAME_MAX);
    }
    inner = malloc(enc_len + 4);
    sealed = malloc(enc_len + 4 + PDS_STREAM_ABYTES);
    if (inner == NULL || sealed == NULL) {
        free(inner);
        free(sealed);
        free(enc);
        return set_err(c, PDS_ENOMEM, "out of memory");
    }
    pds_put_u32be(inner, (uint32_t)enc_len);
    memcpy(inner + 4, enc, enc_len);
    pds_session_seal(&c->session, inner, enc_len + 4, sealed);
    rv = write_frame(c, sealed, enc_len + 4 + PDS_STREAM_ABYTES);
    sodium_memzero(inner, enc_len + 4);
    sodium_memzero(enc, enc_len);
    free(inner);
    free(sealed);
    free(enc);
    if (rv != 0)
        return rv;
    for (;;) {
        uint8_t *ct;
        uint8_t *pt;
        size_t ct_len, pt_len, off = 0;
        rv = read_frame(c, PDS_NET_FRAME_MAX, &ct, &ct_len);
        if (rv != 0)
            return rv;
        pt = malloc(ct_len);
        if (pt == NULL) {
            free(ct);
            return set_err(c, PDS_ENOMEM, "out of memory");
        }
        if (pds_session_open(&c->session, ct, ct_len, pt, &pt_len) != 0) {
            free(ct);
            free(pt);
            return set_err(c, PDS_EAUTH,
                           "a frame from the node failed authentication");
        }
        free(ct);
        while (off + 4 <= pt_len) {
            size_t mlen = pds_get_u32be(pt + off);
            off += 4;
            if (mlen > pt_len - off ||
                pds_msg_decode(pt + off, mlen, &m, errmsg) != 0) {
                free(pt);
                return set_err(c, PDS_EPROTO, "malformed message: %s", errmsg);
            }
            off += mlen;
            if (m.type == PDS_MSG_REFUSE) {
                free(pt);
                return set_err(c, m.code < 0 ? m.code : PDS_EPROTO, "%s",
                               m.err);
            }
            if (m.type == PDS_MSG_ADMIN_REPLY) {
                free(pt);
                c->body = m.blob;
                *body_len = m.blob_len;
                return 0;
            }
            pds_msg_free(&m); /* heartbeats */
        }
        free(pt);
    }
}

/* Read one reply frame into c->body and unpack it into c->up. */
static int read_reply(struct pds_client *c, const msgpack_object **out)
{
    size_t len;
    int rv;

    rv = read_frame(c, PDS_LOCAL_FRAME_MAX, &c->body, &len);
    if (rv != 0)
        return rv;
    return unpack_reply(c, len, out);
}

static int
unpack_reply(struct pds_client *c, size_t len, const msgpack_object **out)
{
    size_t off = 0;

    msgpack_unpacked_init(&c->up);
    c->has_up = 1;
    if (pds__mp_check(c->body, len) != 0 ||
        msgpack_unpack_next(&c->up, (const char *)c->body, len, &off) !=
            MSGPACK_UNPACK_SUCCESS ||
        c->up.data.type != MSGPACK_OBJECT_MAP)
        return set_err(c, PDS_EPROTO, "reply is not a msgpack map");
    *out = &c->up.data;
    return 0;
}

/* The reply's envelope: does it answer request id, and did that succeed? */
static int check_reply(struct pds_client *c,
                       const msgpack_object *m,
                       uint64_t want,
                       const msgpack_object **data)
{
    const char *err;
    size_t err_len;
    uint64_t id;
    int64_t rc;

    if (pds__mp_uint(m, "id", &id) != 0 || id != want ||
        pds__mp_int(m, "rc", &rc) != 0 ||
        pds__mp_str(m, "err", &err, &err_len) != 0)
        return set_err(c, PDS_EPROTO, "reply does not answer request %llu",
                       (unsigned long long)want);
    if (rc != 0) {
        if (rc >= 0 || rc <= PDS_EFIRST)
            rc = PDS_EPROTO;
        set_err(c, (int)rc, "%.*s", (int)err_len, err);
        if (err_len == 0)
            set_err(c, (int)rc, "%s", pds_strerror((int)rc));
        return (int)rc;
    }
    c->errmsg[0] = '\0';
    *data = pds__mp_get(m, "data");
    if (*data == NULL)
        return set_err(c, PDS_EPROTO, "reply has no data");
    return 0;
}

/* A new request's frame, with the next id; the last call's results go. */
static int encode_request(struct pds_client *c,
                          struct pds_request *req,
                          uint8_t **frame,
                          size_t *len)
{
    int rv;

    reset_results(c);
    req->id = c->next_id++;
    rv = pds_request_encode(req, frame, len);
    if (rv != 0)
        return set_err(c, rv, "encode request: %s", pds_strerror(rv));
    return 0;
}

/* Send a request over the local socket (the first half of call()). */
static int send_request(struct pds_client *c, struct pds_request *req)
{
    uint8_t *frame;
    size_t len;
    int rv = encode_request(c, req, &frame, &len);

    if (rv != 0)
        return rv;
    rv = write_all(c, frame, len);
    free(frame);
    return rv;
}

/*
 * Send a request and wait for its reply. On success *data is the reply's
 * "data" object; on a refused request the server's message is in errmsg
 * and its code is returned.
 */
static int
call(struct pds_client *c, struct pds_request *req, const msgpack_object **data)
{
    const msgpack_object *m;
    uint8_t *frame;
    size_t len;
    int rv;

    if (c->is_remote) {
        size_t body_len;
        rv = encode_request(c, req, &frame, &len);
        if (rv != 0)
            return rv;
        rv = remote_roundtrip(c, frame, len, &body_len);
        free(frame);
        if (rv == 0)
            rv = unpack_reply(c, body_len, &m);
    } else {
        rv = send_request(c, req);
        if (rv == 0)
            rv = read_reply(c, &m);
    }
    if (rv != 0)
        return rv;
    return check_reply(c, m, req->id, data);
}

/* A NUL-terminated copy kept until the next call. */
static const char *keep_str(struct pds_client *c, const char *s, size_t n)
{
    char **strs = realloc(c->strs, (c->n_strs + 1) * sizeof(*strs));
    char *copy;

    if (strs == NULL)
        return NULL;
    c->strs = strs;
    copy = malloc(n + 1);
    if (copy == NULL)
        return NULL;
    memcpy(copy, s, n);
    copy[n] = '\0';
    c->strs[c->n_strs++] = copy;
    return copy;
}

static int decode_write(struct pds_client *c,
                        const msgpack_object *d,
                        struct pds_write_result *res)
{
    struct pds_write_result r;
    uint64_t outcome;

    memset(&r, 0, sizeof(r));
    if (pds__mp_uint(d, "epoch", &r.epoch) != 0 ||
        pds__mp_uint(d, "index", &r.index) != 0 ||
        pds__mp_uint(d, "hlc", &r.version.hlc) != 0 ||
        pds__mp_uint(d, "node", &r.version.node) != 0 ||
        pds__mp_uint(d, "queued", &r.queued) != 0 ||
        pds__mp_uint(d, "outcome", &outcome) != 0 || outcome > 3)
        return set_err(c, PDS_EPROTO, "malformed write reply");
    r.outcome = (int)outcome;
    if (res != NULL)
        *res = r;
    return 0;
}

static int
decode_item(struct pds_client *c, const msgpack_object *d, struct pds_item *it)
{
    if (pds__mp_scope(d, &it->scope) != 0 ||
        pds__mp_str(d, "owner", &it->owner, &it->owner_len) != 0 ||
        pds__mp_str(d, "item", &it->item, &it->item_len) != 0 ||
        pds__mp_bin(d, "value", &it->value, &it->value_len) != 0 ||
        pds__mp_uint(d, "hlc", &it->version.hlc) != 0 ||
        pds__mp_uint(d, "node", &it->version.node) != 0)
        return set_err(c, PDS_EPROTO, "malformed item in reply");
    return 0;
}

static void key_request(struct pds_request *req,
                        enum pds_req_op op,
                        const struct pds_key *key)
{
    memset(req, 0, sizeof(*req));
    req->op = op;
    req->scope = key->scope;
    req->owner = key->owner;
    req->owner_len = key->owner_len;
    req->item = key->item;
    req->item_len = key->item_len;
}

int pds_client_put(struct pds_client *c,
                   const struct pds_key *key,
                   const uint8_t *value,
                   size_t value_len,
                   struct pds_write_result *res)
{
    struct pds_request req;
    const msgpack_object *d;
    static const uint8_t empty[1];
    int rv;

    key_request(&req, PDS_REQ_PUT, key);
    req.value = value != NULL ? value : empty;
    req.value_len = value_len;
    rv = call(c, &req, &d);
    if (rv != 0)
        return rv;
    return decode_write(c, d, res);
}

int pds_client_fd(const struct pds_client *c)
{
    return c->fd;
}

int pds_client_put_send(struct pds_client *c,
                        const struct pds_key *key,
                        const uint8_t *value,
                        size_t value_len)
{
    struct pds_request req;
    static const uint8_t empty[1];

    if (c->is_remote)
        return set_err(c, PDS_EINVAL, "put_send: local sockets only");
    key_request(&req, PDS_REQ_PUT, key);
    req.value = value != NULL ? value : empty;
    req.value_len = value_len;
    return send_request(c, &req);
}

int pds_client_put_recv(struct pds_client *c, struct pds_write_result *res)
{
    const msgpack_object *m, *d;
    int rv = read_reply(c, &m);

    if (rv == 0)
        rv = check_reply(c, m, c->next_id - 1, &d);
    if (rv != 0)
        return rv;
    return decode_write(c, d, res);
}

int pds_client_del(struct pds_client *c,
                   const struct pds_key *key,
                   struct pds_write_result *res)
{
    struct pds_request req;
    const msgpack_object *d;
    int rv;

    key_request(&req, PDS_REQ_DEL, key);
    rv = call(c, &req, &d);
    if (rv != 0)
        return rv;
    return decode_write(c, d, res);
}

int pds_client_delete_user(struct pds_client *c,
                           enum pds_scope scope,
                           const char *owner,
                           struct pds_write_result *res)
{
    struct pds_request req;
    const msgpack_object *d;
    int rv;

    memset(&req, 0, sizeof(req));
    req.op = PDS_REQ_DELETE_USER;
    req.scope = scope;
    req.owner = owner;
    req.owner_len = strlen(owner);
    rv = call(c, &req, &d);
    if (rv != 0)
        return rv;
    return decode_write(c, d, res);
}

int pds_client_get(struct pds_client *c,
                   const struct pds_key *key,
                   struct pds_item *out)
{
    struct pds_request req;
    const msgpack_object *d;
    struct pds_item it;
    int rv;

    key_request(&req, PDS_REQ_GET, key);
    rv = call(c, &req, &d);
    if (rv != 0)
        return rv;
    rv = decode_item(c, d, &it);
    if (rv != 0)
        return rv;
    *out = it;
    return 0;
}

int pds_client_list(struct pds_client *c,
                    enum pds_scope scope,
                    const char *owner,
                    const struct pds_item **items,
                    size_t *n_items)
{
    struct pds_request req;
    const msgpack_object *d;
    uint32_t i;
    int rv;

    memset(&req, 0, sizeof(req));
    req.op = PDS_REQ_LIST;
    req.scope = scope;
    req.owner = owner;
    req.owner_len = owner != NULL ? strlen(owner) : 0;
    rv = call(c, &req, &d);
    if (rv != 0)
        return rv;
    if (d->type != MSGPACK_OBJECT_ARRAY)
        return set_err(c, PDS_EPROTO, "malformed list reply");
    c->items = calloc(d->via.array.size + 1, sizeof(*c->items));
    if (c->items == NULL)
        return set_err(c, PDS_ENOMEM, "out of memory");
    for (i = 0; i < d->via.array.size; i++) {
        rv = decode_item(c, &d->via.array.ptr[i], &c->items[i]);
        if (rv != 0)
            return rv;
    }
    *items = c->items;
    *n_items = d->via.array.size;
    return 0;
}

int pds_client_users(struct pds_client *c,
                     const struct pds_user **users,
                     size_t *n_users)
{
    struct pds_request req;
    const msgpack_object *d;
    uint32_t i;
    int rv;

    memset(&req, 0, sizeof(req));
    req.op = PDS_REQ_USERS;
    rv = call(c, &req, &d);
    if (rv != 0)
        return rv;
    if (d->type != MSGPACK_OBJECT_ARRAY)
        return set_err(c, PDS_EPROTO, "malformed users reply");
    c->users = calloc(d->via.array.size + 1, sizeof(*c->users));
    if (c->users == NULL)
        return set_err(c, PDS_ENOMEM, "out of memory");
    for (i = 0; i < d->via.array.size; i++) {
        const msgpack_object *u = &d->via.array.ptr[i];
        struct pds_user *out = &c->users[i];
        if (pds__mp_scope(u, &out->scope) != 0 ||
            pds__mp_str(u, "owner", &out->owner, &out->owner_len) != 0 ||
            pds__mp_uint(u, "last_used", &out->last_used) != 0)
            return set_err(c, PDS_EPROTO, "malformed user in reply");
    }
    *users = c->users;
    *n_users = d->via.array.size;
    return 0;
}

static const char *
status_str(struct pds_client *c, const msgpack_object *d, const char *name)
{
    const char *s;
    size_t n;

    if (pds__mp_str(d, name, &s, &n) != 0)
        return NULL;
    return keep_str(c, s, n);
}

int pds_client_status(struct pds_client *c, struct pds_status *out)
{
    struct pds_request req;
    const msgpack_object *d;
    struct pds_status st;
    int rv;

    memset(&req, 0, sizeof(req));
    req.op = PDS_REQ_STATUS;
    rv = call(c, &req, &d);
    if (rv != 0)
        return rv;
    memset(&st, 0, sizeof(st));
    st.role = status_str(c, d, "role");
    st.data_dir = status_str(c, d, "data_dir");
    st.version = status_str(c, d, "version");
    st.group = status_str(c, d, "group");
    st.listen = status_str(c, d, "listen");
    st.server = status_str(c, d, "server");
    st.link = status_str(c, d, "link");
    st.last_error = status_str(c, d, "last_error");
    st.cipher = status_str(c, d, "cipher");
    st.standby = status_str(c, d, "standby");
    st.ack_mode = status_str(c, d, "ack_mode");
    st.outbox_error = status_str(c, d, "outbox_error");
    /* Optional: a daemon before restamp memos travelled has none. */
    if (pds__mp_uint(d, "n_clamps", &st.n_clamps) != 0)
        st.n_clamps = 0;
    if (st.role == NULL || st.data_dir == NULL || st.version == NULL ||
        pds__mp_uint(d, "node_id", &st.node_id) != 0 ||
        pds__mp_uint(d, "epoch", &st.epoch) != 0 ||
        pds__mp_uint(d, "last_epoch", &st.last_epoch) != 0 ||
        pds__mp_uint(d, "last_index", &st.last_index) != 0 ||
        pds__mp_uint(d, "n_records", &st.n_records) != 0 ||
        pds__mp_uint(d, "n_users", &st.n_users) != 0 ||
        pds__mp_uint(d, "n_groups", &st.n_groups) != 0 ||
        pds__mp_uint(d, "n_log", &st.n_log) != 0 ||
        pds__mp_uint(d, "bytes_used", &st.bytes_used) != 0 ||
        pds__mp_uint(d, "budget", &st.budget) != 0 ||
        pds__mp_uint(d, "max_users", &st.max_users) != 0 ||
        pds__mp_uint(d, "pid", &st.pid) != 0 ||
        pds__mp_uint(d, "n_commits", &st.n_commits) != 0 ||
        pds__mp_uint(d, "n_committed", &st.n_committed) != 0 ||
        pds__mp_uint(d, "n_machines", &st.n_machines) != 0 ||
        pds__mp_uint(d, "max_machines", &st.max_machines) != 0 ||
        pds__mp_uint(d, "reclaim_after_s", &st.reclaim_after_s) != 0 ||
        pds__mp_uint(d, "server_last", &st.server_last) != 0 ||
        pds__mp_uint(d, "n_outbox", &st.n_outbox) != 0 ||
        pds__mp_uint(d, "n_rejected", &st.n_rejected) != 0 ||
        pds__mp_uint(d, "n_lost", &st.n_lost) != 0 ||
        pds__mp_uint(d, "n_superseded", &st.n_superseded) != 0 ||
        pds__mp_uint(d, "n_clamped", &st.n_clamped) != 0 ||
        st.outbox_error == NULL || st.group == NULL || st.listen == NULL ||
        st.server == NULL || st.link == NULL || st.last_error == NULL ||
        st.cipher == NULL || st.standby == NULL || st.ack_mode == NULL)
        return set_err(c, PDS_EPROTO, "malformed status reply");
    *out = st;
    return 0;
}

static int string_list(struct pds_client *c,
                       enum pds_req_op op,
                       uint32_t max_lines,
                       const char *const **lines,
                       size_t *n_lines)
{
    struct pds_request req;
    const msgpack_object *d;
    uint32_t i;
    int rv;

    memset(&req, 0, sizeof(req));
    req.op = op;
    req.limit = max_lines;
    rv = call(c, &req, &d);
    if (rv != 0)
        return rv;
    if (d->type != MSGPACK_OBJECT_ARRAY)
        return set_err(c, PDS_EPROTO, "malformed log reply");
    for (i = 0; i < d->via.array.size; i++) {
        const msgpack_object *o = &d->via.array.ptr[i];
        if (o->type != MSGPACK_OBJECT_STR ||
            keep_str(c, o->via.str.ptr, o->via.str.size) == NULL)
            return set_err(c, PDS_EPROTO, "malformed log line in reply");
    }
    *lines = (const char *const *)c->strs;
    *n_lines = c->n_strs;
    return 0;
}

int pds_client_log(struct pds_client *c,
                   uint32_t max_lines,
                   const char *const **lines,
                   size_t *n_lines)
{
    return string_list(c, PDS_REQ_LOG, max_lines, lines, n_lines);
}

int pds_client_scopes(struct pds_client *c,
                      const char *const **items,
                      size_t *n_items)
{
    return string_list(c, PDS_REQ_SCOPES, 0, items, n_items);
}

int pds_client_scope_set(struct pds_client *c,
                         const char *item,
                         const char *scope)
{
    struct pds_request req;
    const msgpack_object *d;

    memset(&req, 0, sizeof(req));
    req.op = PDS_REQ_SCOPE_SET;
    req.item = item;
    req.item_len = strlen(item);
    req.target = scope;
    req.target_len = strlen(scope);
    return call(c, &req, &d);
}

static int simple_call(struct pds_client *c, struct pds_request *req)
{
    const msgpack_object *d;

    return call(c, req, &d);
}

int pds_client_server_start(struct pds_client *c,
                            const uint8_t *secret,
                            size_t secret_len,
                            struct pds_server_started *out)
{
    struct pds_request req;
    const msgpack_object *d;
    struct pds_server_started st;
    int rv;

    memset(&req, 0, sizeof(req));
    req.op = PDS_REQ_SERVER_START;
    req.secret = secret;
    req.secret_len = secret_len;
    rv = call(c, &req, &d);
    if (rv != 0)
        return rv;
    st.group = status_str(c, d, "group");
    st.secret = status_str(c, d, "secret");
    st.listen = status_str(c, d, "listen");
    if (st.group == NULL || st.secret == NULL || st.listen == NULL)
        return set_err(c, PDS_EPROTO, "malformed server start reply");
    if (st.secret[0] == '\0')
        st.secret = NULL;
    *out = st;
    return 0;
}

int pds_client_server_stop(struct pds_client *c)
{
    struct pds_request req;

    memset(&req, 0, sizeof(req));
    req.op = PDS_REQ_SERVER_STOP;
    return simple_call(c, &req);
}

int pds_client_client_start(struct pds_client *c,
                            const char *server,
                            const uint8_t *secret,
                            size_t secret_len,
                            const char *name,
                            int merge)
{
    struct pds_request req;

    memset(&req, 0, sizeof(req));
    req.op = PDS_REQ_CLIENT_START;
    req.limit = merge ? 1 : 0;
    req.target = server;
    req.target_len = strlen(server);
    req.secret = secret;
    req.secret_len = secret_len;
    req.name = name;
    req.name_len = name != NULL ? strlen(name) : 0;
    return simple_call(c, &req);
}

int pds_client_client_stop(struct pds_client *c)
{
    struct pds_request req;

    memset(&req, 0, sizeof(req));
    req.op = PDS_REQ_CLIENT_STOP;
    return simple_call(c, &req);
}

static int
copy_field(const msgpack_object *o, const char *key, char *out, size_t size)
{
    const char *s;
    size_t n;

    if (pds__mp_str(o, key, &s, &n) != 0)
        return PDS_EPROTO;
    if (n >= size)
        n = size - 1;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

int pds_client_clients(struct pds_client *c,
                       const struct pds_member **members,
                       size_t *n_members)
{
    struct pds_request req;
    const msgpack_object *d;
    uint32_t i;
    int rv;

    memset(&req, 0, sizeof(req));
    req.op = PDS_REQ_CLIENTS;
    rv = call(c, &req, &d);
    if (rv != 0)
        return rv;
    if (d->type != MSGPACK_OBJECT_ARRAY)
        return set_err(c, PDS_EPROTO, "malformed clients reply");
    c->members = calloc(d->via.array.size + 1, sizeof(*c->members));
    if (c->members == NULL)
        return set_err(c, PDS_ENOMEM, "out of memory");
    for (i = 0; i < d->via.array.size; i++) {
        const msgpack_object *o = &d->via.array.ptr[i];
        struct pds_member *m = &c->members[i];
        char state[16];
        const uint8_t *pk;
        size_t pk_len;
        if (pds__mp_uint(o, "id", &m->id) != 0 ||
            copy_field(o, "state", state, sizeof(state)) != 0 ||
            pds__mp_uint(o, "first_enrolled", &m->first_enrolled) != 0 ||
            pds__mp_uint(o, "last_seen", &m->last_seen) != 0 ||
            copy_field(o, "name", m->name, sizeof(m->name)) != 0 ||
            copy_field(o, "product", m->product, sizeof(m->product)) != 0 ||
            copy_field(o, "location", m->location, sizeof(m->location)) != 0 ||
            copy_field(o, "address", m->address, sizeof(m->address)) != 0 ||
            copy_field(o, "version", m->version, sizeof(m->version)) != 0 ||
            copy_field(o, "last_error", m->last_error, sizeof(m->last_error)) !=
                0 ||
            pds__mp_bin(o, "pk", &pk, &pk_len) != 0 || pk_len != PDS_KEY_BYTES)
            return set_err(c, PDS_EPROTO, "malformed client in reply");
        memcpy(m->pk, pk, PDS_KEY_BYTES);
        {
            uint64_t following;
            int has_position = pds__mp_uint(o, "position", &m->position) == 0;
            /* Without "following" (an older daemon): only a follower had a
             * position. */
            m->is_following = pds__mp_uint(o, "following", &following) == 0
                                  ? following != 0
                                  : has_position;
            if (!has_position &&
                pds__mp_uint(o, "last_position", &m->position) != 0)
                m->position = 0;
        }
        if (pds__mp_uint(o, "sent", &m->sent) != 0 ||
            pds__mp_uint(o, "lag_bytes", &m->lag_bytes) != 0 ||
            pds__mp_uint(o, "lag_ms", &m->lag_ms) != 0 ||
            copy_field(o, "sync", m->sync, sizeof(m->sync)) != 0)
            return set_err(c, PDS_EPROTO, "malformed client in reply");
        m->state = strcmp(state, "stopped") == 0 ? PDS_MEMBER_STOPPED
                                                 : PDS_MEMBER_ENROLLED;
        m->is_connected = strcmp(state, "connected") == 0;
    }
    *members = c->members;
    *n_members = d->via.array.size;
    return 0;
}

int pds_client_clients_admin(struct pds_client *c,
                             int start,
                             const char *target)
{
    struct pds_request req;

    memset(&req, 0, sizeof(req));
    req.op = start ? PDS_REQ_CLIENTS_START : PDS_REQ_CLIENTS_STOP;
    req.target = target;
    req.target_len = strlen(target);
    return simple_call(c, &req);
}

int pds_client_replication(struct pds_client *c, const char *target)
{
    struct pds_request req;

    memset(&req, 0, sizeof(req));
    req.op =
        target != NULL ? PDS_REQ_REPLICATION_START : PDS_REQ_REPLICATION_STOP;
    req.target = target;
    req.target_len = target != NULL ? strlen(target) : 0;
    return simple_call(c, &req);
}

int pds_client_admin_password(struct pds_client *c,
                              const uint8_t *password,
                              size_t len)
{
    struct pds_request req;

    memset(&req, 0, sizeof(req));
    req.op = PDS_REQ_ADMIN_PASSWORD;
    req.secret = password;
    req.secret_len = len;
    return simple_call(c, &req);
}

int pds_client_handshake(int fd,
                         const struct pds_identity *id,
                         int is_initiator,
                         struct pds_session *s,
                         char *errmsg)
{
    struct pds_client tmp;
    struct pds_handshake hs;
    struct pds_msg m, peer;
    uint8_t *hello = NULL;
    uint8_t *buf = NULL;
    size_t hello_len, len;
    int rv;

    memset(&tmp, 0, sizeof(tmp));
    memset(s, 0, sizeof(*s));
    tmp.fd = fd;
    snprintf(tmp.path, sizeof(tmp.path), "the node");
    pds_handshake_init(&hs, is_initiator);
    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_HELLO;
    m.version = PDS_PROTOCOL_VERSION;
    memcpy(m.pk, id->pk, PDS_KEY_BYTES);
    memcpy(m.epk, hs.e_pk, PDS_KEY_BYTES);
    m.aead = hs.aead;
    rv = pds_msg_encode(&m, &hello, &hello_len);
    if (rv == 0 && is_initiator)
        rv = write_frame(&tmp, hello, hello_len);
    if (rv == 0)
        rv = read_frame(&tmp, 4096, &buf, &len);
    if (rv == 0 && pds_msg_decode(buf, len, &peer, errmsg) != 0)
        rv = PDS_EPROTO;
    if (rv == 0 && peer.type == PDS_MSG_REFUSE) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "refused: %s", peer.err);
        rv = peer.code < 0 ? peer.code : PDS_EPROTO;
    } else if (rv == 0 && peer.type != PDS_MSG_HELLO) {
        pds_msg_free(&peer);
        snprintf(errmsg, PDS_ERRMSG_SIZE, "the node did not say hello");
        rv = PDS_EPROTO;
    }
    if (rv == 0 && !is_initiator)
        rv = write_frame(&tmp, hello, hello_len);
    if (rv == 0) {
        rv = pds_handshake_finish(&hs, id, hello, hello_len, buf, len, peer.pk,
                                  peer.epk, peer.aead, s);
        if (rv != 0)
            snprintf(errmsg, PDS_ERRMSG_SIZE, "handshake: %s",
                     rv == PDS_EAUTH ? "bad key"
                                     : "cannot make the stream's cipher");
    }
    free(buf);
    buf = NULL;
    if (rv == 0)
        rv = write_frame(&tmp, s->tx_header, PDS_STREAM_HEADER);
    if (rv == 0)
        rv = read_frame(&tmp, 4096, &buf, &len);
    if (rv == 0 &&
        (len != PDS_STREAM_HEADER || pds_session_rx_start(s, buf) != 0)) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "handshake: bad stream header");
        rv = PDS_EAUTH;
    }
    if (rv != 0 && errmsg[0] == '\0')
        snprintf(errmsg, PDS_ERRMSG_SIZE, "%s", tmp.errmsg);
    if (rv != 0)
        pds_session_wipe(s);
    sodium_memzero(&hs, sizeof(hs)); /* the ephemeral secret, on every path */
    free(buf);
    free(hello);
    return rv;
}

int pds_client_open_remote(const char *host_port,
                           const uint8_t *password,
                           size_t password_len,
                           struct pds_client **out,
                           char *errmsg)
{
    struct addrinfo hints, *res = NULL, *ai;
    struct pds_identity id;
    struct pds_client *c;
    struct timeval tv = {CLIENT_TIMEOUT_S, 0};
    char host[256];
    char port[8];
    int fd = -1;
    int rv;

    errmsg[0] = '\0';
    if (pds_net_split(host_port, host, sizeof(host), port, sizeof(port)) != 0 ||
        host[0] == '\0') {
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "--node '%s' is not HOST:PORT (use [ADDRESS]:PORT for IPv6)",
                 host_port);
        return PDS_EINVAL;
    }
    if (password_len == 0 || password_len > PDS_SECRET_MAX) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "the password must be 1 to %d bytes",
                 PDS_SECRET_MAX);
        return PDS_EINVAL;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rv = getaddrinfo(host, port, &hints, &res);
    if (rv != 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "resolve %s: %s", host,
                 gai_strerror(rv));
        return PDS_ECONN;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "no node answers at %s: %s",
                 host_port, strerror(errno));
        return PDS_ECONN;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        snprintf(errmsg, PDS_ERRMSG_SIZE, "out of memory");
        return PDS_ENOMEM;
    }
    c->fd = fd;
    c->next_id = 1;
    c->is_remote = 1;
    snprintf(c->path, sizeof(c->path), "%s", host_port);
    /* The administrator's tool has no node key: a fresh one per link. */
    crypto_kx_keypair(id.pk, id.sk);
    rv = pds_client_handshake(fd, &id, 1, &c->session, errmsg);
    sodium_memzero(&id, sizeof(id));
    if (rv != 0) {
        pds_client_close(c);
        return rv;
    }
    memcpy(c->password, password, password_len);
    c->password_len = password_len;
    *out = c;
    return 0;
}

int pds_client_raw(struct pds_client *c, const uint8_t *buf, size_t len)
{
    const msgpack_object *m;
    int rv;

    reset_results(c);
    rv = write_all(c, buf, len);
    if (rv != 0)
        return rv;
    return read_reply(c, &m);
}
