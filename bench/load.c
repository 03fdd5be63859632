/*
 * pds_load - a load generator for a pdsync node's local API.
 *
 * N writer threads, each with its own connection, put values of B bytes
 * as fast as the node acknowledges them, for S seconds or N puts in all.
 * Prints one JSON line: throughput and p50/p99/max latency.
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
#include <time.h>

#include "../net/net.h"

struct load {
    const char *socket;
    int writers;
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
    pthread_t thread;
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

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    struct load *l = w->load;
    struct pds_client *c = NULL;
    char owner[64];
    char item[64];
    char prefix[48];
    uint8_t *value;
    long seq;

    value = malloc(l->value_size + 1);
    if (value == NULL || pds_client_open(l->socket, &c, w->errmsg) != 0) {
        w->errors++;
        free(value);
        return NULL;
    }
    while ((seq = next_seq(l)) >= 0) {
        struct pds_key key;
        double t0;
        size_t n;
        int rv;

        snprintf(owner, sizeof(owner), "%su%ld", l->prefix, seq % l->users);
        snprintf(item, sizeof(item), "item.w%d.n%ld", w->id, seq);
        /* A value that names its put, padded to the size asked for. */
        n = (size_t)snprintf(prefix, sizeof(prefix), "v%ld-", seq);
        memset(value, 'x', l->value_size);
        memcpy(value, prefix, n < l->value_size ? n : l->value_size);
        key.scope = PDS_SCOPE_USER;
        key.owner = owner;
        key.owner_len = strlen(owner);
        key.item = item;
        key.item_len = strlen(item);
        t0 = now_s();
        rv = pds_client_put(c, &key, value, l->value_size, NULL);
        if (rv != 0) {
            w->errors++;
            snprintf(w->errmsg, sizeof(w->errmsg), "%s", pds_client_errmsg(c));
            if (l->acked != NULL || rv == PDS_ECONN)
                break;
            continue;
        }
        w->ops++;
        if (record_latency(w, now_s() - t0) != 0) {
            /* A put whose latency is not counted would skew the figures. */
            w->errors++;
            snprintf(w->errmsg, sizeof(w->errmsg), "out of memory");
            break;
        }
        if (l->acked != NULL) {
            pthread_mutex_lock(&l->lock);
            fprintf(l->acked, "%s %s %.*s\n", owner, item,
                    (int)(n < l->value_size ? n : l->value_size), prefix);
            fflush(l->acked);
            pthread_mutex_unlock(&l->lock);
        }
    }
    pds_client_close(c);
    free(value);
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
                 "\n"
                 "  --socket PATH    the node's socket (DIR/pdsyncd.sock)\n"
                 "  --writers N      concurrent writers, one connection each "
                 "(64)\n"
                 "  --seconds S      run time (5)\n"
                 "  --count N        stop after N puts in all instead\n"
                 "  --value-size B   bytes per value (256)\n"
                 "  --users U        spread puts over U owners (100)\n"
                 "  --prefix P       owner name prefix, <= 32 bytes (bench)\n"
                 "  --acked FILE     append each acknowledged put to FILE\n");
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
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct load l;
    struct writer *ws;
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
    ws = calloc((size_t)l.writers, sizeof(*ws));
    if (ws == NULL)
        return 1;
    t0 = now_s();
    /* --count runs are bounded by the count, and by an hour. */
    l.t_end = t0 + (l.count > 0 ? 3600 : l.seconds);
    for (n_started = 0; n_started < l.writers; n_started++) {
        ws[n_started].load = &l;
        ws[n_started].id = n_started;
        rv = pthread_create(&ws[n_started].thread, NULL, writer_main,
                            &ws[n_started]);
        if (rv != 0) {
            /* End the run: the writers started so far stop at their next
             * put, and the run counts as failed. */
            fprintf(stderr, "pds_load: writer %d: %s\n", n_started,
                    strerror(rv));
            pthread_mutex_lock(&l.lock);
            l.count = l.issued > 0 ? l.issued : 1;
            l.issued = l.count;
            pthread_mutex_unlock(&l.lock);
            is_failed = 1;
            break;
        }
    }
    for (i = 0; i < n_started; i++) {
        pthread_join(ws[i].thread, NULL);
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
    free(all);
    return !is_failed && ops > 0 && (l.acked != NULL || errors == 0) ? 0 : 1;
}
