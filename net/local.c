/*
 * local.c - the node's local API server on a libuv Unix-domain socket.
 *
 * Each connection accumulates bytes until a whole frame is there, decodes
 * it and hands the request to the daemon. A malformed frame (bad length,
 * bad msgpack, a request that makes no sense) closes that connection only;
 * the others keep being served.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "net.h"

#define READ_CHUNK (64u * 1024u)

struct pds_local_conn {
    uv_pipe_t pipe;
    struct pds_local_server *server;
    struct pds_local_conn *prev;
    struct pds_local_conn *next;
    int refs;
    int is_closing;
    uint8_t *buf;
    size_t len;
    size_t cap;
    /* A virtual connection (a request that came another way) hands its
     * replies to this callback instead of a socket. */
    pds_local_send_cb send_cb;
    pds_local_release_cb release_cb;
    void *send_arg;
};

struct pds_local_server {
    uv_pipe_t pipe;
    pds_local_request_cb on_request;
    pds_local_error_cb on_error;
    void *arg;
    struct pds_local_conn *conns;
    char path[sizeof(((struct sockaddr_un *)NULL)->sun_path)];
};

struct write_req {
    uv_write_t req;
    uint8_t *frame;
};

static void conn_free(struct pds_local_conn *conn)
{
    if (conn->release_cb != NULL)
        conn->release_cb(conn->send_arg);
    free(conn->buf);
    free(conn);
}

void pds_local_conn_ref(struct pds_local_conn *conn)
{
    conn->refs++;
}

void pds_local_conn_unref(struct pds_local_conn *conn)
{
    if (--conn->refs == 0)
        conn_free(conn);
}

static void on_conn_closed(uv_handle_t *handle)
{
    struct pds_local_conn *conn = handle->data;

    pds_local_conn_unref(conn);
}

static void conn_close(struct pds_local_conn *conn)
{
    struct pds_local_server *server = conn->server;

    if (conn->is_closing)
        return;
    conn->is_closing = 1;
    if (conn->prev != NULL)
        conn->prev->next = conn->next;
    else if (server != NULL)
        server->conns = conn->next;
    if (conn->next != NULL)
        conn->next->prev = conn->prev;
    conn->prev = conn->next = NULL;
    conn->server = NULL;
    uv_close((uv_handle_t *)&conn->pipe, on_conn_closed);
}

static void conn_error(struct pds_local_conn *conn, const char *what)
{
    if (conn->server != NULL && conn->server->on_error != NULL)
        conn->server->on_error(conn->server->arg, what);
    conn_close(conn);
}

static void on_alloc(uv_handle_t *handle, size_t hint, uv_buf_t *buf)
{
    struct pds_local_conn *conn = handle->data;
    size_t want = conn->len + READ_CHUNK;

    (void)hint;
    if (conn->cap < want) {
        uint8_t *p = realloc(conn->buf, want);
        if (p == NULL) {
            buf->base = NULL;
            buf->len = 0;
            return;
        }
        conn->buf = p;
        conn->cap = want;
    }
    buf->base = (char *)conn->buf + conn->len;
    buf->len = conn->cap - conn->len;
}

/* Decode and dispatch every whole frame in the buffer. */
static void conn_process(struct pds_local_conn *conn)
{
    size_t off = 0;
    char errmsg[PDS_ERRMSG_SIZE];
    char what[PDS_ERRMSG_SIZE + 64];

    while (!conn->is_closing && conn->len - off >= 4) {
        const uint8_t *p = conn->buf + off;
        size_t flen = pds_get_u32be(p);
        struct pds_request req;

        if (flen == 0 || flen > PDS_LOCAL_FRAME_MAX) {
            snprintf(what, sizeof(what),
                     "local API: frame of %zu bytes (limit %u): connection "
                     "closed",
                     flen, (unsigned)PDS_LOCAL_FRAME_MAX);
            conn_error(conn, what);
            return;
        }
        if (conn->len - off - 4 < flen)
            break;
        if (pds_request_decode(p + 4, flen, &req, errmsg) != 0) {
            snprintf(what, sizeof(what),
                     "local API: malformed request: %s: connection closed",
                     errmsg);
            conn_error(conn, what);
            return;
        }
        off += 4 + flen;
        pds_local_conn_ref(conn);
        conn->server->on_request(conn->server->arg, conn, &req);
        pds_request_free(&req);
        pds_local_conn_unref(conn);
    }
    if (off > 0 && !conn->is_closing) {
        memmove(conn->buf, conn->buf + off, conn->len - off);
        conn->len -= off;
    }
    /* Do not keep a large buffer around after a large frame. */
    if (!conn->is_closing && conn->len == 0 && conn->cap > 4 * READ_CHUNK) {
        free(conn->buf);
        conn->buf = NULL;
        conn->cap = 0;
    }
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct pds_local_conn *conn = stream->data;

    (void)buf;
    if (nread < 0) {
        if (nread != UV_EOF)
            conn_error(conn, "local API: read error: connection closed");
        else
            conn_close(conn);
        return;
    }
    if (nread == 0)
        return;
    conn->len += (size_t)nread;
    pds_local_conn_ref(conn);
    conn_process(conn);
    pds_local_conn_unref(conn);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct pds_local_server *server = listener->data;
    struct pds_local_conn *conn;

    if (status < 0)
        return;
    conn = calloc(1, sizeof(*conn));
    if (conn == NULL)
        return;
    if (uv_pipe_init(listener->loop, &conn->pipe, 0) != 0) {
        free(conn);
        return;
    }
    conn->pipe.data = conn;
    conn->refs = 1;
    conn->server = server;
    if (uv_accept(listener, (uv_stream_t *)&conn->pipe) != 0 ||
        uv_read_start((uv_stream_t *)&conn->pipe, on_alloc, on_read) != 0) {
        conn->is_closing = 1;
        uv_close((uv_handle_t *)&conn->pipe, on_conn_closed);
        return;
    }
    conn->next = server->conns;
    if (server->conns != NULL)
        server->conns->prev = conn;
    server->conns = conn;
}

static void on_server_closed(uv_handle_t *handle)
{
    free(handle->data);
}

int pds_local_listen(uv_loop_t *loop,
                     const char *path,
                     pds_local_request_cb on_request,
                     pds_local_error_cb on_error,
                     void *arg,
                     struct pds_local_server **out,
                     char *errmsg)
{
    struct pds_local_server *server;
    mode_t old_mask;
    int rv;

    if (strlen(path) >= sizeof(server->path)) {
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "socket path %s is longer than %zu bytes: use a shorter "
                 "data directory",
                 path, sizeof(server->path) - 1);
        return PDS_EINVAL;
    }
    server = calloc(1, sizeof(*server));
    if (server == NULL) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "out of memory");
        return PDS_ENOMEM;
    }
    strcpy(server->path, path);
    server->on_request = on_request;
    server->on_error = on_error;
    server->arg = arg;
    rv = uv_pipe_init(loop, &server->pipe, 0);
    if (rv != 0) {
        free(server);
        snprintf(errmsg, PDS_ERRMSG_SIZE, "socket: %s", uv_strerror(rv));
        return PDS_EIO;
    }
    server->pipe.data = server;
    /* A socket file left by a node that died is stale: the daemon holds
     * the data directory's lock, so no live node owns it. */
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "remove stale socket %s: %s", path,
                 strerror(errno));
        rv = PDS_EIO;
        goto err_after_init;
    }
    old_mask = umask(0077);
    rv = uv_pipe_bind(&server->pipe, path);
    umask(old_mask);
    if (rv == 0)
        rv = chmod(path, 0600) == 0 ? 0 : uv_translate_sys_error(errno);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&server->pipe, 128, on_connection);
    if (rv != 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "listen on %s: %s", path,
                 uv_strerror(rv));
        rv = rv == UV_EADDRINUSE ? PDS_EBUSY : PDS_EIO;
        goto err_after_init;
    }
    *out = server;
    return 0;

err_after_init:
    uv_close((uv_handle_t *)&server->pipe, on_server_closed);
    return rv;
}

void pds_local_close(struct pds_local_server *server)
{
    while (server->conns != NULL)
        conn_close(server->conns);
    unlink(server->path);
    uv_close((uv_handle_t *)&server->pipe, on_server_closed);
}

static void on_written(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;

    (void)status;
    free(w->frame);
    free(w);
}

struct pds_local_conn *pds_local_conn_virtual(pds_local_send_cb cb,
                                              pds_local_release_cb release,
                                              void *arg)
{
    struct pds_local_conn *conn = calloc(1, sizeof(*conn));

    if (conn == NULL)
        return NULL;
    conn->refs = 1;
    conn->send_cb = cb;
    conn->release_cb = release;
    conn->send_arg = arg;
    return conn;
}

void pds_local_send(struct pds_local_conn *conn, uint8_t *frame, size_t len)
{
    struct write_req *w;
    uv_buf_t buf;
    int done;

    if (conn->send_cb != NULL) {
        conn->send_cb(conn->send_arg, frame, len);
        return;
    }
    if (conn->is_closing)
        goto drop;
    /* Most answers fit the socket at once: writing them directly spares
     * the loop a write request and a poll change per answer. What does
     * not fit is queued behind, in order. */
    buf = uv_buf_init((char *)frame, (unsigned int)len);
    done = uv_try_write((uv_stream_t *)&conn->pipe, &buf, 1);
    if (done == (int)len)
        goto drop;
    if (done < 0 && done != UV_EAGAIN) {
        conn_close(conn);
        goto drop;
    }
    if (done > 0)
        buf = uv_buf_init((char *)frame + done,
                          (unsigned int)(len - (size_t)done));
    w = malloc(sizeof(*w));
    if (w == NULL) {
        conn_close(conn);
        goto drop;
    }
    w->frame = frame;
    if (uv_write(&w->req, (uv_stream_t *)&conn->pipe, &buf, 1, on_written) !=
        0) {
        free(w);
        conn_close(conn);
        goto drop;
    }
    return;

drop:
    free(frame);
}
