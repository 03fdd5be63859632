/*
 * client.c - the blocking client library of the local API.
 *
 * One request at a time per client: encode, send, read one reply frame,
 * check it answers our request, decode. Results borrow memory the client
 * owns until its next call.
 */
#include <errno.h>
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
#include "proto.h"

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

/* Read one reply frame into c->body and unpack it into c->up. */
static int read_reply(struct pds_client *c, const msgpack_object **out)
{
    uint8_t hdr[4];
    size_t len;
    size_t off = 0;
    int rv;

    rv = read_all(c, hdr, 4);
    if (rv != 0)
        return rv;
    len = ((size_t)hdr[0] << 24) | ((size_t)hdr[1] << 16) |
          ((size_t)hdr[2] << 8) | (size_t)hdr[3];
    if (len == 0 || len > PDS_LOCAL_FRAME_MAX)
        return set_err(c, PDS_EPROTO, "reply frame of %zu bytes", len);
    c->body = malloc(len);
    if (c->body == NULL)
        return set_err(c, PDS_ENOMEM, "out of memory");
    rv = read_all(c, c->body, len);
    if (rv != 0)
        return rv;
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

/*
 * Send a request and wait for its reply. On success *data is the reply's
 * "data" object; on a refused request the server's message is in errmsg
 * and its code is returned.
 */
static int
call(struct pds_client *c, struct pds_request *req, const msgpack_object **data)
{
    const msgpack_object *m;
    const char *err;
    size_t err_len;
    uint8_t *frame;
    size_t len;
    uint64_t id;
    int64_t rc;
    int rv;

    reset_results(c);
    req->id = c->next_id++;
    rv = pds_request_encode(req, &frame, &len);
    if (rv != 0)
        return set_err(c, rv, "encode request: %s", pds_strerror(rv));
    rv = write_all(c, frame, len);
    free(frame);
    if (rv != 0)
        return rv;
    rv = read_reply(c, &m);
    if (rv != 0)
        return rv;
    if (pds__mp_uint(m, "id", &id) != 0 || id != req->id ||
        pds__mp_int(m, "rc", &rc) != 0 ||
        pds__mp_str(m, "err", &err, &err_len) != 0)
        return set_err(c, PDS_EPROTO, "reply does not answer request %llu",
                       (unsigned long long)req->id);
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

    if (pds__mp_uint(d, "epoch", &r.epoch) != 0 ||
        pds__mp_uint(d, "index", &r.index) != 0 ||
        pds__mp_uint(d, "hlc", &r.version.hlc) != 0 ||
        pds__mp_uint(d, "node", &r.version.node) != 0)
        return set_err(c, PDS_EPROTO, "malformed write reply");
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
        st.group == NULL || st.listen == NULL || st.server == NULL ||
        st.link == NULL || st.last_error == NULL)
        return set_err(c, PDS_EPROTO, "malformed status reply");
    *out = st;
    return 0;
}

int pds_client_log(struct pds_client *c,
                   uint32_t max_lines,
                   const char *const **lines,
                   size_t *n_lines)
{
    struct pds_request req;
    const msgpack_object *d;
    uint32_t i;
    int rv;

    memset(&req, 0, sizeof(req));
    req.op = PDS_REQ_LOG;
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
                            const char *name)
{
    struct pds_request req;

    memset(&req, 0, sizeof(req));
    req.op = PDS_REQ_CLIENT_START;
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
