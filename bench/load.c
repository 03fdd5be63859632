/*
 * pds_load - a load generator for a pdsync node's local API.
 *
 * N writers, each with its own connection and one put outstanding, put
 * values of B bytes as fast as the node acknowledges them, for S seconds or
 * N puts in all. The writers are driven by T threads (1 by default), each
 * waiting with epoll on its share of the connections, as redis-benchmark
 * does: a thread per writer would spend the machine's cores on the load
 * generator's own wake-ups. Prints one JSON line: throughput and
 * p50/p99/max latency.
 *
 * With --acked FILE every acknowledged put is appended to FILE (flushed
 * before the next put), so a crash test can check that each one survived;
 * a failed put then ends that writer quietly (the node may be gone).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "../net/net.h"

struct load {
    const char *socket;
    int writers;
    int threads;
    double seconds;
    long count; /* total puts, 0 = until seconds */
    size_t value_size;
    int users;
    const char *prefix;
    FILE *acked;
    pthread_mutex_t lock;
    long issued; /* puts handed out, under lock (with count) */
    double t_end;
};

struct writer {
    struct load *load;
    int id;
    struct pds_client *c; /* NULL once done */
    long seq;             /* the put outstanding */
    double t0;            /* when it was sent */
    char owner[64];
    char item[64];
    char prefix[48];
    size_t prefix_len;
    uint8_t *value;
    uint32_t *lat_us; /* latencies of this writer's puts */
    size_t n_lat;
    size_t cap_lat;
    long ops;
    long errors;
    char errmsg[PDS_ERRMSG_SIZE];
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Take the next put's sequence number; -1 when the run is over. */
static long next_seq(struct load *l)
{
    long seq = -1;

    pthread_mutex_lock(&l->lock);
    if (l->count == 0 || l->issued < l->count)
        seq = l->issued++;
    pthread_mutex_unlock(&l->lock);
    if (l->count == 0 && now_s() >= l->t_end)
        return -1;
    return seq;
}

static int record_latency(struct writer *w, double seconds)
{
    if (w->n_lat == w->cap_lat) {
        size_t cap = w->cap_lat == 0 ? 4096 : w->cap_lat * 2;
        uint32_t *p = realloc(w->lat_us, cap * sizeof(*p));
        if (p == NULL)
            return -1;
        w->lat_us = p;
        w->cap_lat = cap;
    }
    w->lat_us[w->n_lat++] = (uint32_t)(seconds * 1e6);
    return 0;
}

/* End a writer: its connection is closed. */
static void writer_end(struct writer *w)
{
    pds_client_close(w->c);
    w->c = NULL;
}

/* A 64-bit mix of x (splitmix64's finaliser). */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* Send the writer's next put; 0, or -1 when it is done (run over, error). */
static int writer_send(struct writer *w)
{
    struct load *l = w->load;
    struct pds_key key;

    w->seq = next_seq(l);
    if (w->seq < 0)
        return -1;
    /* Keys shaped as pds_lmdb_raw's ceiling shapes them: a user drawn at
     * random among --users (here a hash of the sequence, so that a run
     * is repeatable), a new item numbered by the run's sequence. Items
     * numbered per writer scattered the inserts over 64 places per user
     * and wrote half again as many pages per put as the ceiling it is
     * compared with. */
    snprintf(
        w->owner, sizeof(w->owner), "%su%llu", l->prefix,
        (unsigned long long)(mix64((uint64_t)w->seq) % (uint64_t)l->users));
    snprintf(w->item, sizeof(w->item), "item.n%ld", w->seq);
    /* A value that names its put, padded to the size asked for. */
    w->prefix_len =
        (size_t)snprintf(w->prefix, sizeof(w->prefix), "v%ld-", w->seq);
    if (w->prefix_len > l->value_size)
        w->prefix_len = l->value_size;
    memset(w->value, 'x', l->value_size);
    memcpy(w->value, w->prefix, w->prefix_len);
    key.scope = PDS_SCOPE_USER;
    key.owner = w->owner;
    key.owner_len = strlen(w->owner);
    key.item = w->item;
    key.item_len = strlen(w->item);
    w->t0 = now_s();
    if (pds_client_put_send(w->c, &key, w->value, l->value_size) != 0) {
        w->errors++;
        snprintf(w->errmsg, sizeof(w->errmsg), "%s", pds_client_errmsg(w->c));
        return -1;
    }
    return 0;
}

/* The writer's answer is there: count it; 0 to go on, -1 when done. */
static int writer_answer(struct writer *w)
{
    struct load *l = w->load;
    int rv = pds_client_put_recv(w->c, NULL);

    if (rv != 0) {
        w->errors++;
        snprintf(w->errmsg, sizeof(w->errmsg), "%s", pds_client_errmsg(w->c));
        return l->acked != NULL || rv == PDS_ECONN || rv == PDS_EPROTO ? -1 : 0;
    }
    w->ops++;
    if (record_latency(w, now_s() - w->t0) != 0) {
        /* A put whose latency is not counted would skew the figures. */
        w->errors++;
        snprintf(w->errmsg, sizeof(w->errmsg), "out of memory");
        return -1;
    }
    if (l->acked != NULL) {
        pthread_mutex_lock(&l->lock);
        fprintf(l->acked, "%s %s %.*s\n", w->owner, w->item, (int)w->prefix_len,
                w->prefix);
        fflush(l->acked);
        pthread_mutex_unlock(&l->lock);
    }
    return 0;
}

/* One thread's writers: ws[0..n), driven by epoll. */
struct driver {
    pthread_t thread;
    struct writer *ws;
    int n;
};

static void *driver_main(void *arg)
{
    struct driver *dr = arg;
    struct epoll_event evs[64];
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int active = 0;
    int i;

    for (i = 0; i < dr->n; i++) {
        struct writer *w = &dr->ws[i];
        struct epoll_event ev;
        w->value = malloc(w->load->value_size + 1);
        if (ep < 0 || w->value == NULL ||
            pds_client_open(w->load->socket, &w->c, w->errmsg) != 0) {
            w->errors++;
            w->c = NULL;
            continue;
        }
        ev.events = EPOLLIN;
        ev.data.ptr = w;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, pds_client_fd(w->c), &ev) != 0 ||
            writer_send(w) != 0) {
            writer_end(w);
            continue;
        }
        active++;
    }
    while (active > 0) {
        int n = epoll_wait(ep, evs, 64, 1000);
        if (n < 0 && errno != EINTR)
            break;
        for (i = 0; i < n; i++) {
            struct writer *w = evs[i].data.ptr;
            if (writer_answer(w) != 0 || writer_send(w) != 0) {
                writer_end(w);
                active--;
            }
        }
        /* The node answers every put or drops the connection; a node that
         * does neither ends the run a minute after its time. */
        if (n == 0 && now_s() > dr->ws[0].load->t_end + 60) {
            for (i = 0; i < dr->n; i++) {
                if (dr->ws[i].c == NULL)
                    continue;
                dr->ws[i].errors++;
                snprintf(dr->ws[i].errmsg, sizeof(dr->ws[i].errmsg),
                         "no answer from the node for a minute");
                writer_end(&dr->ws[i]);
            }
            active = 0;
        }
    }
    for (i = 0; i < dr->n; i++) {
        if (dr->ws[i].c != NULL)
            writer_end(&dr->ws[i]);
        free(dr->ws[i].value);
    }
    if (ep >= 0)
        close(ep);
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

/* Parse a whole decimal number in [min, max]; 0 or -1. */
static int parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_seconds(const char *s, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v > 0 && v <= 86400))
        return -1;
    *out = v;
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: pds_load --socket PATH [--writers N] [--seconds S | "
                 "--count N]\n"
                 "                [--value-size B] [--users U] [--prefix P] "
                 "[--acked FILE]\n"
                 "                [--threads T]\n"
                 "\n"
                 "  --socket PATH    the node's socket (DIR/pdsyncd.sock)\n"
                 "  --writers N      concurrent writers, one connection each "
                 "(64)\n"
                 "  --seconds S      run time (5)\n"
                 "  --count N        stop after N puts in all instead\n"
                 "  --value-size B   bytes per value (256)\n"
                 "  --users U        spread puts over U owners (100)\n"
                 "  --prefix P       owner name prefix, <= 32 bytes (bench)\n"
                 "  --acked FILE     append each acknowledged put to FILE\n"
                 "  --threads T      threads driving the writers (1)\n");
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"socket", required_argument, NULL, 's'},
        {"writers", required_argument, NULL, 'w'},
        {"seconds", required_argument, NULL, 't'},
        {"count", required_argument, NULL, 'c'},
        {"value-size", required_argument, NULL, 'b'},
        {"users", required_argument, NULL, 'u'},
        {"prefix", required_argument, NULL, 'p'},
        {"acked", required_argument, NULL, 'a'},
        {"threads", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct load l;
    struct writer *ws;
    struct driver *drs;
    uint32_t *all;
    size_t n_all = 0;
    long ops = 0;
    long errors = 0;
    double t0, elapsed;
    const char *acked = NULL;
    const char *first_error = NULL;
    long v = 0;
    int is_bad = 0;
    int is_failed = 0;
    int n_started;
    int rv;
    int opt;
    int i;

    memset(&l, 0, sizeof(l));
    l.writers = 64;
    l.threads = 1;
    l.seconds = 5;
    l.value_size = 256;
    l.users = 100;
    l.prefix = "bench";
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 's':
            l.socket = optarg;
            break;
        case 'w':
            is_bad |= parse_long(optarg, 1, 4096, &v) != 0;
            l.writers = (int)v;
            break;
        case 't':
            is_bad |= parse_seconds(optarg, &l.seconds) != 0;
            break;
        case 'c':
            is_bad |= parse_long(optarg, 1, LONG_MAX, &l.count) != 0;
            break;
        case 'b':
            is_bad |= parse_long(optarg, 1, PDS_VALUE_MAX, &v) != 0;
            l.value_size = (size_t)v;
            break;
        case 'u':
            is_bad |= parse_long(optarg, 1, 1000000, &v) != 0;
            l.users = (int)v;
            break;
        case 'p':
            /* Owner names are the prefix, "u" and the user number. */
            is_bad |= strlen(optarg) > 32;
            l.prefix = optarg;
            break;
        case 'a':
            acked = optarg;
            break;
        case 'T':
            is_bad |= parse_long(optarg, 1, 64, &v) != 0;
            l.threads = (int)v;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (is_bad || l.socket == NULL || optind != argc) {
        fprintf(stderr, "pds_load: bad or missing arguments\n");
        usage(stderr);
        return 2;
    }
    if (acked != NULL && (l.acked = fopen(acked, "a")) == NULL) {
        fprintf(stderr, "pds_load: %s: %s\n", acked, strerror(errno));
        return 1;
    }
    pthread_mutex_init(&l.lock, NULL);
    if (l.threads > l.writers)
        l.threads = l.writers;
    ws = calloc((size_t)l.writers, sizeof(*ws));
    drs = calloc((size_t)l.threads, sizeof(*drs));
    if (ws == NULL || drs == NULL)
        return 1;
    t0 = now_s();
    /* --count runs are bounded by the count, and by an hour. */
    l.t_end = t0 + (l.count > 0 ? 3600 : l.seconds);
    for (i = 0; i < l.writers; i++) {
        ws[i].load = &l;
        ws[i].id = i;
    }
    for (n_started = 0; n_started < l.threads; n_started++) {
        struct driver *dr = &drs[n_started];
        /* Writers shared out as evenly as can be. */
        int first = (int)((long)l.writers * n_started / l.threads);
        int end = (int)((long)l.writers * (n_started + 1) / l.threads);
        dr->ws = ws + first;
        dr->n = end - first;
        rv = pthread_create(&dr->thread, NULL, driver_main, dr);
        if (rv != 0) {
            /* End the run: the writers started so far stop at their next
             * put, and the run counts as failed. */
            fprintf(stderr, "pds_load: thread %d: %s\n", n_started,
                    strerror(rv));
            pthread_mutex_lock(&l.lock);
            l.count = l.issued > 0 ? l.issued : 1;
            l.issued = l.count;
            pthread_mutex_unlock(&l.lock);
            is_failed = 1;
            break;
        }
    }
    for (i = 0; i < n_started; i++)
        pthread_join(drs[i].thread, NULL);
    n_started =
        n_started == l.threads ? l.writers : (int)(drs[n_started].ws - ws);
    for (i = 0; i < n_started; i++) {
        ops += ws[i].ops;
        errors += ws[i].errors;
        n_all += ws[i].n_lat;
        if (first_error == NULL && ws[i].errmsg[0] != '\0')
            first_error = ws[i].errmsg;
    }
    elapsed = now_s() - t0;
    all = malloc((n_all + 1) * sizeof(*all));
    if (all == NULL)
        return 1;
    n_all = 0;
    for (i = 0; i < n_started; i++) {
        if (ws[i].n_lat > 0)
            memcpy(all + n_all, ws[i].lat_us, ws[i].n_lat * sizeof(*all));
        n_all += ws[i].n_lat;
    }
    qsort(all, n_all, sizeof(*all), cmp_u32);
    printf("{\"bench\":\"pds_put\",\"writers\":%d,\"value_size\":%zu,"
           "\"ops\":%ld,\"errors\":%ld,\"seconds\":%.3f,"
           "\"ops_per_s\":%.0f,\"p50_us\":%u,\"p99_us\":%u,\"max_us\":%u}\n",
           l.writers, l.value_size, ops, errors, elapsed,
           elapsed > 0 ? (double)ops / elapsed : 0.0,
           n_all ? all[n_all / 2] : 0,
           n_all ? all[(size_t)((double)n_all * 0.99)] : 0,
           n_all ? all[n_all - 1] : 0);
    if (first_error != NULL && l.acked == NULL)
        fprintf(stderr, "pds_load: first error: %s\n", first_error);
    if (l.acked != NULL)
        fclose(l.acked);
    for (i = 0; i < l.writers; i++)
        free(ws[i].lat_us);
    free(ws);
    free(drs);
    free(all);
    return !is_failed && ops > 0 && (l.acked != NULL || errors == 0) ? 0 : 1;
}
