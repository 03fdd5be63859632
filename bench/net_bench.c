/*
 * pds_net_bench - the cost of pdsync's link security on loopback TCP:
 *   1. handshake time: connect, hellos, key derivation, stream headers and
 *      one encrypted round trip, median and p99 of --handshakes runs;
 *   2. a stream of 256-byte messages as pdsync's transport sends them:
 *      each message length-prefixed, the messages of a turn (up to
 *      64 KiB) sealed together as one frame of the link's AEAD; against
 *      the same length-prefixed messages in plain TCP. "raw" moves the
 *      bytes only; "node" also encodes and decodes every message with
 *      msgpack, as a node does.
 * The four streams run in --rounds interleaved rounds, so that a slow
 * moment of a shared machine hits both sides of a ratio; the summary is
 * the median of the rounds' ratios. Prints one JSON line per result.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../net/net.h"
#include "../net/peer.h"
#include "../net/secure.h"

#define MSG 256

static const char *cipher = "";

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int listen_any(int *port)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
        return -1;
    *port = ntohs(sa.sin_port);
    return fd;
}

static int dial(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((unsigned short)port);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static int read_all(int fd, uint8_t *b, size_t n)
{
    while (n > 0) {
        ssize_t got = recv(fd, b, n, 0);
        if (got <= 0)
            return -1;
        b += got;
        n -= (size_t)got;
    }
    return 0;
}

static int write_all(int fd, const uint8_t *b, size_t n)
{
    while (n > 0) {
        ssize_t put = send(fd, b, n, MSG_NOSIGNAL);
        if (put <= 0)
            return -1;
        b += put;
        n -= (size_t)put;
    }
    return 0;
}

static int send_frame(int fd, const uint8_t *body, size_t len)
{
    uint8_t hdr[4];

    pds_put_u32be(hdr, (uint32_t)len);
    return write_all(fd, hdr, 4) || write_all(fd, body, len) ? -1 : 0;
}

static int recv_frame(int fd, uint8_t *body, size_t cap, size_t *len)
{
    uint8_t hdr[4];

    if (read_all(fd, hdr, 4) != 0)
        return -1;
    *len = pds_get_u32be(hdr);
    if (*len > cap)
        return -1;
    return read_all(fd, body, *len);
}

/* One side of the handshake on a blocking socket: the library's. */
static int handshake(int fd,
                     const struct pds_identity *id,
                     int initiator,
                     struct pds_session *s)
{
    char errmsg[PDS_ERRMSG_SIZE] = "";

    return pds_client_handshake(fd, id, initiator, s, errmsg);
}

struct server_arg {
    int lfd;
    int n;
    int encrypted;
    int node_path; /* decode every message as a node does */
    long frames;
    struct pds_identity id;
};

/* Handshake server: answer n handshakes, each with one encrypted echo. */
static void *hs_server(void *p)
{
    struct server_arg *a = p;
    uint8_t buf[512], pt[512];
    size_t len, n;
    int i;

    for (i = 0; i < a->n; i++) {
        struct pds_session s;
        int fd = accept(a->lfd, NULL, NULL);
        int one = 1;
        if (fd >= 0)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (fd < 0 || handshake(fd, &a->id, 0, &s) != 0 ||
            recv_frame(fd, buf, sizeof(buf), &len) != 0 ||
            pds_session_open(&s, buf, len, pt, &n) != 0)
            exit(1);
        pds_session_seal(&s, pt, n, buf);
        send_frame(fd, buf, n + PDS_STREAM_ABYTES);
        pds_session_wipe(&s);
        close(fd);
    }
    return NULL;
}

static int decode_one(const uint8_t *b, size_t n)
{
    struct pds_msg m;
    char errmsg[PDS_ERRMSG_SIZE];

    if (pds_msg_decode(b, n, &m, errmsg) != 0)
        return -1;
    pds_msg_free(&m);
    return 0;
}

/* Stream receiver: read frames, open them when encrypted. */
static void *stream_server(void *p)
{
    struct server_arg *a = p;
    struct pds_session s;
    uint8_t *buf = malloc(1 << 20);
    static uint8_t pt[1 << 17];
    size_t got = 0;
    size_t have = 0;
    int fd = accept(a->lfd, NULL, NULL);

    if (fd < 0 || buf == NULL ||
        (a->encrypted && handshake(fd, &a->id, 0, &s) != 0))
        exit(1);
    for (;;) {
        ssize_t r = recv(fd, buf + have, (1 << 20) - have, 0);
        size_t off = 0;
        if (r <= 0)
            break;
        have += (size_t)r;
        while (have - off >= 4) {
            size_t len = pds_get_u32be(buf + off);
            size_t n;
            if (have - off - 4 < len)
                break;
            if (a->encrypted) {
                size_t k = 0;
                if (pds_session_open(&s, buf + off + 4, len, pt, &n) != 0)
                    exit(1);
                while (k + 4 <= n) {
                    size_t mlen = pds_get_u32be(pt + k);
                    if (a->node_path && decode_one(pt + k + 4, mlen) != 0)
                        exit(1);
                    k += 4 + mlen;
                    got++;
                }
            } else {
                if (a->node_path && decode_one(buf + off + 4, len) != 0)
                    exit(1);
                got++;
            }
            off += 4 + len;
        }
        memmove(buf, buf + off, have - off);
        have -= off;
    }
    a->frames = (long)got;
    if (a->encrypted)
        pds_session_wipe(&s);
    close(fd);
    free(buf);
    return NULL;
}

static int cmp_d(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;

    return a < b ? -1 : a > b;
}

/* Seal the fill bytes of inner as one length-prefixed frame in out;
 * returns the frame's length. */
static size_t seal_batch(struct pds_session *s,
                         const uint8_t *inner,
                         size_t fill,
                         uint8_t *out)
{
    size_t body = fill + PDS_STREAM_ABYTES;

    pds_put_u32be(out, (uint32_t)body);
    pds_session_seal(s, inner, fill, out + 4);
    return 4 + body;
}

/* Send frames for `seconds`, coalesced into 64 KiB writes. */
static double stream(int encrypted, int node_path, double seconds, long *frames)
{
    struct server_arg a;
    struct pds_identity me;
    struct pds_session s;
    pthread_t t;
    uint8_t msg[MSG];
    static uint8_t batch[65536];
    static uint8_t inner[65536];
    size_t fill = 0;
    double t0, t1;
    long sent = 0;
    int port;
    int fd;

    memset(&a, 0, sizeof(a));
    a.lfd = listen_any(&port);
    a.encrypted = encrypted;
    a.node_path = node_path;
    crypto_kx_keypair(a.id.pk, a.id.sk);
    crypto_kx_keypair(me.pk, me.sk);
    pthread_create(&t, NULL, stream_server, &a);
    fd = dial(port);
    if (fd < 0 || (encrypted && handshake(fd, &me, 1, &s) != 0))
        exit(1);
    if (encrypted)
        cipher = pds_session_cipher(&s);
    memset(msg, 'm', sizeof(msg));
    t0 = now_s();
    t1 = t0 + seconds;
    while (now_s() < t1) {
        int k;
        for (k = 0; k < 64; k++) {
            uint8_t *p = (encrypted ? inner : batch) + fill;
            p[0] = 0;
            p[1] = 0;
            p[2] = (uint8_t)(MSG >> 8);
            p[3] = (uint8_t)MSG;
            if (node_path) {
                /* A message encoded as the node encodes it: 256 bytes. */
                struct pds_msg m;
                uint8_t *enc;
                size_t enc_len;
                memset(&m, 0, sizeof(m));
                m.type = PDS_MSG_ADMIN_REPLY;
                m.blob = msg;
                m.blob_len = MSG - 28; /* with the type and "se" */
                if (pds_msg_encode(&m, &enc, &enc_len) != 0 || enc_len > MSG)
                    exit(1);
                memcpy(p + 4, enc, enc_len);
                memset(p + 4 + enc_len, 0xc0, MSG - enc_len);
                free(enc);
                /* The decoder refuses trailing bytes: send the exact
                 * length. */
                p[2] = (uint8_t)(enc_len >> 8);
                p[3] = (uint8_t)enc_len;
                fill += 4 + enc_len;
            } else {
                memcpy(p + 4, msg, MSG);
                fill += 4 + MSG;
            }
            sent++;
            if (fill + 4 + MSG > sizeof(batch) - 4 - PDS_STREAM_ABYTES) {
                if (encrypted) {
                    write_all(fd, batch, seal_batch(&s, inner, fill, batch));
                } else {
                    write_all(fd, batch, fill);
                }
                fill = 0;
            }
        }
    }
    if (fill > 0 && encrypted)
        fill = seal_batch(&s, inner, fill, batch);
    write_all(fd, batch, fill);
    shutdown(fd, SHUT_WR);
    pthread_join(t, NULL);
    t1 = now_s() - t0;
    if (encrypted)
        pds_session_wipe(&s);
    close(fd);
    close(a.lfd);
    if (a.frames != sent)
        exit(1);
    *frames = sent;
    return t1;
}

int main(int argc, char **argv)
{
    double seconds = 3;
    int rounds = 5;
    int n_hs = 200;
    struct server_arg a;
    struct pds_identity me;
    double *hs_ms;
    pthread_t t;
    int port;
    int i;
    int opt;

    while ((opt = getopt(argc, argv, "s:n:r:h")) != -1) {
        if (opt == 's')
            seconds = atof(optarg);
        else if (opt == 'n')
            n_hs = atoi(optarg);
        else if (opt == 'r')
            rounds = atoi(optarg);
        else {
            fprintf(stderr, "usage: pds_net_bench [-s SECONDS per stream] "
                            "[-n HANDSHAKES] [-r ROUNDS]\n");
            return opt == 'h' ? 0 : 2;
        }
    }
    if (sodium_init() < 0 || seconds <= 0 || n_hs < 1 || rounds < 1)
        return 2;
    hs_ms = calloc((size_t)n_hs, sizeof(*hs_ms));
    memset(&a, 0, sizeof(a));
    a.lfd = listen_any(&port);
    a.n = n_hs;
    crypto_kx_keypair(a.id.pk, a.id.sk);
    crypto_kx_keypair(me.pk, me.sk);
    pthread_create(&t, NULL, hs_server, &a);
    for (i = 0; i < n_hs; i++) {
        struct pds_session s;
        uint8_t ct[64], pt[64];
        size_t len, n;
        double t0 = now_s();
        int fd = dial(port);
        if (fd < 0 || handshake(fd, &me, 1, &s) != 0)
            return 1;
        pds_session_seal(&s, (const uint8_t *)"ping", 4, ct);
        if (send_frame(fd, ct, 4 + PDS_STREAM_ABYTES) != 0 ||
            recv_frame(fd, ct, sizeof(ct), &len) != 0 ||
            pds_session_open(&s, ct, len, pt, &n) != 0)
            return 1;
        hs_ms[i] = (now_s() - t0) * 1e3;
        pds_session_wipe(&s);
        close(fd);
    }
    pthread_join(t, NULL);
    close(a.lfd);
    qsort(hs_ms, (size_t)n_hs, sizeof(*hs_ms), cmp_d);
    printf("{\"bench\":\"handshake\",\"runs\":%d,\"p50_ms\":%.3f,"
           "\"p99_ms\":%.3f}\n",
           n_hs, hs_ms[n_hs / 2], hs_ms[(int)(n_hs * 0.99)]);
    {
        /* time and messages of each stream: [raw plain, raw encrypted,
         * node plain, node encrypted] */
        double tt[4] = {0, 0, 0, 0};
        long n[4] = {0, 0, 0, 0};
        double *raw_ratio = calloc((size_t)rounds, sizeof(double));
        double *node_ratio = calloc((size_t)rounds, sizeof(double));
        static const char *names[4] = {"stream_plain", "stream_encrypted",
                                       "node_plain", "node_encrypted"};
        int r, k;
        for (r = 0; r < rounds; r++) {
            double rt[4];
            long rn[4];
            for (k = 0; k < 4; k++) {
                rt[k] = stream(k & 1, k >> 1, seconds / rounds, &rn[k]);
                tt[k] += rt[k];
                n[k] += rn[k];
            }
            raw_ratio[r] = (rn[1] / rt[1]) / (rn[0] / rt[0]);
            node_ratio[r] = (rn[3] / rt[3]) / (rn[2] / rt[2]);
            printf("{\"bench\":\"round\",\"round\":%d,"
                   "\"raw_encrypted_vs_plain\":%.3f,"
                   "\"node_encrypted_vs_plain\":%.3f}\n",
                   r + 1, raw_ratio[r], node_ratio[r]);
        }
        for (k = 0; k < 4; k++)
            printf("{\"bench\":\"%s\",\"msg_bytes\":%d,"
                   "\"frames_per_s\":%.0f,\"mb_per_s\":%.1f}\n",
                   names[k], MSG, n[k] / tt[k],
                   n[k] * (double)MSG / tt[k] / 1e6);
        qsort(raw_ratio, (size_t)rounds, sizeof(double), cmp_d);
        qsort(node_ratio, (size_t)rounds, sizeof(double), cmp_d);
        printf("{\"bench\":\"net_summary\",\"cipher\":\"%s\",\"rounds\":%d,"
               "\"raw_encrypted_vs_plain\":%.3f,"
               "\"node_encrypted_vs_plain\":%.3f,\"node_min\":%.3f,"
               "\"node_max\":%.3f,\"target\":0.7}\n",
               cipher, rounds, raw_ratio[rounds / 2], node_ratio[rounds / 2],
               node_ratio[0], node_ratio[rounds - 1]);
        free(raw_ratio);
        free(node_ratio);
    }
    free(hs_ms);
    return 0;
}
