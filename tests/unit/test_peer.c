/*
 * test_peer.c - unit tests of net/peer.c's connections on a real libuv
 * loop over loopback TCP: two pds_net instances, a handshake, and the end
 * of a connection by pds_conn_finish() (what was sent before arrives,
 * nothing is sent or delivered after, on_close once with the reason), and
 * a peer that refuses in place of its stream header.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "peer.h"
#include "secure.h"
#include "test.h"

struct end {
    struct pds_net *net;
    struct pds_identity id;
    int n_open;
    int n_close;
    char close_error[PDS_ERRMSG_SIZE];
    int n_notice;
    char notice[PDS_ERRMSG_SIZE];
    int n_other;
    /* The accepting end: what finishing did. */
    int is_acceptor;
    int send_after_finish;
};

static struct end server_end, client_end;
static uv_timer_t guard;
static int timed_out;

static void on_open(void *arg, struct pds_conn *c)
{
    struct end *e = arg;
    struct pds_msg m;

    e->n_open++;
    if (!e->is_acceptor)
        return;
    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_NOTICE;
    snprintf(m.err, sizeof(m.err), "%s", "the server is leaving you");
    if (pds_conn_send(c, &m) != 0)
        abort();
    pds_conn_finish(c, "dropped: the server is leaving you");
    /* From now on nothing more goes; finishing again does nothing. */
    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_PING;
    e->send_after_finish = pds_conn_send(c, &m);
    pds_conn_finish(c, "a second reason");
}

static void on_message(void *arg, struct pds_conn *c, struct pds_msg *m)
{
    struct end *e = arg;

    (void)c;
    if (m->type == PDS_MSG_NOTICE) {
        e->n_notice++;
        snprintf(e->notice, sizeof(e->notice), "%s", m->err);
    } else if (m->type != PDS_MSG_PING && m->type != PDS_MSG_PONG) {
        e->n_other++;
    }
}

static void on_close(void *arg, struct pds_conn *c, const char *error)
{
    struct end *e = arg;

    (void)c;
    e->n_close++;
    snprintf(e->close_error, sizeof(e->close_error), "%s",
             error != NULL ? error : "(none)");
    if (server_end.n_close > 0 && client_end.n_close > 0)
        uv_timer_stop(&guard);
}

static void on_guard(uv_timer_t *t)
{
    (void)t;
    timed_out = 1;
}

static int make_end(uv_loop_t *loop, struct end *e, int is_acceptor)
{
    static const struct pds_net_callbacks cb = {on_open, on_message, on_close};
    struct pds_net_config cfg;

    memset(e, 0, sizeof(*e));
    e->is_acceptor = is_acceptor;
    crypto_kx_keypair(e->id.pk, e->id.sk);
    memset(&cfg, 0, sizeof(cfg));
    cfg.id = &e->id;
    cfg.heartbeat_ms = 100;
    cfg.dead_ms = 1000;
    cfg.version = "test";
    return pds_net_new(loop, &cfg, &cb, e, &e->net);
}

TEST(finish_delivers_what_was_sent_then_closes_once_with_its_reason)
{
    uv_loop_t loop;
    char bound[64], errmsg[PDS_ERRMSG_SIZE];
    uint64_t id;

    CHECK(sodium_init() >= 0);
    CHECK_EQ(uv_loop_init(&loop), 0);
    CHECK_EQ(make_end(&loop, &server_end, 1), 0);
    CHECK_EQ(make_end(&loop, &client_end, 0), 0);
    CHECK_EQ(pds_net_listen(server_end.net, "127.0.0.1:0", bound, errmsg), 0);
    CHECK_EQ(pds_net_connect(client_end.net, bound, &id, errmsg), 0);
    /* Bounded: the test fails rather than hangs. */
    CHECK_EQ(uv_timer_init(&loop, &guard), 0);
    CHECK_EQ(uv_timer_start(&guard, on_guard, 5000, 0), 0);
    while (!timed_out && (server_end.n_close == 0 || client_end.n_close == 0) &&
           uv_run(&loop, UV_RUN_ONCE) >= 0)
        ;
    CHECK(!timed_out);
    CHECK_EQ(server_end.n_open, 1);
    CHECK_EQ(client_end.n_open, 1);
    CHECK_EQ(server_end.send_after_finish, PDS_ECONN);
    /* What was sent before the finish arrived, and nothing after it. */
    CHECK_EQ(client_end.n_notice, 1);
    CHECK_STR(client_end.notice, "the server is leaving you");
    CHECK_EQ(client_end.n_other, 0);
    CHECK_STR(client_end.close_error, "peer closed the connection");
    /* Closed once, with the first reason. */
    CHECK_EQ(server_end.n_close, 1);
    CHECK_STR(server_end.close_error, "dropped: the server is leaving you");
    pds_net_close(server_end.net);
    pds_net_close(client_end.net);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ(uv_loop_close(&loop), 0);
}

/* A raw initiator on a blocking socket: it sends a true hello, reads the
 * acceptor's hello and stream header, then refuses in plaintext where its
 * own header should be. */
struct refuser {
    int port;
    int rv;
};

static int write_frame(int fd, const uint8_t *body, size_t len)
{
    uint8_t hdr[4];

    pds_put_u32be(hdr, (uint32_t)len);
    return write(fd, hdr, 4) == 4 && write(fd, body, len) == (ssize_t)len ? 0
                                                                          : -1;
}

static int read_frame(int fd, uint8_t *body, size_t cap)
{
    uint8_t hdr[4];
    size_t len, got = 0;

    if (recv(fd, hdr, 4, MSG_WAITALL) != 4)
        return -1;
    len = pds_get_u32be(hdr);
    if (len > cap)
        return -1;
    while (got < len) {
        ssize_t r = recv(fd, body + got, len - got, 0);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return (int)len;
}

static void *refuse_after_hello(void *arg)
{
    struct refuser *r = arg;
    struct pds_identity id;
    struct pds_handshake hs;
    struct sockaddr_in sa;
    struct pds_msg m;
    uint8_t buf[512];
    uint8_t *enc;
    size_t enc_len;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    r->rv = -1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)r->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        goto out;
    crypto_kx_keypair(id.pk, id.sk);
    pds_handshake_init(&hs, 1);
    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_HELLO;
    m.version = PDS_PROTOCOL_VERSION;
    m.aead = hs.aead;
    memcpy(m.pk, id.pk, PDS_KEY_BYTES);
    memcpy(m.epk, hs.e_pk, PDS_KEY_BYTES);
    if (pds_msg_encode(&m, &enc, &enc_len) != 0)
        goto out;
    r->rv = write_frame(fd, enc, enc_len);
    free(enc);
    /* The acceptor's hello, then its stream header. */
    if (r->rv != 0 || read_frame(fd, buf, sizeof(buf)) <= 0 ||
        read_frame(fd, buf, sizeof(buf)) != PDS_STREAM_HEADER) {
        r->rv = -1;
        goto out;
    }
    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_REFUSE;
    m.code = PDS_EPERM;
    snprintf(m.err, sizeof(m.err), "%s", "the initiator says no");
    if (pds_msg_encode(&m, &enc, &enc_len) != 0) {
        r->rv = -1;
        goto out;
    }
    r->rv = write_frame(fd, enc, enc_len);
    free(enc);
    /* Wait for the acceptor to close. */
    while (r->rv == 0 && recv(fd, buf, sizeof(buf), 0) > 0)
        ;
out:
    if (fd >= 0)
        close(fd);
    return NULL;
}

TEST(refusal_in_place_of_the_stream_header_is_reported_as_one)
{
    uv_loop_t loop;
    char bound[64], errmsg[PDS_ERRMSG_SIZE];
    struct refuser r;
    pthread_t t;
    const char *colon;

    CHECK(sodium_init() >= 0);
    CHECK_EQ(uv_loop_init(&loop), 0);
    CHECK_EQ(make_end(&loop, &server_end, 1), 0);
    CHECK_EQ(pds_net_listen(server_end.net, "127.0.0.1:0", bound, errmsg), 0);
    colon = strrchr(bound, ':');
    CHECK(colon != NULL);
    r.port = atoi(colon + 1);
    CHECK_EQ(pthread_create(&t, NULL, refuse_after_hello, &r), 0);
    timed_out = 0;
    CHECK_EQ(uv_timer_init(&loop, &guard), 0);
    CHECK_EQ(uv_timer_start(&guard, on_guard, 5000, 0), 0);
    while (!timed_out && server_end.n_close == 0 &&
           uv_run(&loop, UV_RUN_ONCE) >= 0)
        ;
    CHECK(!timed_out);
    CHECK_EQ(server_end.n_open, 0);
    CHECK_EQ(server_end.n_close, 1);
    CHECK(strstr(server_end.close_error, "refused by ") != NULL);
    CHECK(strstr(server_end.close_error, ": the initiator says no") != NULL);
    pds_net_close(server_end.net);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    pthread_join(t, NULL);
    CHECK_EQ(r.rv, 0);
    CHECK_EQ(uv_loop_close(&loop), 0);
}

TEST_MAIN(T(finish_delivers_what_was_sent_then_closes_once_with_its_reason),
          T(refusal_in_place_of_the_stream_header_is_reported_as_one))
