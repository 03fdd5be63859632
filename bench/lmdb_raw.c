/*
 * pds_lmdb_raw - the raw LMDB ceiling on this disk: durable write
 * transactions of --batch puts of --value-size bytes, for --seconds.
 * Prints one JSON line: puts/s and commit latency.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <lmdb.h>

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: pds_lmdb_raw --dir DIR [--seconds S] [--batch N] "
                 "[--value-size B] [--keys random|seq]\n");
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"dir", required_argument, NULL, 'd'},
        {"seconds", required_argument, NULL, 't'},
        {"batch", required_argument, NULL, 'n'},
        {"value-size", required_argument, NULL, 'b'},
        {"keys", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL;
    double seconds = 5;
    long batch = 100;
    long value_size = 256;
    int is_random = 1;
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *txn;
    uint32_t *lat = NULL;
    size_t n_lat = 0, cap_lat = 0;
    uint64_t key = 0;
    long puts = 0;
    double t0, t_end, elapsed;
    char *value;
    int opt;
    int rv;

    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'd':
            dir = optarg;
            break;
        case 't':
            seconds = atof(optarg);
            break;
        case 'n':
            batch = atol(optarg);
            break;
        case 'b':
            value_size = atol(optarg);
            break;
        case 'k':
            if (strcmp(optarg, "random") == 0)
                is_random = 1;
            else if (strcmp(optarg, "seq") == 0)
                is_random = 0;
            else {
                usage(stderr);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (dir == NULL || seconds <= 0 || seconds > 86400 || batch < 1 ||
        value_size < 1 || value_size > (1 << 24)) {
        usage(stderr);
        return 2;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "pds_lmdb_raw: mkdir %s: %s\n", dir, strerror(errno));
        return 1;
    }
    value = malloc((size_t)value_size);
    if (value == NULL)
        return 1;
    memset(value, 'x', (size_t)value_size);
    if ((rv = mdb_env_create(&env)) != 0 ||
        (rv = mdb_env_set_mapsize(env, (size_t)4 << 30)) != 0 ||
        (rv = mdb_env_open(env, dir, 0, 0600)) != 0 ||
        (rv = mdb_txn_begin(env, NULL, 0, &txn)) != 0 ||
        (rv = mdb_dbi_open(txn, NULL, 0, &dbi)) != 0 ||
        (rv = mdb_txn_commit(txn)) != 0) {
        fprintf(stderr, "pds_lmdb_raw: %s\n", mdb_strerror(rv));
        return 1;
    }
    t0 = now_s();
    t_end = t0 + seconds;
    while (now_s() < t_end) {
        double c0 = now_s();
        long i;
        rv = mdb_txn_begin(env, NULL, 0, &txn);
        for (i = 0; rv == 0 && i < batch; i++) {
            char kb[64];
            MDB_val k, v = {(size_t)value_size, value};
            key++;
            if (is_random) {
                /* Keys shaped like pdsync's records: a user among 100
                 * and a new item, so inserts land all over the tree. */
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                k.mv_size =
                    (size_t)snprintf(kb, sizeof(kb), "%cbenchu%llu%citem.n%llu",
                                     0, (unsigned long long)(rng % 100), 0,
                                     (unsigned long long)key);
                k.mv_data = kb;
                rv = mdb_put(txn, dbi, &k, &v, 0);
            } else {
                int j;
                for (j = 0; j < 8; j++)
                    kb[j] = (char)(key >> (56 - 8 * j));
                k.mv_size = 8;
                k.mv_data = kb;
                rv = mdb_put(txn, dbi, &k, &v, MDB_APPEND);
            }
        }
        if (rv == 0)
            rv = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
        if (rv != 0) {
            fprintf(stderr, "pds_lmdb_raw: %s\n", mdb_strerror(rv));
            return 1;
        }
        puts += batch;
        if (n_lat == cap_lat) {
            cap_lat = cap_lat ? cap_lat * 2 : 4096;
            lat = realloc(lat, cap_lat * sizeof(*lat));
            if (lat == NULL)
                return 1;
        }
        lat[n_lat++] = (uint32_t)((now_s() - c0) * 1e6);
    }
    elapsed = now_s() - t0;
    qsort(lat, n_lat, sizeof(*lat), cmp_u32);
    printf("{\"bench\":\"lmdb_raw\",\"keys\":\"%s\",\"batch\":%ld,"
           "\"value_size\":%ld,"
           "\"puts\":%ld,\"seconds\":%.3f,\"puts_per_s\":%.0f,"
           "\"commit_p50_us\":%u,\"commit_p99_us\":%u}\n",
           is_random ? "random" : "seq", batch, value_size, puts, elapsed,
           (double)puts / elapsed, lat[n_lat / 2],
           lat[(size_t)((double)n_lat * 0.99)]);
    mdb_env_close(env);
    free(lat);
    free(value);
    return 0;
}
