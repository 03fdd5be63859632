/*
 * test_storage.c - unit tests of storage/: round trips, the atomicity of
 * record + log + position, map growth, the budget, reopening, the format
 * check and damaged files.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lmdb.h>

#include "store.h"
#include "test.h"

static char dir[64];

static void fresh_dir(void)
{
    char cmd[128];

    if (dir[0] != '\0') {
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    strcpy(dir, "/tmp/pds-store-XXXXXX");
    if (mkdtemp(dir) == NULL)
        abort();
}

static struct pds_store *
open_store(size_t map_initial, size_t budget, uint64_t retain)
{
    struct pds_store_config cfg = {dir, map_initial, budget, retain};
    struct pds_store *s = NULL;
    char errmsg[PDS_ERRMSG_SIZE];

    if (pds_store_open(&cfg, &s, errmsg) != 0) {
        fprintf(stderr, "open: %s\n", errmsg);
        return NULL;
    }
    return s;
}

/* An entry for a test; strings must outlive the commit. */
static struct pds_entry entry(pds_index index,
                              enum pds_op op,
                              const char *owner,
                              const char *item,
                              const char *value)
{
    struct pds_entry e;

    memset(&e, 0, sizeof(e));
    e.epoch = 1;
    e.index = index;
    e.op = op;
    e.key.scope = PDS_SCOPE_USER;
    e.key.owner = owner;
    e.key.owner_len = strlen(owner);
    e.key.item = item;
    e.key.item_len = item != NULL ? strlen(item) : 0;
    e.version.hlc = PDS_HLC_MAKE(1000 + index, 0);
    e.version.node = 7;
    if (value != NULL) {
        e.value = (const uint8_t *)value;
        e.value_len = (uint32_t)strlen(value);
    }
    return e;
}

static int get_value(struct pds_store *s,
                     const char *owner,
                     const char *item,
                     char *out,
                     size_t n)
{
    struct pds_key k = {PDS_SCOPE_USER, owner, strlen(owner), item,
                        strlen(item)};
    struct pds_record rec;
    uint8_t *value = NULL;
    int rv = pds_store_get(s, &k, &rec, &value);

    if (rv != 0)
        return rv;
    if (rec.is_tombstone) {
        free(value);
        return PDS_ENOTFOUND;
    }
    snprintf(out, n, "%.*s", (int)rec.value_len, (const char *)rec.value);
    free(value);
    return 0;
}

TEST(put_get_delete)
{
    struct pds_store *s;
    struct pds_store_meta m;
    struct pds_store_stats st;
    struct pds_entry es[3];
    char v[64];

    fresh_dir();
    s = open_store(0, 0, 0);
    CHECK(s != NULL);
    CHECK_EQ(pds_store_meta(s, &m), 0);
    CHECK_EQ(m.format, PDS_STORE_FORMAT);
    CHECK_EQ(m.epoch, 1);
    CHECK_EQ(m.last_index, 0);
    CHECK_EQ(m.node_id, 0);
    CHECK_EQ(pds_store_init_node(s, 99), 0);
    CHECK_EQ(pds_store_init_node(s, 100), 0); /* first id stays */
    CHECK_EQ(pds_store_meta(s, &m), 0);
    CHECK_EQ(m.node_id, 99);

    es[0] = entry(1, PDS_OP_PUT, "alice", "ui.language", "en");
    es[1] = entry(2, PDS_OP_PUT, "alice", "ui.theme", "dark");
    es[2] = entry(3, PDS_OP_PUT, "bob", "ui.language", "de");
    CHECK_EQ(pds_store_commit(s, es, 3, 5000), 0);
    CHECK_EQ(get_value(s, "alice", "ui.language", v, sizeof(v)), 0);
    CHECK_STR(v, "en");
    CHECK_EQ(get_value(s, "bob", "ui.language", v, sizeof(v)), 0);
    CHECK_STR(v, "de");
    CHECK_EQ(get_value(s, "carol", "ui.language", v, sizeof(v)), PDS_ENOTFOUND);

    es[0] = entry(4, PDS_OP_DEL, "alice", "ui.theme", NULL);
    CHECK_EQ(pds_store_commit(s, es, 1, 6000), 0);
    CHECK_EQ(get_value(s, "alice", "ui.theme", v, sizeof(v)), PDS_ENOTFOUND);
    CHECK_EQ(pds_store_stats(s, &st), 0);
    CHECK_EQ(st.n_records, 2);
    CHECK_EQ(st.n_users, 2);
    CHECK_EQ(st.n_log, 4);
    CHECK(st.bytes_used > 0);

    CHECK_EQ(pds_store_meta(s, &m), 0);
    CHECK_EQ(m.last_index, 4);
    CHECK_EQ(m.first_index, 1);
    CHECK_EQ(m.last_hlc, PDS_HLC_MAKE(1004, 0));
    pds_store_close(s);
}

TEST(log_entries_are_stored_as_encoded)
{
    struct pds_store *s;
    struct pds_entry e = entry(1, PDS_OP_PUT, "alice", "x", "value");
    struct pds_entry out;
    uint8_t expect[128];
    uint8_t *buf;
    size_t len;

    fresh_dir();
    s = open_store(0, 0, 0);
    CHECK(s != NULL);
    CHECK_EQ(pds_store_commit(s, &e, 1, 1), 0);
    CHECK_EQ(pds_store_log_get(s, 1, &buf, &len), 0);
    CHECK_EQ(len, pds_entry_encode(&e, expect));
    CHECK(memcmp(buf, expect, len) == 0);
    CHECK_EQ(pds_entry_decode(buf, len, &out), 0);
    CHECK_EQ(out.index, 1);
    free(buf);
    CHECK_EQ(pds_store_log_get(s, 2, &buf, &len), PDS_ENOTFOUND);
    pds_store_close(s);
}

TEST(delete_owner_removes_only_that_owner)
{
    struct pds_store *s;
    struct pds_entry es[4];
    struct pds_store_stats st;
    char v[64];

    fresh_dir();
    s = open_store(0, 0, 0);
    CHECK(s != NULL);
    es[0] = entry(1, PDS_OP_PUT, "al", "a", "1");
    es[1] = entry(2, PDS_OP_PUT, "alice", "a", "2");
    es[2] = entry(3, PDS_OP_PUT, "alice", "b", "3");
    es[3] = entry(4, PDS_OP_PUT, "alicia", "a", "4");
    CHECK_EQ(pds_store_commit(s, es, 4, 1), 0);
    es[0] = entry(5, PDS_OP_DEL_OWNER, "alice", NULL, NULL);
    CHECK_EQ(pds_store_commit(s, es, 1, 2), 0);
    CHECK_EQ(get_value(s, "alice", "a", v, sizeof(v)), PDS_ENOTFOUND);
    CHECK_EQ(get_value(s, "alice", "b", v, sizeof(v)), PDS_ENOTFOUND);
    CHECK_EQ(get_value(s, "al", "a", v, sizeof(v)), 0);
    CHECK_EQ(get_value(s, "alicia", "a", v, sizeof(v)), 0);
    CHECK_EQ(pds_store_stats(s, &st), 0);
    CHECK_EQ(st.n_records, 2);
    CHECK_EQ(st.n_users, 2);
    pds_store_close(s);
}

static int
count_cb(void *arg, const struct pds_key *k, const struct pds_record *r)
{
    (void)k;
    (void)r;
    (*(int *)arg)++;
    return 0;
}

TEST(list_by_owner)
{
    struct pds_store *s;
    struct pds_entry es[4];
    int n = 0;

    fresh_dir();
    s = open_store(0, 0, 0);
    CHECK(s != NULL);
    es[0] = entry(1, PDS_OP_PUT, "al", "a", "1");
    es[1] = entry(2, PDS_OP_PUT, "alice", "a", "2");
    es[2] = entry(3, PDS_OP_PUT, "alice", "b", "3");
    es[3] = entry(4, PDS_OP_DEL, "alice", "b", NULL);
    CHECK_EQ(pds_store_commit(s, es, 4, 1), 0);
    CHECK_EQ(pds_store_list(s, PDS_SCOPE_USER, "alice", 5, count_cb, &n), 0);
    CHECK_EQ(n, 1); /* the tombstone is not listed */
    n = 0;
    CHECK_EQ(pds_store_list(s, PDS_SCOPE_USER, NULL, 0, count_cb, &n), 0);
    CHECK_EQ(n, 2);
    n = 0;
    CHECK_EQ(pds_store_list(s, PDS_SCOPE_GROUP, "alice", 5, count_cb, &n), 0);
    CHECK_EQ(n, 0);
    pds_store_close(s);
}

TEST(gap_writes_nothing)
{
    struct pds_store *s;
    struct pds_store_meta m;
    struct pds_store_stats st;
    struct pds_entry es[2];
    char v[64];

    fresh_dir();
    s = open_store(0, 0, 0);
    CHECK(s != NULL);
    es[0] = entry(1, PDS_OP_PUT, "alice", "a", "1");
    CHECK_EQ(pds_store_commit(s, es, 1, 1), 0);
    /* Index 3 after 1: refused, and a valid first entry in the same
     * batch is not written either. */
    es[0] = entry(2, PDS_OP_PUT, "alice", "b", "2");
    es[1] = entry(4, PDS_OP_PUT, "alice", "c", "3");
    CHECK_EQ(pds_store_commit(s, es, 2, 2), PDS_EINVAL);
    CHECK(strstr(pds_store_commit_errmsg(s), "nothing was written") != NULL);
    CHECK_EQ(get_value(s, "alice", "b", v, sizeof(v)), PDS_ENOTFOUND);
    CHECK_EQ(pds_store_meta(s, &m), 0);
    CHECK_EQ(m.last_index, 1);
    CHECK_EQ(pds_store_stats(s, &st), 0);
    CHECK_EQ(st.n_log, 1);
    CHECK_EQ(st.n_records, 1);
    es[0] = entry(5, PDS_OP_PUT, "alice", "b", "2");
    CHECK_EQ(pds_store_commit(s, es, 1, 2), PDS_EINVAL);
    pds_store_close(s);
}

TEST(map_grows_then_budget_is_enforced)
{
    struct pds_store *s;
    struct pds_store_stats st;
    struct pds_store_meta m;
    static char big[16 * 1024];
    char item[32];
    char v[64];
    pds_index i;
    pds_index last_ok = 0;
    int rv = 0;

    fresh_dir();
    memset(big, 'x', sizeof(big) - 1);
    s = open_store(64 * 1024, 2 * 1024 * 1024, 0);
    CHECK(s != NULL);
    for (i = 1; i <= 1000; i++) {
        struct pds_entry e;
        snprintf(item, sizeof(item), "item%llu", (unsigned long long)i);
        e = entry(i, PDS_OP_PUT, "alice", item, big);
        rv = pds_store_commit(s, &e, 1, 1);
        if (rv != 0)
            break;
        last_ok = i;
    }
    CHECK_EQ(rv, PDS_ENOSPC);
    CHECK(strstr(pds_store_commit_errmsg(s), "storage budget exhausted") !=
          NULL);
    CHECK(strstr(pds_store_commit_errmsg(s), "storage_budget") != NULL);
    CHECK(last_ok > 10); /* the map grew from 64 KiB before the budget */
    CHECK_EQ(pds_store_stats(s, &st), 0);
    CHECK_EQ(st.map_size, 2 * 1024 * 1024);
    CHECK_EQ(st.n_records, last_ok);
    /* Reads keep working and nothing of the failed write is there. */
    CHECK_EQ(get_value(s, "alice", "item1", v, sizeof(v)), 0);
    snprintf(item, sizeof(item), "item%llu", (unsigned long long)(last_ok + 1));
    CHECK_EQ(get_value(s, "alice", item, v, sizeof(v)), PDS_ENOTFOUND);
    CHECK_EQ(pds_store_meta(s, &m), 0);
    CHECK_EQ(m.last_index, last_ok);
    pds_store_close(s);

    /* Reopened with the same budget: data intact, still full. */
    s = open_store(64 * 1024, 2 * 1024 * 1024, 0);
    CHECK(s != NULL);
    CHECK_EQ(get_value(s, "alice", "item1", v, sizeof(v)), 0);
    CHECK_EQ(pds_store_meta(s, &m), 0);
    CHECK_EQ(m.last_index, last_ok);
    pds_store_close(s);
}

TEST(reopen_keeps_everything)
{
    struct pds_store *s;
    struct pds_store_meta m;
    struct pds_entry es[2];
    char v[64];

    fresh_dir();
    s = open_store(0, 0, 0);
    CHECK(s != NULL);
    CHECK_EQ(pds_store_init_node(s, 5), 0);
    es[0] = entry(1, PDS_OP_PUT, "alice", "a", "1");
    es[1] = entry(2, PDS_OP_PUT, "bob", "b", "2");
    CHECK_EQ(pds_store_commit(s, es, 2, 1), 0);
    pds_store_close(s);
    s = open_store(0, 0, 0);
    CHECK(s != NULL);
    CHECK_EQ(pds_store_meta(s, &m), 0);
    CHECK_EQ(m.node_id, 5);
    CHECK_EQ(m.last_index, 2);
    CHECK_EQ(get_value(s, "bob", "b", v, sizeof(v)), 0);
    CHECK_STR(v, "2");
    pds_store_close(s);
}

TEST(retention_trims_log)
{
    struct pds_store *s;
    struct pds_store_meta m;
    struct pds_store_stats st;
    uint8_t *buf;
    size_t len;
    pds_index i;

    fresh_dir();
    s = open_store(0, 0, 10);
    CHECK(s != NULL);
    for (i = 1; i <= 25; i++) {
        struct pds_entry e = entry(i, PDS_OP_PUT, "alice", "a", "v");
        CHECK_EQ(pds_store_commit(s, &e, 1, 1), 0);
    }
    CHECK_EQ(pds_store_meta(s, &m), 0);
    CHECK_EQ(m.first_index, 16);
    CHECK_EQ(m.last_index, 25);
    CHECK_EQ(pds_store_stats(s, &st), 0);
    CHECK_EQ(st.n_log, 10);
    CHECK_EQ(pds_store_log_get(s, 15, &buf, &len), PDS_ENOTFOUND);
    CHECK_EQ(pds_store_log_get(s, 16, &buf, &len), 0);
    free(buf);
    pds_store_close(s);
}

static int read_file(const char *path, uint8_t **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    long n;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0)
        return -1;
    rewind(f);
    *buf = malloc((size_t)n + 1);
    if (*buf == NULL || fread(*buf, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        return -1;
    }
    fclose(f);
    *len = (size_t)n;
    return 0;
}

TEST(newer_format_refused_untouched)
{
    struct pds_store *s;
    struct pds_store_config cfg = {dir, 0, 0, 0};
    struct pds_entry e = entry(1, PDS_OP_PUT, "alice", "a", "1");
    char errmsg[PDS_ERRMSG_SIZE];
    char path[128];
    uint8_t *before, *after;
    size_t n_before, n_after;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    uint8_t fmt[8];
    MDB_val k = {6, (void *)"format"};
    MDB_val v = {8, fmt};

    fresh_dir();
    s = open_store(0, 0, 0);
    CHECK(s != NULL);
    CHECK_EQ(pds_store_commit(s, &e, 1, 1), 0);
    pds_store_close(s);
    /* Write format 99 with raw LMDB, as a newer pdsync would. */
    pds_put_u64be(fmt, 99);
    CHECK_EQ(mdb_env_create(&env), 0);
    CHECK_EQ(mdb_env_set_maxdbs(env, 8), 0);
    CHECK_EQ(mdb_env_open(env, dir, 0, 0600), 0);
    CHECK_EQ(mdb_txn_begin(env, NULL, 0, &txn), 0);
    CHECK_EQ(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    CHECK_EQ(mdb_put(txn, dbi, &k, &v, 0), 0);
    CHECK_EQ(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    CHECK_EQ(read_file(path, &before, &n_before), 0);
    s = NULL;
    CHECK_EQ(pds_store_open(&cfg, &s, errmsg), PDS_EVERSION);
    CHECK(s == NULL);
    CHECK(strstr(errmsg, "format 99") != NULL);
    CHECK(strstr(errmsg, "upgrade") != NULL);
    CHECK_EQ(read_file(path, &after, &n_after), 0);
    CHECK_EQ(n_before, n_after);
    CHECK(memcmp(before, after, n_before) == 0);
    free(before);
    free(after);
}

TEST(damaged_file_refused)
{
    struct pds_store *s;
    struct pds_store_config cfg = {dir, 0, 0, 0};
    struct pds_entry e = entry(1, PDS_OP_PUT, "alice", "a", "1");
    char errmsg[PDS_ERRMSG_SIZE];
    char path[128];
    char junk[8192];
    int fd;

    fresh_dir();
    s = open_store(0, 0, 0);
    CHECK(s != NULL);
    CHECK_EQ(pds_store_commit(s, &e, 1, 1), 0);
    pds_store_close(s);
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    memset(junk, 0x5a, sizeof(junk));
    fd = open(path, O_WRONLY);
    CHECK(fd >= 0);
    CHECK_EQ(pwrite(fd, junk, sizeof(junk), 0), (long long)sizeof(junk));
    close(fd);
    s = NULL;
    CHECK_EQ(pds_store_open(&cfg, &s, errmsg), PDS_ECORRUPT);
    CHECK(s == NULL);
    CHECK(strstr(errmsg, "damaged") != NULL);
}

TEST(unwritable_directory_refused)
{
    struct pds_store *s = NULL;
    struct pds_store_config cfg = {"/proc/self", 0, 0, 0};
    char errmsg[PDS_ERRMSG_SIZE];
    int rv;

    rv = pds_store_open(&cfg, &s, errmsg);
    CHECK(rv == PDS_EPERM || rv == PDS_EIO);
    CHECK(s == NULL);
    CHECK(strstr(errmsg, "/proc/self") != NULL);
}

/*
 * A child commits as fast as it can and is killed with SIGKILL at a random
 * moment: after reopening, the position, the log and the records agree
 * exactly (the record, its log entry and the position are one
 * transaction).
 */
TEST(kill_during_commits_keeps_position_and_data_together)
{
    struct pds_store *s;
    struct pds_store_meta m;
    char item[32];
    char v[64];
    uint8_t *buf;
    size_t len;
    pid_t pid;
    int round;

    fresh_dir();
    for (round = 0; round < 3; round++) {
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            pds_index i;
            s = open_store(0, 0, 0);
            if (s == NULL || pds_store_meta(s, &m) != 0)
                _exit(1);
            for (i = m.last_index + 1;; i++) {
                struct pds_entry e;
                snprintf(item, sizeof(item), "k%llu", (unsigned long long)i);
                e = entry(i, PDS_OP_PUT, "alice", item, item);
                if (pds_store_commit(s, &e, 1, 1) != 0)
                    _exit(1);
            }
        }
        usleep(150000 + 50000 * (unsigned)round);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        s = open_store(0, 0, 0);
        CHECK(s != NULL);
        CHECK_EQ(pds_store_meta(s, &m), 0);
        CHECK(m.last_index > 0);
        snprintf(item, sizeof(item), "k%llu", (unsigned long long)m.last_index);
        CHECK_EQ(get_value(s, "alice", item, v, sizeof(v)), 0);
        CHECK_STR(v, item);
        CHECK_EQ(pds_store_log_get(s, m.last_index, &buf, &len), 0);
        free(buf);
        snprintf(item, sizeof(item), "k%llu",
                 (unsigned long long)(m.last_index + 1));
        CHECK_EQ(get_value(s, "alice", item, v, sizeof(v)), PDS_ENOTFOUND);
        CHECK_EQ(pds_store_log_get(s, m.last_index + 1, &buf, &len),
                 PDS_ENOTFOUND);
        pds_store_close(s);
    }
}

TEST(cleanup)
{
    char cmd[128];

    (void)pds__failed;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK_EQ(system(cmd), 0);
}

TEST_MAIN(T(put_get_delete),
          T(log_entries_are_stored_as_encoded),
          T(delete_owner_removes_only_that_owner),
          T(list_by_owner),
          T(gap_writes_nothing),
          T(map_grows_then_budget_is_enforced),
          T(reopen_keeps_everything),
          T(retention_trims_log),
          T(newer_format_refused_untouched),
          T(damaged_file_refused),
          T(kill_during_commits_keeps_position_and_data_together),
          T(unwritable_directory_refused),
          T(cleanup))
