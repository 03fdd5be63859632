/*
 * proto.c - msgpack encoding and decoding of the local API's messages.
 *
 * Requests and replies are msgpack maps keyed by short strings. Decoders
 * never trust their input: every field is type-checked and a malformed
 * message is an error, never a crash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "net.h"
#include "proto.h"

static const char *const op_names[] = {
    NULL,
    "put",
    "get",
    "del",
    "list",
    "users",
    "delete-user",
    "status",
    "log",
    "server-start",
    "server-stop",
    "client-start",
    "client-stop",
    "clients",
    "clients-stop",
    "clients-start",
    "admin-password",
    "replication-start",
    "replication-stop",
    "scope-set",
    "scopes",
};

const char *pds_req_op_name(enum pds_req_op op)
{
    if ((int)op < PDS_REQ_PUT || (int)op > PDS_REQ_LAST)
        return "unknown";
    return op_names[op];
}

/* ---- Helpers on msgpack objects --------------------------------------- */

static size_t be_len(const uint8_t *p, size_t n)
{
    size_t v = 0;
    size_t i;

    for (i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/*
 * msgpack-c's unpacker allocates the objects of an array or map from the
 * count in its header before it reads them, so a 6-byte message claiming
 * 2^32 elements costs 64 GiB. Before unpacking, walk the message's headers
 * and refuse any whose elements could not fit in the bytes that are
 * actually there (every object takes at least one byte).
 */
int pds__mp_check(const uint8_t *buf, size_t len)
{
    size_t pending = 1; /* objects still to read */
    size_t pos = 0;

    while (pending > 0) {
        size_t skip = 0; /* payload bytes after the header */
        size_t n = 0;    /* elements of a container */
        size_t hdr = 1;
        uint8_t b;

        if (pos >= len)
            return PDS_EPROTO;
        b = buf[pos];
        pending--;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* Fixints, nil, booleans: the header is the object. */
        } else if (b >= 0x80 && b <= 0x8f) {
            n = 2u * (b & 0x0fu);
        } else if (b >= 0x90 && b <= 0x9f) {
            n = b & 0x0fu;
        } else if (b >= 0xa0 && b <= 0xbf) {
            skip = b & 0x1fu;
        } else {
            /* clang-format off */
            static const uint8_t lens[] = {/* c4 bin8 */ 1,
                                           2,
                                           4,
                                           /* c7 ext */ 1,
                                           2,
                                           4,
                                           /* ca float */ 4,
                                           8,
                                           /* cc uint */ 1,
                                           2,
                                           4,
                                           8,
                                           /* d0 int */ 1,
                                           2,
                                           4,
                                           8,
                                           /* d4 fixext */ 1,
                                           2,
                                           4,
                                           8,
                                           16,
                                           /* d9 str */ 1,
                                           2,
                                           4,
                                           /* dc array */ 2,
                                           4,
                                           /* de map */ 2,
                                           4};
            size_t l;
            if (b == 0xc1)
                return PDS_EPROTO;
            l = lens[b - 0xc4];
            if (b >= 0xca && b <= 0xd3) {
                skip = l;
            } else if (b >= 0xd4 && b <= 0xd8) {
                skip = l + 1;
            } else {
                if (len - pos < 1 + l)
                    return PDS_EPROTO;
                hdr = 1 + l;
                if (b >= 0xdc) {
                    n = be_len(buf + pos + 1, l);
                    if (b >= 0xde)
                        n *= 2;
                } else {
                    skip = be_len(buf + pos + 1, l);
                    if (b >= 0xc7 && b <= 0xc9)
                        skip++; /* the ext type byte */
                }
            }
        }
        if (len - pos < hdr || len - pos - hdr < skip)
            return PDS_EPROTO;
        pos += hdr + skip;
        if (n > len - pos || pending > len - pos - n)
            return PDS_EPROTO;
        pending += n;
    }
    return 0;
}

int pds__mp_key_is(const msgpack_object *k, const char *name)
{
    size_t n = strlen(name);

    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
           memcmp(k->via.str.ptr, name, n) == 0;
}

const msgpack_object *pds__mp_get(const msgpack_object *map, const char *name)
{
    uint32_t i;

    if (map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (i = 0; i < map->via.map.size; i++) {
        if (pds__mp_key_is(&map->via.map.ptr[i].key, name))
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

int pds__mp_uint(const msgpack_object *map, const char *name, uint64_t *out)
{
    const msgpack_object *o = pds__mp_get(map, name);

    if (o == NULL || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return PDS_EPROTO;
    *out = o->via.u64;
    return 0;
}

int pds__mp_int(const msgpack_object *map, const char *name, int64_t *out)
{
    const msgpack_object *o = pds__mp_get(map, name);

    if (o == NULL)
        return PDS_EPROTO;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
        *out = (int64_t)o->via.u64;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return 0;
    }
    return PDS_EPROTO;
}

int pds__mp_str(const msgpack_object *map,
                const char *name,
                const char **ptr,
                size_t *len)
{
    const msgpack_object *o = pds__mp_get(map, name);

    if (o == NULL || o->type != MSGPACK_OBJECT_STR)
        return PDS_EPROTO;
    *ptr = o->via.str.ptr;
    *len = o->via.str.size;
    return 0;
}

int pds__mp_bin(const msgpack_object *map,
                const char *name,
                const uint8_t **ptr,
                size_t *len)
{
    const msgpack_object *o = pds__mp_get(map, name);

    if (o == NULL || o->type != MSGPACK_OBJECT_BIN)
        return PDS_EPROTO;
    *ptr = (const uint8_t *)o->via.bin.ptr;
    *len = o->via.bin.size;
    return 0;
}

void pds__mp_pack_str(msgpack_packer *pk, const char *s, size_t len)
{
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s, len);
}

void pds__mp_pack_cstr(msgpack_packer *pk, const char *s)
{
    pds__mp_pack_str(pk, s, strlen(s));
}

static const char *scope_name(enum pds_scope scope)
{
    return scope == PDS_SCOPE_GROUP ? "group" : "user";
}

int pds__mp_scope(const msgpack_object *map, enum pds_scope *scope)
{
    const char *s;
    size_t n;

    if (pds__mp_str(map, "scope", &s, &n) != 0)
        return PDS_EPROTO;
    if (n == 4 && memcmp(s, "user", 4) == 0)
        *scope = PDS_SCOPE_USER;
    else if (n == 5 && memcmp(s, "group", 5) == 0)
        *scope = PDS_SCOPE_GROUP;
    else
        return PDS_EPROTO;
    return 0;
}

/* Turn a finished sbuffer into a frame by filling its 4-byte prefix. */
static int sbuffer_frame(msgpack_sbuffer *sb, uint8_t **frame, size_t *len)
{
    size_t body;

    if (sb->data == NULL || sb->size < 4) {
        msgpack_sbuffer_destroy(sb);
        return PDS_ENOMEM;
    }
    body = sb->size - 4;
    if (body > PDS_LOCAL_FRAME_MAX) {
        msgpack_sbuffer_destroy(sb);
        return PDS_ETOOBIG;
    }
    pds_put_u32be((uint8_t *)sb->data, (uint32_t)body);
    *frame = (uint8_t *)sb->data;
    *len = sb->size;
    return 0;
}

/* ---- Requests --------------------------------------------------------- */

int pds_request_encode(const struct pds_request *req,
                       uint8_t **frame,
                       size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t n = 3;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_sbuffer_write(&sb, "\0\0\0\0", 4);
    if (req->owner != NULL)
        n += 2; /* owner, scope */
    if (req->item != NULL)
        n++;
    if (req->value != NULL)
        n++;
    if (req->limit != 0)
        n++;
    if (req->target != NULL)
        n++;
    if (req->name != NULL)
        n++;
    if (req->secret != NULL)
        n++;
    msgpack_pack_map(&pk, n);
    pds__mp_pack_cstr(&pk, "id");
    msgpack_pack_uint64(&pk, req->id);
    pds__mp_pack_cstr(&pk, "op");
    pds__mp_pack_cstr(&pk, pds_req_op_name(req->op));
    pds__mp_pack_cstr(&pk, "v");
    msgpack_pack_uint32(&pk, PDS_LOCAL_PROTOCOL);
    if (req->owner != NULL) {
        pds__mp_pack_cstr(&pk, "scope");
        pds__mp_pack_cstr(&pk, scope_name(req->scope));
        pds__mp_pack_cstr(&pk, "owner");
        pds__mp_pack_str(&pk, req->owner, req->owner_len);
    }
    if (req->item != NULL) {
        pds__mp_pack_cstr(&pk, "item");
        pds__mp_pack_str(&pk, req->item, req->item_len);
    }
    if (req->value != NULL) {
        pds__mp_pack_cstr(&pk, "value");
        msgpack_pack_bin(&pk, req->value_len);
        msgpack_pack_bin_body(&pk, req->value, req->value_len);
    }
    if (req->limit != 0) {
        pds__mp_pack_cstr(&pk, "limit");
        msgpack_pack_uint32(&pk, req->limit);
    }
    if (req->target != NULL) {
        pds__mp_pack_cstr(&pk, "target");
        pds__mp_pack_str(&pk, req->target, req->target_len);
    }
    if (req->name != NULL) {
        pds__mp_pack_cstr(&pk, "name");
        pds__mp_pack_str(&pk, req->name, req->name_len);
    }
    if (req->secret != NULL) {
        pds__mp_pack_cstr(&pk, "secret");
        msgpack_pack_bin(&pk, req->secret_len);
        msgpack_pack_bin_body(&pk, req->secret, req->secret_len);
    }
    return sbuffer_frame(&sb, frame, len);
}

static int parse_op(const char *s, size_t n, enum pds_req_op *op)
{
    int i;

    for (i = PDS_REQ_PUT; i <= PDS_REQ_LAST; i++) {
        if (strlen(op_names[i]) == n && memcmp(op_names[i], s, n) == 0) {
            *op = (enum pds_req_op)i;
            return 0;
        }
    }
    return PDS_EPROTO;
}

int pds_request_decode(const uint8_t *buf,
                       size_t len,
                       struct pds_request *req,
                       char *errmsg)
{
    msgpack_unpacked *up;
    const msgpack_object *m;
    struct pds_request r;
    const char *s;
    size_t n;
    size_t off = 0;
    uint64_t u;
    int need_owner, need_item, need_value;

    up = malloc(sizeof(*up));
    if (up == NULL) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "out of memory");
        return PDS_ENOMEM;
    }
    msgpack_unpacked_init(up);
    if (pds__mp_check(buf, len) != 0 ||
        msgpack_unpack_next(up, (const char *)buf, len, &off) !=
            MSGPACK_UNPACK_SUCCESS) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "request is not valid msgpack");
        goto err_after_unpacked;
    }
    if (off != len) {
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "request has %zu trailing bytes after its message", len - off);
        goto err_after_unpacked;
    }
    m = &up->data;
    if (m->type != MSGPACK_OBJECT_MAP) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "request is not a map");
        goto err_after_unpacked;
    }
    memset(&r, 0, sizeof(r));
    if (pds__mp_uint(m, "id", &r.id) != 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "request has no integer \"id\"");
        goto err_after_unpacked;
    }
    if (pds__mp_str(m, "op", &s, &n) != 0 || parse_op(s, n, &r.op) != 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "request has no \"op\" or an unknown one");
        goto err_after_unpacked;
    }
    if (pds__mp_uint(m, "v", &u) == 0 && u > PDS_LOCAL_PROTOCOL) {
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "client speaks local protocol %llu, this node speaks %d: "
                 "upgrade pdsyncd",
                 (unsigned long long)u, PDS_LOCAL_PROTOCOL);
        goto err_after_unpacked;
    }
    need_owner = r.op == PDS_REQ_PUT || r.op == PDS_REQ_GET ||
                 r.op == PDS_REQ_DEL || r.op == PDS_REQ_DELETE_USER;
    need_item = r.op == PDS_REQ_PUT || r.op == PDS_REQ_GET ||
                r.op == PDS_REQ_DEL || r.op == PDS_REQ_SCOPE_SET;
    need_value = r.op == PDS_REQ_PUT;
    if (pds__mp_get(m, "owner") != NULL || need_owner) {
        if (pds__mp_str(m, "owner", &r.owner, &r.owner_len) != 0 ||
            pds__mp_scope(m, &r.scope) != 0) {
            snprintf(errmsg, PDS_ERRMSG_SIZE,
                     "%s request needs string \"owner\" and \"scope\" "
                     "(user or group)",
                     pds_req_op_name(r.op));
            goto err_after_unpacked;
        }
    }
    if (need_item && pds__mp_str(m, "item", &r.item, &r.item_len) != 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "%s request needs string \"item\"",
                 pds_req_op_name(r.op));
        goto err_after_unpacked;
    }
    if (need_value && pds__mp_bin(m, "value", &r.value, &r.value_len) != 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "put request needs binary \"value\"");
        goto err_after_unpacked;
    }
    if (pds__mp_get(m, "target") != NULL &&
        pds__mp_str(m, "target", &r.target, &r.target_len) != 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "\"target\" is not a string");
        goto err_after_unpacked;
    }
    if (pds__mp_get(m, "name") != NULL &&
        pds__mp_str(m, "name", &r.name, &r.name_len) != 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "\"name\" is not a string");
        goto err_after_unpacked;
    }
    if (pds__mp_get(m, "secret") != NULL &&
        pds__mp_bin(m, "secret", &r.secret, &r.secret_len) != 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "\"secret\" is not binary");
        goto err_after_unpacked;
    }
    if ((r.op == PDS_REQ_CLIENT_START || r.op == PDS_REQ_CLIENTS_STOP ||
         r.op == PDS_REQ_CLIENTS_START ||
         r.op == PDS_REQ_REPLICATION_START || r.op == PDS_REQ_SCOPE_SET) &&
        r.target == NULL) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "%s request needs \"target\"",
                 pds_req_op_name(r.op));
        goto err_after_unpacked;
    }
    if ((r.op == PDS_REQ_CLIENT_START || r.op == PDS_REQ_ADMIN_PASSWORD) &&
        r.secret == NULL) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "%s request needs \"secret\"",
                 pds_req_op_name(r.op));
        goto err_after_unpacked;
    }
    if (pds__mp_get(m, "limit") != NULL) {
        if (pds__mp_uint(m, "limit", &u) != 0 || u > UINT32_MAX) {
            snprintf(errmsg, PDS_ERRMSG_SIZE, "\"limit\" is not a uint32");
            goto err_after_unpacked;
        }
        r.limit = (uint32_t)u;
    }
    r.priv = up;
    *req = r;
    return 0;

err_after_unpacked:
    msgpack_unpacked_destroy(up);
    free(up);
    return PDS_EPROTO;
}

void pds_request_free(struct pds_request *req)
{
    msgpack_unpacked *up = req->priv;

    if (up != NULL) {
        msgpack_unpacked_destroy(up);
        free(up);
    }
    req->priv = NULL;
}

/* ---- Replies ---------------------------------------------------------- */

struct pds_reply_buf {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int has_fields;
};

struct pds_reply_buf *pds_reply_new(uint64_t id, int rc, const char *err)
{
    struct pds_reply_buf *rb = malloc(sizeof(*rb));

    if (rb == NULL)
        return NULL;
    msgpack_sbuffer_init(&rb->sb);
    msgpack_packer_init(&rb->pk, &rb->sb, msgpack_sbuffer_write);
    rb->has_fields = 0;
    msgpack_sbuffer_write(&rb->sb, "\0\0\0\0", 4);
    /* id, rc, err, and at most one op-specific field group ("data"). */
    msgpack_pack_map(&rb->pk, 4);
    pds__mp_pack_cstr(&rb->pk, "id");
    msgpack_pack_uint64(&rb->pk, id);
    pds__mp_pack_cstr(&rb->pk, "rc");
    msgpack_pack_int(&rb->pk, rc);
    pds__mp_pack_cstr(&rb->pk, "err");
    pds__mp_pack_cstr(&rb->pk, err != NULL ? err : "");
    pds__mp_pack_cstr(&rb->pk, "data");
    return rb;
}

static void pack_version(msgpack_packer *pk, const struct pds_version *v)
{
    pds__mp_pack_cstr(pk, "hlc");
    msgpack_pack_uint64(pk, v->hlc);
    pds__mp_pack_cstr(pk, "node");
    msgpack_pack_uint64(pk, v->node);
}

int pds_reply_write(struct pds_reply_buf *rb,
                    const struct pds_write_result *res)
{
    msgpack_packer *pk = &rb->pk;

    rb->has_fields = 1;
    msgpack_pack_map(pk, 6);
    pds__mp_pack_cstr(pk, "epoch");
    msgpack_pack_uint64(pk, res->epoch);
    pds__mp_pack_cstr(pk, "index");
    msgpack_pack_uint64(pk, res->index);
    pack_version(pk, &res->version);
    pds__mp_pack_cstr(pk, "queued");
    msgpack_pack_uint64(pk, res->queued);
    pds__mp_pack_cstr(pk, "outcome");
    msgpack_pack_uint64(pk, (uint64_t)res->outcome);
    return 0;
}

static void pack_item(msgpack_packer *pk, const struct pds_item *it)
{
    msgpack_pack_map(pk, 6);
    pds__mp_pack_cstr(pk, "scope");
    pds__mp_pack_cstr(pk, scope_name(it->scope));
    pds__mp_pack_cstr(pk, "owner");
    pds__mp_pack_str(pk, it->owner, it->owner_len);
    pds__mp_pack_cstr(pk, "item");
    pds__mp_pack_str(pk, it->item, it->item_len);
    pds__mp_pack_cstr(pk, "value");
    msgpack_pack_bin(pk, it->value_len);
    msgpack_pack_bin_body(pk, it->value, it->value_len);
    pack_version(pk, &it->version);
}

int pds_reply_get(struct pds_reply_buf *rb, const struct pds_item *item)
{
    rb->has_fields = 1;
    pack_item(&rb->pk, item);
    return 0;
}

int pds_reply_list(struct pds_reply_buf *rb,
                   const struct pds_item *items,
                   size_t n_items)
{
    size_t i;

    rb->has_fields = 1;
    msgpack_pack_array(&rb->pk, n_items);
    for (i = 0; i < n_items; i++)
        pack_item(&rb->pk, &items[i]);
    return 0;
}

int pds_reply_users(struct pds_reply_buf *rb,
                    const struct pds_user *users,
                    size_t n_users)
{
    msgpack_packer *pk = &rb->pk;
    size_t i;

    rb->has_fields = 1;
    msgpack_pack_array(pk, n_users);
    for (i = 0; i < n_users; i++) {
        msgpack_pack_map(pk, 3);
        pds__mp_pack_cstr(pk, "scope");
        pds__mp_pack_cstr(pk, scope_name(users[i].scope));
        pds__mp_pack_cstr(pk, "owner");
        pds__mp_pack_str(pk, users[i].owner, users[i].owner_len);
        pds__mp_pack_cstr(pk, "last_used");
        msgpack_pack_uint64(pk, users[i].last_used);
    }
    return 0;
}

#define PACK_U64(pk, st, field)                                                \
    do {                                                                       \
        pds__mp_pack_cstr(pk, #field);                                         \
        msgpack_pack_uint64(pk, (st)->field);                                  \
    } while (0)

int pds_reply_status(struct pds_reply_buf *rb, const struct pds_status *st)
{
    msgpack_packer *pk = &rb->pk;

    rb->has_fields = 1;
    msgpack_pack_map(pk, 36);
    pds__mp_pack_cstr(pk, "role");
    pds__mp_pack_cstr(pk, st->role != NULL ? st->role : "");
    PACK_U64(pk, st, node_id);
    PACK_U64(pk, st, epoch);
    PACK_U64(pk, st, last_epoch);
    PACK_U64(pk, st, last_index);
    PACK_U64(pk, st, n_records);
    PACK_U64(pk, st, n_users);
    PACK_U64(pk, st, n_groups);
    PACK_U64(pk, st, n_log);
    PACK_U64(pk, st, n_clamps);
    PACK_U64(pk, st, bytes_used);
    PACK_U64(pk, st, budget);
    PACK_U64(pk, st, max_users);
    PACK_U64(pk, st, pid);
    PACK_U64(pk, st, n_commits);
    PACK_U64(pk, st, n_committed);
    PACK_U64(pk, st, n_machines);
    PACK_U64(pk, st, max_machines);
    PACK_U64(pk, st, reclaim_after_s);
    PACK_U64(pk, st, server_last);
    PACK_U64(pk, st, n_outbox);
    PACK_U64(pk, st, n_rejected);
    PACK_U64(pk, st, n_lost);
    PACK_U64(pk, st, n_superseded);
    PACK_U64(pk, st, n_clamped);
    pds__mp_pack_cstr(pk, "outbox_error");
    pds__mp_pack_cstr(pk, st->outbox_error != NULL ? st->outbox_error : "");
    pds__mp_pack_cstr(pk, "group");
    pds__mp_pack_cstr(pk, st->group != NULL ? st->group : "");
    pds__mp_pack_cstr(pk, "listen");
    pds__mp_pack_cstr(pk, st->listen != NULL ? st->listen : "");
    pds__mp_pack_cstr(pk, "server");
    pds__mp_pack_cstr(pk, st->server != NULL ? st->server : "");
    pds__mp_pack_cstr(pk, "link");
    pds__mp_pack_cstr(pk, st->link != NULL ? st->link : "");
    pds__mp_pack_cstr(pk, "last_error");
    pds__mp_pack_cstr(pk, st->last_error != NULL ? st->last_error : "");
    pds__mp_pack_cstr(pk, "cipher");
    pds__mp_pack_cstr(pk, st->cipher != NULL ? st->cipher : "");
    pds__mp_pack_cstr(pk, "standby");
    pds__mp_pack_cstr(pk, st->standby != NULL ? st->standby : "");
    pds__mp_pack_cstr(pk, "ack_mode");
    pds__mp_pack_cstr(pk, st->ack_mode != NULL ? st->ack_mode : "");
    pds__mp_pack_cstr(pk, "data_dir");
    pds__mp_pack_cstr(pk, st->data_dir != NULL ? st->data_dir : "");
    pds__mp_pack_cstr(pk, "version");
    pds__mp_pack_cstr(pk, st->version != NULL ? st->version : "");
    return 0;
}

int pds_reply_log(struct pds_reply_buf *rb,
                  const char *const *lines,
                  size_t n_lines)
{
    size_t i;

    rb->has_fields = 1;
    msgpack_pack_array(&rb->pk, n_lines);
    for (i = 0; i < n_lines; i++)
        pds__mp_pack_cstr(&rb->pk, lines[i]);
    return 0;
}

int pds_reply_members(struct pds_reply_buf *rb,
                      const struct pds_member *members,
                      size_t n_members,
                      uint64_t now)
{
    msgpack_packer *pk = &rb->pk;
    size_t i;

    rb->has_fields = 1;
    msgpack_pack_array(pk, n_members);
    for (i = 0; i < n_members; i++) {
        const struct pds_member *m = &members[i];
        msgpack_pack_map(pk, 20);
        pds__mp_pack_cstr(pk, "following");
        msgpack_pack_uint64(pk, m->is_following ? 1 : 0);
        pds__mp_pack_cstr(pk, "sent");
        msgpack_pack_uint64(pk, m->sent);
        pds__mp_pack_cstr(pk, "lag_bytes");
        msgpack_pack_uint64(pk, m->lag_bytes);
        pds__mp_pack_cstr(pk, "lag_ms");
        msgpack_pack_uint64(pk, m->lag_ms);
        pds__mp_pack_cstr(pk, "sync");
        pds__mp_pack_cstr(pk, m->sync);
        /* A follower's live position (nil for the others: an older
         * pdsync takes a position for following); as its last connection
         * left it, for the others. */
        pds__mp_pack_cstr(pk, "position");
        if (m->is_following)
            msgpack_pack_uint64(pk, m->position);
        else
            msgpack_pack_nil(pk);
        pds__mp_pack_cstr(pk, "last_position");
        msgpack_pack_uint64(pk, m->position);
        pds__mp_pack_cstr(pk, "lag");
        if (m->is_following)
            msgpack_pack_uint64(pk, now > m->position ? now - m->position
                                                      : 0);
        else
            msgpack_pack_nil(pk);
        pds__mp_pack_cstr(pk, "id");
        msgpack_pack_uint64(pk, m->id);
        pds__mp_pack_cstr(pk, "state");
        pds__mp_pack_cstr(pk, m->state == PDS_MEMBER_STOPPED ? "stopped"
                              : m->is_connected             ? "connected"
                                                            : "disconnected");
        pds__mp_pack_cstr(pk, "first_enrolled");
        msgpack_pack_uint64(pk, m->first_enrolled);
        pds__mp_pack_cstr(pk, "last_seen");
        msgpack_pack_uint64(pk, m->last_seen);
        pds__mp_pack_cstr(pk, "name");
        pds__mp_pack_cstr(pk, m->name);
        pds__mp_pack_cstr(pk, "product");
        pds__mp_pack_cstr(pk, m->product);
        pds__mp_pack_cstr(pk, "location");
        pds__mp_pack_cstr(pk, m->location);
        pds__mp_pack_cstr(pk, "address");
        pds__mp_pack_cstr(pk, m->address);
        pds__mp_pack_cstr(pk, "version");
        pds__mp_pack_cstr(pk, m->version);
        pds__mp_pack_cstr(pk, "last_error");
        pds__mp_pack_cstr(pk, m->last_error);
        pds__mp_pack_cstr(pk, "pk");
        msgpack_pack_bin(pk, PDS_KEY_BYTES);
        msgpack_pack_bin_body(pk, m->pk, PDS_KEY_BYTES);
        pds__mp_pack_cstr(pk, "counted");
        if (m->state == PDS_MEMBER_ENROLLED)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
    }
    return 0;
}

int pds_reply_server_started(struct pds_reply_buf *rb,
                             const struct pds_server_started *st)
{
    msgpack_packer *pk = &rb->pk;

    rb->has_fields = 1;
    msgpack_pack_map(pk, 3);
    pds__mp_pack_cstr(pk, "group");
    pds__mp_pack_cstr(pk, st->group);
    pds__mp_pack_cstr(pk, "secret");
    pds__mp_pack_cstr(pk, st->secret != NULL ? st->secret : "");
    pds__mp_pack_cstr(pk, "listen");
    pds__mp_pack_cstr(pk, st->listen != NULL ? st->listen : "");
    return 0;
}

int pds_reply_take(struct pds_reply_buf *rb, uint8_t **frame, size_t *len)
{
    int rv;

    if (!rb->has_fields)
        msgpack_pack_nil(&rb->pk);
    rv = sbuffer_frame(&rb->sb, frame, len);
    free(rb);
    return rv;
}
