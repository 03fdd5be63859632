/*
 * store.c - pdsync's durable storage on LMDB.
 *
 * Every change is written with its log entry, the new position and the
 * counters in one write transaction that commits (and fsyncs) inside
 * pds_store_commit(). MDB_MAP_FULL grows the map and retries the whole
 * transaction, up to the configured budget.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <lmdb.h>

#include "store.h"

#define DEFAULT_MAP_INITIAL ((size_t)8 << 20)
#define DEFAULT_BUDGET ((size_t)512 << 20)
#define DEFAULT_RETAIN 100000

#define OWNER_SLOTS 1024 /* a power of two */
#define SORT_MIN 8       /* batches from this size are applied in key order */

struct pds_store {
    MDB_env *env;
    MDB_dbi records;
    MDB_dbi log;
    MDB_dbi meta;
    MDB_dbi owners;
    MDB_dbi clients;
    MDB_dbi scopes;       /* item -> 1 byte: 1 device-specific */
    MDB_dbi local;        /* record key -> record: device-specific values */
    MDB_dbi outbox;       /* u64 seq -> entry: a client's writes not yet sent */
    MDB_dbi snap_records; /* a snapshot being received (staging) */
    MDB_dbi snap_scopes;
    MDB_dbi snap_clamps; /* the memos of a snapshot being received */
    MDB_dbi snap_gone;   /* its delete marks */
    MDB_dbi clamps;      /* origin node, hlc -> pds_clamp: writes restamped */
    MDB_dbi clamp_log;   /* u64 index -> origin node, hlc, stamp: order */
    MDB_dbi epochs;      /* u64 epoch -> u64 index of its first entry */
    MDB_dbi gone;        /* owner key -> version, index: its delete-user */
    size_t map_size;
    size_t budget;
    uint64_t retain;
    uint64_t retain_bytes;
    uint64_t retain_ms;
    /* Entries after this index are kept against the count and age bounds
     * (0: none): a follower's snapshot stamped there still needs them.
     * Set from the loop, read by a commit on a pool thread (atomics). */
    uint64_t hold;
    /* Readers hold it shared for the life of their read transaction;
     * map growth holds it exclusive, as LMDB requires that no transaction
     * be active in the process while the map is resized. */
    pthread_rwlock_t growth_lock;
    /*
     * The owners a commit wrote to, each stamped once at its end rather
     * than once per entry (a hash set over the entries' own strings;
     * slots of an earlier commit carry an older generation).
     */
    struct touched {
        uint32_t gen;
        uint16_t len;
        uint8_t scope;
        const char *owner;
    } touched[OWNER_SLOTS];
    uint16_t touched_used[OWNER_SLOTS / 2];
    size_t n_touched;
    uint32_t touched_gen;
    char path[512];
    /* The reading calls' errors, and the writing calls' (which may run on
     * another thread than the reads): each thread its own text. */
    char errmsg[PDS_ERRMSG_SIZE];
    char commit_errmsg[PDS_ERRMSG_SIZE];
};

static int set_err(struct pds_store *s, int rv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* What to do about a damaged data file (LMDB found a bad page), added to
 * its errors; a bad snapshot chunk or record from a peer is not that. */
static void corrupt_advice(char *msg, size_t size, int rv)
{
    size_t n = strlen(msg);

    if (rv == PDS_ECORRUPT && strstr(msg, "MDB_") != NULL &&
        strstr(msg, "backup") == NULL && n < size)
        snprintf(msg + n, size - n, "%s",
                 " (the data file is damaged: stop pdsyncd and restore the "
                 "data directory from a backup)");
}

static int set_err(struct pds_store *s, int rv, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
    va_end(ap);
    corrupt_advice(s->errmsg, sizeof(s->errmsg), rv);
    return rv;
}

static int set_commit_err(struct pds_store *s, int rv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int set_commit_err(struct pds_store *s, int rv, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(s->commit_errmsg, sizeof(s->commit_errmsg), fmt, ap);
    va_end(ap);
    corrupt_advice(s->commit_errmsg, sizeof(s->commit_errmsg), rv);
    return rv;
}

/* Begin a read transaction under the shared growth lock. */
static int read_begin(struct pds_store *s, MDB_txn **txn)
{
    int rv;

    pthread_rwlock_rdlock(&s->growth_lock);
    rv = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
    if (rv != 0)
        pthread_rwlock_unlock(&s->growth_lock);
    return rv;
}

static void read_end(struct pds_store *s, MDB_txn *txn)
{
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&s->growth_lock);
}

/* Translate an LMDB or errno code at the module edge. */
static int translate(int mdb_rv)
{
    switch (mdb_rv) {
    case 0:
        return 0;
    case MDB_MAP_FULL:
        return PDS_ENOSPC;
    case MDB_NOTFOUND:
        return PDS_ENOTFOUND;
    case MDB_INVALID:
    case MDB_CORRUPTED:
    case MDB_VERSION_MISMATCH:
    case MDB_PAGE_NOTFOUND:
        return PDS_ECORRUPT;
    case ENOMEM:
        return PDS_ENOMEM;
    case EACCES:
    case EROFS:
    case EPERM:
        return PDS_EPERM;
    case ENOSPC:
    case EDQUOT:
        return PDS_EFULL;
    default:
        return PDS_EIO;
    }
}

/* ---- Meta values -------------------------------------------------------- */

static int meta_get(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t *out)
{
    MDB_val k = {strlen(name), (void *)name};
    MDB_val v;
    int rv = mdb_get(txn, dbi, &k, &v);

    if (rv == MDB_NOTFOUND) {
        *out = 0;
        return 0;
    }
    if (rv != 0)
        return rv;
    if (v.mv_size != 8)
        return MDB_CORRUPTED;
    *out = pds_get_u64be(v.mv_data);
    return 0;
}

static int meta_put(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t val)
{
    MDB_val k = {strlen(name), (void *)name};
    uint8_t buf[8];
    MDB_val v = {8, buf};

    pds_put_u64be(buf, val);
    return mdb_put(txn, dbi, &k, &v, 0);
}

static int read_meta(MDB_txn *txn, MDB_dbi dbi, struct pds_store_meta *m)
{
    uint64_t format;
    int rv;

    memset(m, 0, sizeof(*m));
    if ((rv = meta_get(txn, dbi, "format", &format)) != 0 ||
        (rv = meta_get(txn, dbi, "node_id", &m->node_id)) != 0 ||
        (rv = meta_get(txn, dbi, "epoch", &m->epoch)) != 0 ||
        (rv = meta_get(txn, dbi, "last_epoch", &m->last_epoch)) != 0 ||
        (rv = meta_get(txn, dbi, "last_index", &m->last_index)) != 0 ||
        (rv = meta_get(txn, dbi, "first_index", &m->first_index)) != 0 ||
        (rv = meta_get(txn, dbi, "last_hlc", &m->last_hlc)) != 0)
        return rv;
    m->format = format > UINT32_MAX ? UINT32_MAX : (uint32_t)format;
    return 0;
}

/* ---- Open and close ----------------------------------------------------- */

/*
 * Reserve the data file's blocks up to the map size. Writing into blocks
 * the file already owns spares the filesystem an allocation (and a journal
 * commit) in every fsync as the database grows; the budget, not the data,
 * is what the node claims of the disk. Failure is not an error: LMDB
 * allocates as it writes.
 */
static void preallocate(struct pds_store *s)
{
    struct stat st;
    int fd;

    if (mdb_env_get_fd(s->env, &fd) != 0 || fstat(fd, &st) != 0 ||
        (size_t)st.st_size >= s->map_size)
        return;
    (void)posix_fallocate(fd, 0, (off_t)s->map_size);
}

/*
 * The message for a failed mdb_env_open() or a damaged file found while
 * opening, with LMDB's text; returns the PDS_E* code. EINVAL from
 * mdb_env_open() means a header LMDB cannot use, so it counts as damage.
 */
static int open_error(const char *path, int rv, const char *what, char *errmsg)
{
    int code = rv == EINVAL ? PDS_ECORRUPT : translate(rv);

    if (code == PDS_EPERM)
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "data directory %s is not writable (%s): fix its "
                 "permissions or choose another --data",
                 path, what);
    else if (code == PDS_ECORRUPT)
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "data directory %s: database file is damaged (%s): "
                 "restore it from a backup or move it away (nothing was "
                 "changed)",
                 path, what);
    else
        snprintf(errmsg, PDS_ERRMSG_SIZE, "data directory %s: %s", path, what);
    return code;
}

/*
 * Is the file shorter than the pages its newest meta page says are in use?
 * LMDB maps the file and would die of SIGBUS on the first page past its
 * end, so a truncated file is refused before any page is read.
 */
static int is_truncated(MDB_env *env, char *what, size_t what_size)
{
    MDB_envinfo info;
    MDB_stat st;
    struct stat fst;
    uint64_t need;
    int fd;

    if (mdb_env_get_fd(env, &fd) != 0 || fstat(fd, &fst) != 0 ||
        mdb_env_info(env, &info) != 0 || mdb_env_stat(env, &st) != 0)
        return 0;
    need = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    if ((uint64_t)fst.st_size >= need)
        return 0;
    snprintf(what, what_size, "file is truncated: %llu bytes of %llu",
             (unsigned long long)fst.st_size, (unsigned long long)need);
    return 1;
}

/*
 * Before opening for writing, read the format of an existing environment
 * read-only, so that a newer one is refused without a single write. An
 * empty data file (a crash before the first commit) is a new store.
 */
static int check_format(struct pds_store *s, char *errmsg)
{
    char file[600];
    char what[128];
    struct stat fst;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    uint64_t format = 0;
    int rv;

    snprintf(file, sizeof(file), "%s/data.mdb", s->path);
    if (stat(file, &fst) != 0 || fst.st_size == 0)
        return 0;
    rv = mdb_env_create(&env);
    if (rv != 0)
        goto err;
    rv = mdb_env_set_maxdbs(env, 24);
    if (rv != 0)
        goto err_after_env;
    rv = mdb_env_open(env, s->path, MDB_RDONLY, 0600);
    if (rv != 0)
        goto err_after_env;
    if (is_truncated(env, what, sizeof(what))) {
        mdb_env_close(env);
        return open_error(s->path, MDB_CORRUPTED, what, errmsg);
    }
    rv = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    if (rv != 0)
        goto err_after_env;
    rv = mdb_dbi_open(txn, "meta", 0, &dbi);
    if (rv == 0)
        rv = meta_get(txn, dbi, "format", &format);
    else if (rv == MDB_NOTFOUND)
        rv = 0; /* created but never committed: a new store */
    mdb_txn_abort(txn);
    mdb_env_close(env);
    if (rv != 0)
        goto err;
    if (format > PDS_STORE_FORMAT) {
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "data directory %s was written by storage format %llu; "
                 "this pdsyncd reads format %d or older: upgrade pdsync "
                 "(nothing was changed)",
                 s->path, (unsigned long long)format, PDS_STORE_FORMAT);
        return PDS_EVERSION;
    }
    return 0;

err_after_env:
    mdb_env_close(env);
err:
    return open_error(s->path, rv, mdb_strerror(rv), errmsg);
}

static int open_tables(struct pds_store *s)
{
    MDB_txn *txn;
    struct pds_store_meta m;
    int rv;

    rv = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rv != 0)
        return rv;
    if ((rv = mdb_dbi_open(txn, "records", MDB_CREATE, &s->records)) != 0 ||
        (rv = mdb_dbi_open(txn, "log", MDB_CREATE, &s->log)) != 0 ||
        (rv = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta)) != 0 ||
        (rv = mdb_dbi_open(txn, "owners", MDB_CREATE, &s->owners)) != 0 ||
        (rv = mdb_dbi_open(txn, "clients", MDB_CREATE, &s->clients)) != 0 ||
        (rv = mdb_dbi_open(txn, "scopes", MDB_CREATE, &s->scopes)) != 0 ||
        (rv = mdb_dbi_open(txn, "local", MDB_CREATE, &s->local)) != 0 ||
        (rv = mdb_dbi_open(txn, "outbox", MDB_CREATE, &s->outbox)) != 0 ||
        (rv = mdb_dbi_open(txn, "snap_records", MDB_CREATE,
                           &s->snap_records)) != 0 ||
        (rv = mdb_dbi_open(txn, "snap_clamps", MDB_CREATE, &s->snap_clamps)) !=
            0 ||
        (rv = mdb_dbi_open(txn, "snap_scopes", MDB_CREATE, &s->snap_scopes)) !=
            0 ||
        (rv = mdb_dbi_open(txn, "snap_gone", MDB_CREATE, &s->snap_gone)) != 0 ||
        (rv = mdb_dbi_open(txn, "clamps", MDB_CREATE, &s->clamps)) != 0 ||
        (rv = mdb_dbi_open(txn, "clamp_log", MDB_CREATE, &s->clamp_log)) != 0 ||
        (rv = mdb_dbi_open(txn, "epochs", MDB_CREATE, &s->epochs)) != 0 ||
        (rv = mdb_dbi_open(txn, "gone", MDB_CREATE, &s->gone)) != 0 ||
        (rv = read_meta(txn, s->meta, &m)) != 0)
        goto err_after_txn;
    if (m.format == 0) {
        /* A new store. */
        if ((rv = meta_put(txn, s->meta, "format", PDS_STORE_FORMAT)) != 0 ||
            (rv = meta_put(txn, s->meta, "epoch", 1)) != 0)
            goto err_after_txn;
    }
    return mdb_txn_commit(txn);

err_after_txn:
    mdb_txn_abort(txn);
    return rv;
}

/*
 * An existing file larger than the first map (it grew, or was preallocated,
 * in an earlier run) is mapped whole at once rather than regrown step by
 * step, up to the budget; LMDB itself never maps less than the pages in
 * use. Returns an LMDB or errno code.
 */
static int use_file_size(struct pds_store *s)
{
    MDB_envinfo info;
    struct stat fst;
    long psize = sysconf(_SC_PAGESIZE);
    size_t size = s->map_size;
    int fd;
    int rv;

    if (psize <= 0)
        psize = 4096;
    rv = mdb_env_get_fd(s->env, &fd);
    if (rv != 0)
        return rv;
    if (fstat(fd, &fst) != 0)
        return errno;
    if ((uint64_t)fst.st_size > size) {
        size = (size_t)fst.st_size / (size_t)psize * (size_t)psize;
        if (size > s->budget)
            size = s->budget;
    }
    rv = mdb_env_info(s->env, &info);
    if (rv != 0)
        return rv;
    if (info.me_mapsize > size)
        size = info.me_mapsize;
    if (size != info.me_mapsize) {
        rv = mdb_env_set_mapsize(s->env, size);
        if (rv != 0)
            return rv;
    }
    s->map_size = size;
    return 0;
}

int pds_store_open(const struct pds_store_config *config,
                   struct pds_store **out,
                   char *errmsg)
{
    struct pds_store *s;
    long psize = sysconf(_SC_PAGESIZE);
    int rv;

    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "out of memory");
        return PDS_ENOMEM;
    }
    snprintf(s->path, sizeof(s->path), "%s", config->path);
    s->budget = config->budget != 0 ? config->budget : DEFAULT_BUDGET;
    s->map_size =
        config->map_initial != 0 ? config->map_initial : DEFAULT_MAP_INITIAL;
    if (psize <= 0)
        psize = 4096;
    s->map_size =
        (s->map_size + (size_t)psize - 1) / (size_t)psize * (size_t)psize;
    if (s->map_size > s->budget)
        s->map_size = s->budget;
    s->retain =
        config->retain_entries != 0 ? config->retain_entries : DEFAULT_RETAIN;
    s->retain_bytes = config->retain_bytes;
    s->retain_ms = config->retain_ms;

    rv = check_format(s, errmsg);
    if (rv != 0)
        goto err_after_alloc;
    if (pthread_rwlock_init(&s->growth_lock, NULL) != 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "out of memory");
        rv = PDS_ENOMEM;
        goto err_after_alloc;
    }
    rv = mdb_env_create(&s->env);
    if (rv == 0)
        rv = mdb_env_set_maxdbs(s->env, 24);
    if (rv == 0)
        rv = mdb_env_set_mapsize(s->env, s->map_size);
    if (rv == 0)
        rv = mdb_env_open(s->env, s->path, MDB_NOTLS, 0600);
    if (rv != 0) {
        rv = open_error(s->path, rv, mdb_strerror(rv), errmsg);
        goto err_after_env;
    }
    rv = use_file_size(s);
    if (rv != 0) {
        rv = open_error(s->path, rv, mdb_strerror(rv), errmsg);
        goto err_after_env;
    }
    rv = open_tables(s);
    if (rv != 0) {
        rv = open_error(s->path, rv, mdb_strerror(rv), errmsg);
        goto err_after_env;
    }
    preallocate(s);
    *out = s;
    return 0;

err_after_env:
    mdb_env_close(s->env);
    pthread_rwlock_destroy(&s->growth_lock);
err_after_alloc:
    free(s);
    return rv;
}

void pds_store_close(struct pds_store *store)
{
    if (store == NULL)
        return;
    mdb_env_close(store->env);
    pthread_rwlock_destroy(&store->growth_lock);
    free(store);
}

const char *pds_store_errmsg(const struct pds_store *store)
{
    return store->errmsg;
}

const char *pds_store_commit_errmsg(const struct pds_store *store)
{
    return store->commit_errmsg;
}

/* ---- Metadata and statistics -------------------------------------------- */

int pds_store_init_node(struct pds_store *store, pds_node_id node_id)
{
    MDB_txn *txn;
    uint64_t cur;
    int rv;

    rv = mdb_txn_begin(store->env, NULL, 0, &txn);
    if (rv != 0)
        goto err;
    rv = meta_get(txn, store->meta, "node_id", &cur);
    if (rv == 0 && cur == 0)
        rv = meta_put(txn, store->meta, "node_id", node_id);
    if (rv != 0) {
        mdb_txn_abort(txn);
        goto err;
    }
    rv = mdb_txn_commit(txn);
    if (rv != 0)
        goto err;
    return 0;

err:
    return set_commit_err(store, translate(rv), "init node: %s",
                          mdb_strerror(rv));
}

int pds_store_meta(struct pds_store *store, struct pds_store_meta *out)
{
    struct pds_store_meta m;
    MDB_txn *txn;
    int rv;

    rv = read_begin(store, &txn);
    if (rv != 0)
        return set_err(store, translate(rv), "meta: %s", mdb_strerror(rv));
    rv = read_meta(txn, store->meta, &m);
    read_end(store, txn);
    if (rv != 0)
        return set_err(store, translate(rv), "meta: %s", mdb_strerror(rv));
    *out = m;
    return 0;
}

int pds_store_epoch_of(struct pds_store *store, pds_index index, pds_epoch *out)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    int rv;

    *out = 1; /* a log older than the epochs table: all of epoch 1 */
    rv = read_begin(store, &txn);
    if (rv != 0)
        return set_err(store, translate(rv), "epochs: %s", mdb_strerror(rv));
    rv = mdb_cursor_open(txn, store->epochs, &cur);
    if (rv == 0) {
        /* Epochs begin at rising indexes: the last one begun by index. */
        rv = mdb_cursor_get(cur, &k, &v, MDB_LAST);
        while (rv == 0) {
            if (k.mv_size != 8 || v.mv_size != 8) {
                rv = MDB_CORRUPTED;
                break;
            }
            if (pds_get_u64be(v.mv_data) <= index) {
                *out = pds_get_u64be(k.mv_data);
                break;
            }
            rv = mdb_cursor_get(cur, &k, &v, MDB_PREV);
        }
        mdb_cursor_close(cur);
    }
    read_end(store, txn);
    if (rv != 0 && rv != MDB_NOTFOUND)
        return set_err(store, translate(rv), "epochs: %s", mdb_strerror(rv));
    return 0;
}

int pds_store_stats(struct pds_store *store, struct pds_store_stats *out)
{
    struct pds_store_stats st;
    MDB_envinfo info;
    MDB_stat mst;
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    int rv;

    memset(&st, 0, sizeof(st));
    rv = read_begin(store, &txn);
    if (rv != 0)
        goto err;
    rv = meta_get(txn, store->meta, "n_records", &st.n_records);
    if (rv == 0)
        rv = mdb_stat(txn, store->log, &mst);
    if (rv == 0) {
        st.n_log = mst.ms_entries;
        rv = mdb_stat(txn, store->clamps, &mst);
    }
    if (rv == 0) {
        st.n_clamps = mst.ms_entries;
        rv = mdb_cursor_open(txn, store->owners, &cur);
    }
    if (rv == 0) {
        while ((rv = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
            if (k.mv_size > 0 && ((uint8_t *)k.mv_data)[0] == PDS_SCOPE_USER)
                st.n_users++;
            else
                st.n_groups++;
        }
        mdb_cursor_close(cur);
        if (rv == MDB_NOTFOUND)
            rv = 0;
    }
    st.map_size = store->map_size; /* under the growth lock */
    read_end(store, txn);
    if (rv != 0)
        goto err;
    if (mdb_env_info(store->env, &info) == 0 &&
        mdb_env_stat(store->env, &mst) == 0)
        st.bytes_used = (uint64_t)(info.me_last_pgno + 1) * mst.ms_psize;
    st.budget = store->budget;
    *out = st;
    return 0;

err:
    return set_err(store, translate(rv), "stats: %s", mdb_strerror(rv));
}

/* ---- Commit ---------------------------------------------------------------
 */

static int
owner_key(enum pds_scope scope, const char *owner, size_t len, uint8_t *buf)
{
    buf[0] = (uint8_t)scope;
    memcpy(buf + 1, owner, len);
    return (int)(len + 1);
}

/*
 * Is there a live (non-tombstone) record at key? The cursor is left at or
 * after the key, so that the put that follows finds its page at once.
 */
static int is_live(MDB_cursor *cur, const MDB_val *key, int *live)
{
    struct pds_record rec;
    MDB_val k = *key, v;
    int rv = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);

    *live = 0;
    if (rv == MDB_NOTFOUND)
        return 0;
    if (rv != 0)
        return rv;
    if (k.mv_size != key->mv_size ||
        memcmp(k.mv_data, key->mv_data, k.mv_size) != 0)
        return 0;
    if (pds_record_decode(v.mv_data, v.mv_size, &rec) != 0)
        return MDB_CORRUPTED;
    *live = !rec.is_tombstone;
    return 0;
}

/* Forget the owners noted so far: their slots become free. */
static void touched_reset(struct pds_store *s)
{
    s->n_touched = 0;
    if (++s->touched_gen == 0) { /* wrapped: no slot may look current */
        memset(s->touched, 0, sizeof(s->touched));
        s->touched_gen = 1;
    }
}

/* Stamp every owner touched by this commit with its time (see touch()). */
static int touched_flush(struct pds_store *s, MDB_txn *txn, pds_time now)
{
    uint8_t obuf[1 + PDS_OWNER_MAX];
    uint8_t tbuf[8];
    MDB_val ok, ov = {8, tbuf};
    size_t i;
    int rv = 0;

    pds_put_u64be(tbuf, now);
    for (i = 0; i < s->n_touched && rv == 0; i++) {
        const struct touched *t = &s->touched[s->touched_used[i]];
        ok.mv_data = obuf;
        ok.mv_size = (size_t)owner_key(t->scope, t->owner, t->len, obuf);
        rv = mdb_put(txn, s->owners, &ok, &ov, 0);
    }
    touched_reset(s);
    return rv;
}

/* Note that this commit wrote to the entry's owner. */
static int touch(struct pds_store *s,
                 MDB_txn *txn,
                 const struct pds_entry *e,
                 pds_time now)
{
    uint32_t h = 2166136261u ^ (uint32_t)e->key.scope;
    size_t i;

    for (i = 0; i < e->key.owner_len; i++)
        h = (h ^ (uint8_t)e->key.owner[i]) * 16777619u;
    for (i = h & (OWNER_SLOTS - 1);; i = (i + 1) & (OWNER_SLOTS - 1)) {
        struct touched *t = &s->touched[i];
        if (t->gen != s->touched_gen) {
            t->gen = s->touched_gen;
            t->scope = (uint8_t)e->key.scope;
            t->len = (uint16_t)e->key.owner_len;
            t->owner = e->key.owner;
            s->touched_used[s->n_touched++] = (uint16_t)i;
            break;
        }
        if (t->scope == (uint8_t)e->key.scope && t->len == e->key.owner_len &&
            memcmp(t->owner, e->key.owner, t->len) == 0)
            return 0;
    }
    /* Half full: stamp these now and start again. */
    if (s->n_touched == OWNER_SLOTS / 2)
        return touched_flush(s, txn, now);
    return 0;
}

/* Delete every key of dbi that starts with prefix. */
static int
del_range(MDB_txn *txn, MDB_dbi dbi, const uint8_t *prefix, size_t plen)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rv = mdb_cursor_open(txn, dbi, &cur);

    if (rv != 0)
        return rv;
    k.mv_data = (void *)prefix;
    k.mv_size = plen;
    rv = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rv == 0 && k.mv_size >= plen &&
           memcmp(k.mv_data, prefix, plen) == 0) {
        rv = mdb_cursor_del(cur, 0);
        if (rv != 0)
            break;
        k.mv_data = (void *)prefix;
        k.mv_size = plen;
        rv = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    }
    mdb_cursor_close(cur);
    return rv == MDB_NOTFOUND ? 0 : rv;
}

/*
 * An item's sharing scope changes. To device-specific: every device keeps
 * the group's current value of that item for each owner as its own (the
 * local table), and from then on reads and writes of it stay there. Back
 * to shared: the local values are dropped and the group's values rule.
 */
static int
apply_scope(struct pds_store *s, MDB_txn *txn, const struct pds_entry *e)
{
    MDB_val k = {e->key.item_len, (void *)e->key.item};
    MDB_val v = {1, (void *)e->value};
    MDB_cursor *cur;
    MDB_val rk, rv_;
    int rv;

    rv = mdb_cursor_open(txn, s->records, &cur);
    if (rv != 0)
        return rv;
    while ((rv = mdb_cursor_get(cur, &rk, &rv_, MDB_NEXT)) == 0) {
        struct pds_key key;
        if (pds_reckey_decode(rk.mv_data, rk.mv_size, &key) != 0) {
            rv = MDB_CORRUPTED;
            break;
        }
        if (key.item_len != e->key.item_len ||
            memcmp(key.item, e->key.item, key.item_len) != 0)
            continue;
        if (e->value[0] == 1)
            rv = mdb_put(txn, s->local, &rk, &rv_, 0);
        else {
            rv = mdb_del(txn, s->local, &rk, NULL);
            if (rv == MDB_NOTFOUND)
                rv = 0;
        }
        if (rv != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (rv != 0 && rv != MDB_NOTFOUND)
        return rv;
    if (e->value[0] == 0) {
        /* Device values of owners the group never had go too. */
        MDB_cursor *lc;
        rv = mdb_cursor_open(txn, s->local, &lc);
        if (rv != 0)
            return rv;
        while ((rv = mdb_cursor_get(lc, &rk, &rv_, MDB_NEXT)) == 0) {
            struct pds_key key;
            if (pds_reckey_decode(rk.mv_data, rk.mv_size, &key) == 0 &&
                key.item_len == e->key.item_len &&
                memcmp(key.item, e->key.item, key.item_len) == 0) {
                rv = mdb_cursor_del(lc, 0);
                if (rv != 0)
                    break;
            }
        }
        mdb_cursor_close(lc);
        if (rv != 0 && rv != MDB_NOTFOUND)
            return rv;
        rv = mdb_del(txn, s->scopes, &k, NULL);
        return rv == MDB_NOTFOUND ? 0 : rv;
    }
    return mdb_put(txn, s->scopes, &k, &v, 0);
}

/* A row of the gone table: an owner's last delete-user, its version and
 * log index (u64be hlc, node, index). */
#define GONE_BYTES 24

static void
gone_encode(const struct pds_version *v, pds_index index, uint8_t *buf)
{
    pds_put_u64be(buf, v->hlc);
    pds_put_u64be(buf + 8, v->node);
    pds_put_u64be(buf + 16, index);
}

static int
gone_decode(const MDB_val *val, struct pds_version *v, pds_index *index)
{
    const uint8_t *p = val->mv_data;

    if (val->mv_size != GONE_BYTES)
        return MDB_CORRUPTED;
    v->hlc = pds_get_u64be(p);
    v->node = pds_get_u64be(p + 8);
    *index = pds_get_u64be(p + 16);
    return 0;
}

/* A put or delete of one record, at its encoded key. */
static int apply_record(struct pds_store *s,
                        MDB_txn *txn,
                        MDB_cursor *rcur,
                        const struct pds_entry *e,
                        const MDB_val *k,
                        pds_time now,
                        int64_t *d_records)
{
    MDB_val v;
    int live;
    int rv;

    rv = is_live(rcur, k, &live);
    if (rv != 0)
        return rv;
    {
        struct pds_record rec;
        rec.version = e->version;
        rec.index = e->index;
        rec.is_tombstone = e->op == PDS_OP_DEL;
        rec.value = e->value;
        rec.value_len = e->value_len;
        v.mv_size = pds_record_size(&rec);
        rv = mdb_cursor_put(rcur, (MDB_val *)k, &v, MDB_RESERVE);
        if (rv != 0)
            return rv;
        pds_record_encode(&rec, v.mv_data);
        if (live && rec.is_tombstone)
            (*d_records)--;
        else if (!live && !rec.is_tombstone)
            (*d_records)++;
    }
    return touch(s, txn, e, now);
}

/* Apply one entry to the records and owners tables. */
static int apply(struct pds_store *s,
                 MDB_txn *txn,
                 MDB_cursor *rcur,
                 const struct pds_entry *e,
                 pds_time now,
                 int64_t *d_records)
{
    uint8_t kbuf[PDS_RECKEY_MAX];
    uint8_t obuf[1 + PDS_OWNER_MAX];
    MDB_val k, v, ok;
    int rv;

    if (e->op == PDS_OP_SCOPE)
        return apply_scope(s, txn, e);
    if (e->op == PDS_OP_DEL_OWNER) {
        /* Owners stamped earlier in this commit first, then the delete. */
        rv = touched_flush(s, txn, now);
        if (rv != 0)
            return rv;
        ok.mv_data = obuf;
        ok.mv_size = (size_t)owner_key(e->key.scope, e->key.owner,
                                       e->key.owner_len, obuf);
        rv = del_range(txn, s->local, kbuf,
                       pds_reckey_prefix(e->key.scope, e->key.owner,
                                         e->key.owner_len, kbuf));
        if (rv != 0)
            return rv;
        MDB_cursor *cur;
        size_t plen = pds_reckey_prefix(e->key.scope, e->key.owner,
                                        e->key.owner_len, kbuf);
        rv = mdb_cursor_open(txn, s->records, &cur);
        if (rv != 0)
            return rv;
        k.mv_data = kbuf;
        k.mv_size = plen;
        rv = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        while (rv == 0 && k.mv_size >= plen &&
               memcmp(k.mv_data, kbuf, plen) == 0) {
            struct pds_record rec;
            if (pds_record_decode(v.mv_data, v.mv_size, &rec) != 0) {
                rv = MDB_CORRUPTED;
                break;
            }
            if (!rec.is_tombstone)
                (*d_records)--;
            rv = mdb_cursor_del(cur, 0);
            if (rv != 0)
                break;
            /* Seek again rather than rely on the cursor after a delete. */
            k.mv_data = kbuf;
            k.mv_size = plen;
            rv = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        }
        mdb_cursor_close(cur);
        if (rv != 0 && rv != MDB_NOTFOUND)
            return rv;
        rv = mdb_del(txn, s->owners, &ok, NULL);
        if (rv != 0 && rv != MDB_NOTFOUND)
            return rv;
        /* What was deleted and when: an older write of the owner that
         * comes later loses to it, as to any newer version. */
        {
            uint8_t gb[GONE_BYTES];
            struct pds_version was;
            pds_index was_index;
            MDB_val gv;
            rv = mdb_get(txn, s->gone, &ok, &gv);
            if (rv == 0 && gone_decode(&gv, &was, &was_index) == 0 &&
                pds_version_cmp(&was, &e->version) >= 0)
                return 0;
            if (rv != 0 && rv != MDB_NOTFOUND)
                return rv;
            gv.mv_size = sizeof(gb);
            gv.mv_data = gb;
            gone_encode(&e->version, e->index, gb);
            return mdb_put(txn, s->gone, &ok, &gv, 0);
        }
    }

    k.mv_data = kbuf;
    k.mv_size = pds_reckey_encode(&e->key, kbuf);
    return apply_record(s, txn, rcur, e, &k, now, d_records);
}

/*
 * Delete the oldest log entries beyond the retention: the count, the bytes
 * (as the log's pages measure them) and the age (the entry's clock). The
 * newest entry always stays, so the log says where it ends.
 */
static int trim_log(struct pds_store *s,
                    MDB_txn *txn,
                    pds_index last,
                    pds_index *first,
                    pds_time now)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int64_t over = 0;
    pds_index hold;
    int rv;

    if (*first == 0)
        return 0;
    if (s->retain_bytes != 0) {
        MDB_stat st;
        rv = mdb_stat(txn, s->log, &st);
        if (rv != 0)
            return rv;
        over = (int64_t)((uint64_t)st.ms_psize *
                         (st.ms_branch_pages + st.ms_leaf_pages +
                          st.ms_overflow_pages)) -
               (int64_t)s->retain_bytes;
    }
    if (last - *first + 1 <= s->retain && over <= 0 && s->retain_ms == 0)
        return 0;
    /* A hold keeps at most one more retention's worth (10,000 entries at
     * least); the byte bound always applies. */
    hold = __atomic_load_n(&s->hold, __ATOMIC_RELAXED);
    if (hold != 0 && last - hold > (s->retain > 10000 ? s->retain : 10000))
        hold = 0;
    rv = mdb_cursor_open(txn, s->log, &cur);
    if (rv != 0)
        return rv;
    while (*first < last) {
        int expired = 0;
        if (hold != 0 && *first > hold && over <= 0)
            break;
        rv = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        if (rv != 0)
            break;
        if (s->retain_ms != 0) {
            struct pds_entry e;
            expired = pds_entry_decode(v.mv_data, v.mv_size, &e) == 0 &&
                      PDS_HLC_MS(e.version.hlc) + s->retain_ms < now;
        }
        if (last - *first + 1 <= s->retain && over <= 0 && !expired)
            break;
        over -= (int64_t)(v.mv_size + k.mv_size + 16);
        rv = mdb_cursor_del(cur, 0);
        if (rv != 0)
            break;
        (*first)++;
    }
    mdb_cursor_close(cur);
    return rv == MDB_NOTFOUND ? 0 : rv;
}

/* ---- Clamped writes' memo --------------------------------------------- */

/*
 * A memo is stored in the core's wire form (pds_clamp_encode): its first
 * 16 bytes (origin node and clock) key the clamps table, the other 32
 * (stamp clock and node, epoch, index) are the value, and the first 24
 * (origin and stamp clock) are its order row in clamp_log.
 */
static void
clamp_from(const void *key, const void *value, struct pds_clamp *out)
{
    uint8_t buf[PDS_CLAMP_BYTES];

    memcpy(buf, key, 16);
    memcpy(buf + 16, value, 32);
    pds_clamp_decode(buf, out);
}

static int put_clamps(struct pds_store *s,
                      MDB_txn *txn,
                      const struct pds_clamp *clamps,
                      size_t n)
{
    size_t i;
    int rv = 0;

    for (i = 0; i < n && rv == 0; i++) {
        uint8_t buf[PDS_CLAMP_BYTES], ibuf[8];
        MDB_val k = {16, buf}, v = {32, buf + 16};
        MDB_val ik = {sizeof(ibuf), ibuf}, iv = {24, buf};
        MDB_val old;
        pds_clamp_encode(&clamps[i], buf);
        /* A memo of the same origin under another entry (a follower that
         * keeps its log longer than the server did): its order row goes,
         * so that trimming it never takes this one. */
        rv = mdb_get(txn, s->clamps, &k, &old);
        if (rv == 0 && old.mv_size == 32 &&
            pds_get_u64be((uint8_t *)old.mv_data + 24) != clamps[i].index) {
            pds_put_u64be(ibuf, pds_get_u64be((uint8_t *)old.mv_data + 24));
            rv = mdb_del(txn, s->clamp_log, &ik, NULL);
        }
        if (rv != 0 && rv != MDB_NOTFOUND)
            break;
        pds_put_u64be(ibuf, clamps[i].index);
        rv = mdb_put(txn, s->clamps, &k, &v, 0);
        if (rv == 0)
            rv = mdb_put(txn, s->clamp_log, &ik, &iv, 0);
    }
    return rv;
}

/*
 * A memo lives while its entry is in the log, and at least
 * CLAMP_KEEP_MS after its stamp (a client's outbox may send the write
 * again long after: a printer off for weeks), up to CLAMP_KEEP_MAX memos.
 * The oldest go first; only what goes is read.
 */
#define CLAMP_KEEP_MS (30ULL * 24 * 3600 * 1000)
#define CLAMP_KEEP_MAX 100000

static int
trim_clamps(struct pds_store *s, MDB_txn *txn, pds_index first, pds_time now)
{
    MDB_cursor *cur;
    MDB_stat st;
    MDB_val k, v;
    int rv;

    rv = mdb_stat(txn, s->clamp_log, &st);
    if (rv != 0 || st.ms_entries == 0)
        return rv;
    rv = mdb_cursor_open(txn, s->clamp_log, &cur);
    if (rv != 0)
        return rv;
    while ((rv = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0) {
        int keep = k.mv_size == 8 && v.mv_size == 24 &&
                   (pds_get_u64be(k.mv_data) >= first ||
                    PDS_HLC_MS(pds_get_u64be((uint8_t *)v.mv_data + 16)) +
                            CLAMP_KEEP_MS >=
                        now);
        if (keep && st.ms_entries <= CLAMP_KEEP_MAX)
            break;
        {
            MDB_val mk = {16, v.mv_data}, mv; /* the memo's key */
            rv = mdb_get(txn, s->clamps, &mk, &mv);
            /* Only this row's memo: one of the same origin under a later
             * entry stays. */
            if (rv == 0 && mv.mv_size == 32 &&
                pds_get_u64be((uint8_t *)mv.mv_data + 24) ==
                    pds_get_u64be(k.mv_data))
                rv = mdb_del(txn, s->clamps, &mk, NULL);
        }
        if (rv == 0 || rv == MDB_NOTFOUND)
            rv = mdb_cursor_del(cur, 0);
        if (rv != 0)
            break;
        st.ms_entries--;
    }
    mdb_cursor_close(cur);
    return rv == MDB_NOTFOUND ? 0 : rv;
}

/* Is the file system of the store (nearly) out of space? */
static int is_disk_full(struct pds_store *s)
{
    struct statvfs vfs;

    if (statvfs(s->path, &vfs) != 0)
        return 0;
    return (uint64_t)vfs.f_bavail * vfs.f_frsize < ((uint64_t)1 << 20);
}

/*
 * Double the map, up to the budget, after MDB_MAP_FULL. No transaction of
 * this process may be active: the caller has ended its write transaction
 * and the growth lock waits for the readers. Returns MDB_MAP_FULL when the
 * map already is the budget, else an LMDB code.
 */
static int grow_map(struct pds_store *s)
{
    size_t grown;
    int rv = 0;

    pthread_rwlock_wrlock(&s->growth_lock);
    if (s->map_size >= s->budget) {
        pthread_rwlock_unlock(&s->growth_lock);
        return MDB_MAP_FULL;
    }
    grown = s->map_size * 2;
    if (grown > s->budget || grown < s->map_size)
        grown = s->budget;
    rv = mdb_env_set_mapsize(s->env, grown);
    if (rv == 0) {
        s->map_size = grown;
        preallocate(s);
    }
    pthread_rwlock_unlock(&s->growth_lock);
    return rv;
}

/*
 * Entries come from the core, or from the network through
 * pds_entry_decode(); the lengths are checked again here because they size
 * the key buffers below.
 */
static int entry_is_valid(const struct pds_entry *e)
{
    if (e->op != PDS_OP_PUT && e->op != PDS_OP_DEL &&
        e->op != PDS_OP_DEL_OWNER && e->op != PDS_OP_SCOPE)
        return 0;
    if (e->op == PDS_OP_SCOPE && (e->value_len != 1 || e->value[0] > 1))
        return 0;
    if (e->key.scope != PDS_SCOPE_USER && e->key.scope != PDS_SCOPE_GROUP)
        return 0;
    if (e->key.owner_len == 0 || e->key.owner_len > PDS_OWNER_MAX ||
        e->key.item_len > PDS_ITEM_MAX || e->value_len > PDS_VALUE_MAX)
        return 0;
    if (e->op != PDS_OP_DEL_OWNER && e->key.item_len == 0)
        return 0;
    return 1;
}

/* A record key of a batch, for applying the batch in key order. */
struct keyed {
    const uint8_t *key;
    uint32_t len;
    uint32_t i; /* position in the batch: equal keys keep their order */
};

static int keyed_cmp(const void *a, const void *b)
{
    const struct keyed *x = a, *y = b;
    int c = memcmp(x->key, y->key, x->len < y->len ? x->len : y->len);

    if (c != 0)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/*
 * Apply a batch of puts and deletes in the order of their keys (a later
 * entry of the same key still after an earlier one): each page of the
 * records is then found once, and the cursor stays on it. *done is 0
 * when the batch holds other operations or no memory is at hand (nothing
 * was applied): the caller applies it in log order instead.
 */
static int apply_sorted(struct pds_store *s,
                        MDB_txn *txn,
                        MDB_cursor *rcur,
                        const struct pds_entry *entries,
                        size_t n,
                        pds_time now,
                        int64_t *d_records,
                        int *done)
{
    struct keyed *order;
    uint8_t *keys;
    size_t i, off = 0, bytes = 0;
    int rv = 0;

    *done = 0;
    for (i = 0; i < n; i++) {
        if (entries[i].op != PDS_OP_PUT && entries[i].op != PDS_OP_DEL)
            return 0;
        bytes += 2 + entries[i].key.owner_len + entries[i].key.item_len;
    }
    order = malloc(n * sizeof(*order));
    keys = malloc(bytes);
    if (order == NULL || keys == NULL) {
        free(order);
        free(keys);
        return 0;
    }
    *done = 1;
    for (i = 0; i < n; i++) {
        order[i].key = keys + off;
        order[i].len = (uint32_t)pds_reckey_encode(&entries[i].key, keys + off);
        order[i].i = (uint32_t)i;
        off += order[i].len;
    }
    qsort(order, n, sizeof(*order), keyed_cmp);
    for (i = 0; i < n && rv == 0; i++) {
        MDB_val k = {order[i].len, (void *)order[i].key};
        rv = apply_record(s, txn, rcur, &entries[order[i].i], &k, now,
                          d_records);
    }
    free(order);
    free(keys);
    return rv;
}

/* The first entry of epoch is at index (kept when already known). */
static int epoch_begins(struct pds_store *s,
                        MDB_txn *txn,
                        pds_epoch epoch,
                        pds_index index)
{
    uint8_t kb[8], vb[8];
    MDB_val k = {8, kb}, v = {8, vb};
    int rv;

    pds_put_u64be(kb, epoch);
    pds_put_u64be(vb, index);
    rv = mdb_put(txn, s->epochs, &k, &v, MDB_NOOVERWRITE);
    return rv == MDB_KEYEXIST ? 0 : rv;
}

/* One attempt at the whole transaction; MDB_MAP_FULL is returned as is. */
static int commit_once(struct pds_store *s,
                       const struct pds_entry *entries,
                       size_t n,
                       const struct pds_clamp *clamps,
                       size_t n_clamps,
                       pds_time now)
{
    struct pds_store_meta m;
    MDB_txn *txn;
    MDB_cursor *rcur;
    int sorted;
    uint64_t n_records;
    int64_t d_records = 0;
    pds_hlc hlc;
    size_t i;
    int rv;

    rv = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rv != 0)
        return rv;
    rv = read_meta(txn, s->meta, &m);
    if (rv == 0)
        rv = meta_get(txn, s->meta, "n_records", &n_records);
    if (rv == 0)
        rv = mdb_cursor_open(txn, s->records, &rcur); /* freed with txn */
    if (rv != 0)
        goto err_after_txn;
    touched_reset(s);
    if (entries[0].index != m.last_index + 1) {
        mdb_txn_abort(txn);
        return set_commit_err(
            s, PDS_EINVAL,
            "commit: entry %llu does not follow the last index "
            "%llu (nothing was written)",
            (unsigned long long)entries[0].index,
            (unsigned long long)m.last_index);
    }
    hlc = m.last_hlc;
    /* The memos first: nothing of them stays if an entry fails. */
    rv = put_clamps(s, txn, clamps, n_clamps);
    if (rv != 0)
        goto err_after_txn;
    for (i = 0; i < n; i++) {
        const struct pds_entry *e = &entries[i];
        uint8_t kbuf[8];
        MDB_val k = {8, kbuf};
        MDB_val v;
        if (!entry_is_valid(e)) {
            mdb_txn_abort(txn);
            return set_commit_err(s, PDS_EINVAL,
                                  "commit: entry %llu is malformed (nothing "
                                  "was written)",
                                  (unsigned long long)e->index);
        }
        if (i > 0 && e->index != entries[i - 1].index + 1) {
            mdb_txn_abort(txn);
            return set_commit_err(s, PDS_EINVAL,
                                  "commit: gap between entries %llu and %llu "
                                  "(nothing was written)",
                                  (unsigned long long)entries[i - 1].index,
                                  (unsigned long long)e->index);
        }
        pds_put_u64be(kbuf, e->index);
        v.mv_size = pds_entry_size(e);
        rv = mdb_put(txn, s->log, &k, &v, MDB_APPEND | MDB_RESERVE);
        if (rv != 0)
            goto err_after_txn;
        pds_entry_encode(e, v.mv_data);
        if (e->epoch != (i > 0 ? entries[i - 1].epoch : m.last_epoch)) {
            rv = epoch_begins(s, txn, e->epoch, e->index);
            if (rv != 0)
                goto err_after_txn;
        }
        if (e->version.hlc > hlc)
            hlc = e->version.hlc;
    }
    sorted = 0;
    rv = n >= SORT_MIN
             ? apply_sorted(s, txn, rcur, entries, n, now, &d_records, &sorted)
             : 0;
    for (i = 0; !sorted && i < n && rv == 0; i++)
        rv = apply(s, txn, rcur, &entries[i], now, &d_records);
    if (rv != 0)
        goto err_after_txn;
    if (m.first_index == 0)
        m.first_index = entries[0].index;
    m.last_index = entries[n - 1].index;
    m.last_epoch = entries[n - 1].epoch;
    rv = touched_flush(s, txn, now);
    if (rv == 0)
        rv = trim_log(s, txn, m.last_index, &m.first_index, now);
    if (rv == 0)
        rv = trim_clamps(s, txn, m.first_index, now);
    if (rv == 0)
        rv = meta_put(txn, s->meta, "last_index", m.last_index);
    if (rv == 0)
        rv = meta_put(txn, s->meta, "last_epoch", m.last_epoch);
    if (rv == 0)
        rv = meta_put(txn, s->meta, "first_index", m.first_index);
    if (rv == 0)
        rv = meta_put(txn, s->meta, "last_hlc", hlc);
    if (rv == 0)
        rv = meta_put(txn, s->meta, "n_records",
                      (uint64_t)((int64_t)n_records + d_records));
    if (rv != 0)
        goto err_after_txn;
    return mdb_txn_commit(txn); /* On failure LMDB has freed the txn. */

err_after_txn:
    mdb_txn_abort(txn);
    return rv;
}

int pds_store_commit(struct pds_store *store,
                     const struct pds_entry *entries,
                     size_t n_entries,
                     pds_time now)
{
    return pds_store_commit_clamped(store, entries, n_entries, NULL, 0, now);
}

int pds_store_commit_clamped(struct pds_store *store,
                             const struct pds_entry *entries,
                             size_t n_entries,
                             const struct pds_clamp *clamps,
                             size_t n_clamps,
                             pds_time now)
{
    int rv;

    if (n_entries == 0)
        return 0;
    for (;;) {
        /* Held for the transaction: map growth waits for it (the commit
         * may run on another thread than the daemon's other writes). */
        pthread_rwlock_rdlock(&store->growth_lock);
        rv = commit_once(store, entries, n_entries, clamps, n_clamps, now);
        pthread_rwlock_unlock(&store->growth_lock);
        if (rv > PDS_EFIRST && rv < PDS_ELAST)
            return rv; /* already a PDS_E code with its message */
        if (rv != MDB_MAP_FULL)
            break;
        rv = grow_map(store);
        if (rv == MDB_MAP_FULL)
            return set_commit_err(
                store, PDS_ENOSPC,
                "storage budget exhausted: the data needs more "
                "than storage_budget = %zu bytes; delete users "
                "or raise storage_budget (nothing was written)",
                store->budget);
        if (rv != 0)
            break;
    }
    if (rv == EIO && is_disk_full(store))
        rv = ENOSPC; /* LMDB reports a short write as EIO */
    if (rv == ENOSPC || rv == EDQUOT)
        return set_commit_err(store, PDS_EFULL,
                              "the file system of the data directory is "
                              "full (%s): nothing was written; free space "
                              "there",
                              mdb_strerror(rv));
    if (rv != 0)
        return set_commit_err(store, translate(rv),
                              "commit: %s (nothing was written)",
                              mdb_strerror(rv));
    return 0;
}

/* ---- Reads ----------------------------------------------------------------
 */

int pds_store_clamp_get(struct pds_store *store,
                        const struct pds_version *origin,
                        struct pds_clamp *out)
{
    struct pds_clamp q;
    uint8_t kbuf[PDS_CLAMP_BYTES];
    MDB_val k = {16, kbuf}, v;
    MDB_txn *txn;
    int rv;

    memset(&q, 0, sizeof(q));
    q.origin = *origin;
    pds_clamp_encode(&q, kbuf); /* the key: its first 16 bytes */
    rv = read_begin(store, &txn);
    if (rv != 0)
        return translate(rv);
    rv = mdb_get(txn, store->clamps, &k, &v);
    if (rv == 0 && v.mv_size == 32)
        clamp_from(kbuf, v.mv_data, out);
    read_end(store, txn);
    if (rv == MDB_NOTFOUND)
        return PDS_ENOTFOUND;
    if (rv == 0 && v.mv_size != 32)
        return PDS_ECORRUPT;
    return rv == 0 ? 0 : translate(rv);
}

int pds_store_clamps_range(struct pds_store *store,
                           pds_index first,
                           pds_index last,
                           struct pds_clamp **out,
                           size_t *n_out)
{
    struct pds_clamp *arr = NULL;
    size_t n = 0, cap = 0;
    uint8_t ibuf[8];
    MDB_val k = {sizeof(ibuf), ibuf}, v;
    MDB_cursor *cur = NULL;
    MDB_txn *txn;
    int rv;

    *out = NULL;
    *n_out = 0;
    pds_put_u64be(ibuf, first);
    rv = read_begin(store, &txn);
    if (rv != 0)
        return set_err(store, translate(rv), "restamp memos: %s",
                       mdb_strerror(rv));
    rv = mdb_cursor_open(txn, store->clamp_log, &cur);
    if (rv == 0)
        rv = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rv == 0 && k.mv_size == 8 && pds_get_u64be(k.mv_data) <= last) {
        MDB_val mk = {16, v.mv_data}, mv;
        struct pds_clamp c;
        int have = 0;
        if (v.mv_size != 24) {
            rv = MDB_CORRUPTED;
            break;
        }
        rv = mdb_get(txn, store->clamps, &mk, &mv);
        if (rv == MDB_NOTFOUND) {
            rv = 0; /* no memo under this entry: nothing to send */
        } else if (rv == 0 && mv.mv_size != 32) {
            rv = MDB_CORRUPTED;
        } else if (rv == 0) {
            clamp_from(v.mv_data, mv.mv_data, &c);
            /* A memo of the same origin under a later entry is not this
             * row's. */
            have = c.index == pds_get_u64be(k.mv_data);
        }
        if (have && n == cap) {
            struct pds_clamp *bigger;
            cap = cap ? cap * 2 : 8;
            bigger = realloc(arr, cap * sizeof(*arr));
            if (bigger == NULL) {
                rv = ENOMEM;
                break;
            }
            arr = bigger;
        }
        if (have)
            arr[n++] = c;
        if (rv == 0)
            rv = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (cur != NULL)
        mdb_cursor_close(cur);
    read_end(store, txn);
    if (rv != 0 && rv != MDB_NOTFOUND) {
        free(arr);
        if (rv == ENOMEM)
            return set_err(store, PDS_ENOMEM, "restamp memos: out of memory");
        return set_err(store, translate(rv), "restamp memos: %s",
                       mdb_strerror(rv));
    }
    *out = arr;
    *n_out = n;
    return 0;
}

int pds_store_get(struct pds_store *store,
                  const struct pds_key *key,
                  struct pds_record *rec,
                  uint8_t **value)
{
    uint8_t kbuf[PDS_RECKEY_MAX];
    struct pds_record r;
    uint8_t *copy = NULL;
    MDB_txn *txn;
    MDB_val k, v;
    int rv;

    if (key->owner_len > PDS_OWNER_MAX || key->item_len > PDS_ITEM_MAX)
        return set_err(store, PDS_EINVAL, "get: key too long");
    k.mv_data = kbuf;
    k.mv_size = pds_reckey_encode(key, kbuf);
    rv = read_begin(store, &txn);
    if (rv != 0)
        return set_err(store, translate(rv), "get: %s", mdb_strerror(rv));
    rv = mdb_get(txn, store->records, &k, &v);
    if (rv == MDB_NOTFOUND) {
        read_end(store, txn);
        return set_err(store, PDS_ENOTFOUND, "get: not found");
    }
    if (rv != 0) {
        read_end(store, txn);
        return set_err(store, translate(rv), "get: %s", mdb_strerror(rv));
    }
    if (pds_record_decode(v.mv_data, v.mv_size, &r) != 0) {
        read_end(store, txn);
        return set_err(store, PDS_ECORRUPT, "get: record is damaged");
    }
    /* Copy out before the read transaction ends. */
    copy = malloc(r.value_len + 1);
    if (copy == NULL) {
        read_end(store, txn);
        return set_err(store, PDS_ENOMEM, "get: out of memory");
    }
    if (r.value_len > 0)
        memcpy(copy, r.value, r.value_len);
    read_end(store, txn);
    r.value = copy;
    *rec = r;
    *value = copy;
    return 0;
}

static int list_dbi(struct pds_store *store,
                    MDB_dbi dbi,
                    enum pds_scope scope,
                    const char *owner,
                    size_t owner_len,
                    int with_tombstones,
                    pds_store_record_cb cb,
                    void *arg)
{
    uint8_t prefix[PDS_RECKEY_MAX];
    size_t plen = 0;
    MDB_cursor *cur;
    MDB_txn *txn;
    MDB_val k, v;
    int cb_rv = 0;
    int rv;

    if (owner != NULL) {
        if (owner_len > PDS_OWNER_MAX)
            return set_err(store, PDS_EINVAL, "list: owner too long");
        plen = pds_reckey_prefix(scope, owner, owner_len, prefix);
    }
    rv = read_begin(store, &txn);
    if (rv != 0)
        return set_err(store, translate(rv), "list: %s", mdb_strerror(rv));
    rv = mdb_cursor_open(txn, dbi, &cur);
    if (rv != 0) {
        read_end(store, txn);
        return set_err(store, translate(rv), "list: %s", mdb_strerror(rv));
    }
    k.mv_data = prefix;
    k.mv_size = plen;
    rv = plen > 0 ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)
                  : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rv == 0) {
        struct pds_key key;
        struct pds_record rec;
        if (plen > 0 &&
            (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0))
            break;
        if (pds_reckey_decode(k.mv_data, k.mv_size, &key) != 0 ||
            pds_record_decode(v.mv_data, v.mv_size, &rec) != 0) {
            rv = MDB_CORRUPTED;
            break;
        }
        if (with_tombstones || !rec.is_tombstone) {
            cb_rv = cb(arg, &key, &rec);
            if (cb_rv != 0)
                break;
        }
        rv = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    read_end(store, txn);
    if (rv != 0 && rv != MDB_NOTFOUND)
        return set_err(store, translate(rv), "list: %s", mdb_strerror(rv));
    return cb_rv;
}

int pds_store_list(struct pds_store *store,
                   enum pds_scope scope,
                   const char *owner,
                   size_t owner_len,
                   pds_store_record_cb cb,
                   void *arg)
{
    return list_dbi(store, store->records, scope, owner, owner_len, 0, cb, arg);
}

int pds_store_local_list(struct pds_store *store,
                         enum pds_scope scope,
                         const char *owner,
                         size_t owner_len,
                         pds_store_record_cb cb,
                         void *arg)
{
    return list_dbi(store, store->local, scope, owner, owner_len, 0, cb, arg);
}

/*
 * Walk every row of a table in one read transaction. `each` gets the raw
 * key and value (valid during the call) and returns 0 to go on, or a
 * non-zero result that stops the walk and is returned; PDS_ECORRUPT from it
 * means a damaged row and is reported with `what` as context.
 */
static int scan(struct pds_store *store,
                MDB_dbi dbi,
                const char *what,
                int (*each)(void *ctx, const MDB_val *k, const MDB_val *v),
                void *ctx)
{
    MDB_cursor *cur;
    MDB_txn *txn;
    MDB_val k, v;
    int each_rv = 0;
    int rv;

    rv = read_begin(store, &txn);
    if (rv != 0)
        return set_err(store, translate(rv), "%s: %s", what, mdb_strerror(rv));
    rv = mdb_cursor_open(txn, dbi, &cur);
    if (rv != 0) {
        read_end(store, txn);
        return set_err(store, translate(rv), "%s: %s", what, mdb_strerror(rv));
    }
    while ((rv = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        each_rv = each(ctx, &k, &v);
        if (each_rv != 0)
            break;
    }
    mdb_cursor_close(cur);
    read_end(store, txn);
    if (each_rv == PDS_ECORRUPT)
        rv = MDB_CORRUPTED;
    if (rv != 0 && rv != MDB_NOTFOUND)
        return set_err(store, translate(rv), "%s: %s", what, mdb_strerror(rv));
    return each_rv;
}

/* The public callback behind a scan, and its argument. */
struct scan_cb {
    union {
        pds_store_owner_cb owner;
        pds_store_member_cb member;
        pds_store_scope_cb scope;
    } cb;
    void *arg;
};

static int each_owner(void *ctx, const MDB_val *k, const MDB_val *v)
{
    struct scan_cb *sc = ctx;
    const uint8_t *p = k->mv_data;
    struct pds_owner_info o;

    if (k->mv_size < 2 || p[0] > PDS_SCOPE_GROUP || v->mv_size != 8)
        return PDS_ECORRUPT;
    o.scope = (enum pds_scope)p[0];
    o.owner = (const char *)p + 1;
    o.owner_len = k->mv_size - 1;
    o.last_used = pds_get_u64be(v->mv_data);
    return sc->cb.owner(sc->arg, &o);
}

int pds_store_owners(struct pds_store *store, pds_store_owner_cb cb, void *arg)
{
    struct scan_cb sc;

    sc.cb.owner = cb;
    sc.arg = arg;
    return scan(store, store->owners, "owners", each_owner, &sc);
}

int pds_store_owner_gone(struct pds_store *store,
                         enum pds_scope scope,
                         const char *owner,
                         size_t owner_len,
                         struct pds_version *version,
                         pds_index *index)
{
    uint8_t obuf[1 + PDS_OWNER_MAX];
    MDB_val k, v;
    MDB_txn *txn;
    int rv;

    if (owner_len == 0 || owner_len > PDS_OWNER_MAX)
        return set_err(store, PDS_EINVAL, "owner: bad name");
    k.mv_data = obuf;
    k.mv_size = (size_t)owner_key(scope, owner, owner_len, obuf);
    rv = read_begin(store, &txn);
    if (rv != 0)
        return set_err(store, translate(rv), "owner: %s", mdb_strerror(rv));
    rv = mdb_get(txn, store->gone, &k, &v);
    if (rv == 0)
        rv = gone_decode(&v, version, index);
    read_end(store, txn);
    if (rv == MDB_NOTFOUND)
        return PDS_ENOTFOUND;
    if (rv != 0)
        return set_err(store, translate(rv), "owner: %s", mdb_strerror(rv));
    return 0;
}

struct newer_arg {
    const struct pds_version *version;
    pds_index newer;
};

static int
newer_record(void *arg, const struct pds_key *key, const struct pds_record *rec)
{
    struct newer_arg *a = arg;

    (void)key;
    if (pds_version_cmp(&rec->version, a->version) > 0 && rec->index > a->newer)
        a->newer = rec->index;
    return 0;
}

int pds_store_owner_newer(struct pds_store *store,
                          enum pds_scope scope,
                          const char *owner,
                          size_t owner_len,
                          const struct pds_version *version,
                          pds_index *newer)
{
    struct newer_arg a = {version, 0};
    int rv;

    *newer = 0;
    if (owner_len == 0 || owner_len > PDS_OWNER_MAX)
        return set_err(store, PDS_EINVAL, "owner: bad name");
    rv = list_dbi(store, store->records, scope, owner, owner_len, 1,
                  newer_record, &a);
    if (rv == 0)
        *newer = a.newer;
    return rv;
}

int pds_store_log_span(struct pds_store *store,
                       pds_index from,
                       uint64_t *bytes,
                       pds_time *first_ms)
{
    uint8_t kbuf[8];
    MDB_val k = {8, kbuf};
    MDB_val v;
    MDB_cursor *cur;
    MDB_txn *txn;
    int first = 1;
    int rv;

    *bytes = 0;
    *first_ms = 0;
    pds_put_u64be(kbuf, from);
    rv = read_begin(store, &txn);
    if (rv != 0)
        return set_err(store, translate(rv), "log: %s", mdb_strerror(rv));
    rv = mdb_cursor_open(txn, store->log, &cur);
    if (rv == 0) {
        rv = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        while (rv == 0) {
            if (first) {
                struct pds_entry e;
                if (pds_entry_decode(v.mv_data, v.mv_size, &e) == 0)
                    *first_ms = PDS_HLC_MS(e.version.hlc);
                first = 0;
            }
            *bytes += v.mv_size;
            rv = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(cur);
    }
    read_end(store, txn);
    if (rv != 0 && rv != MDB_NOTFOUND)
        return set_err(store, translate(rv), "log: %s", mdb_strerror(rv));
    return 0;
}

int pds_store_log_get(struct pds_store *store,
                      pds_index index,
                      uint8_t **buf,
                      size_t *len)
{
    uint8_t kbuf[8];
    MDB_val k = {8, kbuf};
    MDB_val v;
    MDB_txn *txn;
    uint8_t *copy;
    int rv;

    pds_put_u64be(kbuf, index);
    rv = read_begin(store, &txn);
    if (rv != 0)
        return set_err(store, translate(rv), "log: %s", mdb_strerror(rv));
    rv = mdb_get(txn, store->log, &k, &v);
    if (rv != 0) {
        read_end(store, txn);
        return set_err(store, translate(rv), "log entry %llu: %s",
                       (unsigned long long)index, mdb_strerror(rv));
    }
    copy = malloc(v.mv_size + 1);
    if (copy == NULL) {
        read_end(store, txn);
        return set_err(store, PDS_ENOMEM, "log: out of memory");
    }
    memcpy(copy, v.mv_data, v.mv_size);
    *len = v.mv_size;
    read_end(store, txn);
    *buf = copy;
    return 0;
}

/* ---- Role configuration and members ------------------------------------- */

/* Blobs are meta values under "blob." and their name. */
#define BLOB_KEY_MAX 64
static MDB_val blob_key(const char *name, char *buf)
{
    MDB_val k;

    snprintf(buf, BLOB_KEY_MAX, "blob.%s", name);
    k.mv_data = buf;
    k.mv_size = strlen(buf);
    return k;
}

/* Set (value NULL: remove) a blob inside a write transaction. */
static int blob_set(struct pds_store *s,
                    MDB_txn *txn,
                    const char *name,
                    const uint8_t *value,
                    size_t len)
{
    char kname[BLOB_KEY_MAX];
    MDB_val k = blob_key(name, kname);
    MDB_val v = {len, (void *)value};
    int rv;

    if (value == NULL) {
        rv = mdb_del(txn, s->meta, &k, NULL);
        return rv == MDB_NOTFOUND ? 0 : rv;
    }
    return mdb_put(txn, s->meta, &k, &v, 0);
}

int pds_store_blob_get(struct pds_store *store,
                       const char *name,
                       uint8_t *buf,
                       size_t cap,
                       size_t *len)
{
    char kname[BLOB_KEY_MAX];
    MDB_val k = blob_key(name, kname), v;
    MDB_txn *txn;
    int rv;

    rv = read_begin(store, &txn);
    if (rv != 0)
        return set_err(store, translate(rv), "%s: %s", name, mdb_strerror(rv));
    rv = mdb_get(txn, store->meta, &k, &v);
    if (rv == 0 && v.mv_size > cap)
        rv = -1;
    if (rv == 0) {
        memcpy(buf, v.mv_data, v.mv_size);
        *len = v.mv_size;
    }
    read_end(store, txn);
    if (rv == -1)
        return set_err(store, PDS_ETOOBIG, "%s: stored value too large", name);
    if (rv != 0)
        return set_err(store, translate(rv), "%s: %s", name, mdb_strerror(rv));
    return 0;
}

/* One small durable write transaction, growing the map when needed. */
static int small_write(struct pds_store *store,
                       int (*fn)(struct pds_store *, MDB_txn *, void *),
                       void *arg)
{
    MDB_txn *txn;
    int rv;

    for (;;) {
        /* Held for the transaction: map growth waits for it. */
        pthread_rwlock_rdlock(&store->growth_lock);
        rv = mdb_txn_begin(store->env, NULL, 0, &txn);
        if (rv != 0) {
            pthread_rwlock_unlock(&store->growth_lock);
            break;
        }
        rv = fn(store, txn, arg);
        if (rv == 0)
            rv = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
        pthread_rwlock_unlock(&store->growth_lock);
        if (rv != MDB_MAP_FULL)
            break;
        rv = grow_map(store);
        if (rv != 0)
            break;
    }
    return rv;
}

struct blob_arg {
    const char *name;
    const uint8_t *value;
    size_t len;
};

static int blob_write(struct pds_store *s, MDB_txn *txn, void *arg)
{
    struct blob_arg *b = arg;

    return blob_set(s, txn, b->name, b->value, b->len);
}

int pds_store_blob_put(struct pds_store *store,
                       const char *name,
                       const uint8_t *value,
                       size_t len)
{
    struct blob_arg b = {name, value, len};
    int rv;

    rv = small_write(store, blob_write, &b);
    if (rv != 0)
        return set_commit_err(store, translate(rv), "save %s: %s", name,
                              mdb_strerror(rv));
    return 0;
}

struct members_arg {
    const struct pds_member *members;
    size_t n;
};

static int members_write(struct pds_store *s, MDB_txn *txn, void *arg)
{
    struct members_arg *a = arg;
    uint8_t buf[PDS_MEMBER_ENCODED_MAX];
    size_t i;
    int rv = 0;

    for (i = 0; i < a->n && rv == 0; i++) {
        MDB_val k = {PDS_KEY_BYTES, (void *)a->members[i].pk};
        MDB_val v = {pds_member_encode(&a->members[i], buf), buf};
        rv = mdb_put(txn, s->clients, &k, &v, 0);
    }
    return rv;
}

int pds_store_members_put(struct pds_store *store,
                          const struct pds_member *members,
                          size_t n_members)
{
    struct members_arg a = {members, n_members};
    int rv;

    if (n_members == 0)
        return 0;
    rv = small_write(store, members_write, &a);
    if (rv != 0)
        return set_commit_err(store, translate(rv), "save clients: %s",
                              mdb_strerror(rv));
    return 0;
}

static int each_member(void *ctx, const MDB_val *k, const MDB_val *v)
{
    struct scan_cb *sc = ctx;
    struct pds_member m;

    (void)k;
    if (pds_member_decode(v->mv_data, v->mv_size, &m) != 0)
        return PDS_ECORRUPT;
    return sc->cb.member(sc->arg, &m);
}

int pds_store_members(struct pds_store *store,
                      pds_store_member_cb cb,
                      void *arg)
{
    struct scan_cb sc;

    sc.cb.member = cb;
    sc.arg = arg;
    return scan(store, store->clients, "clients", each_member, &sc);
}

int pds_store_log_range(struct pds_store *store,
                        pds_index from,
                        size_t max_bytes,
                        uint8_t **buf,
                        size_t *len,
                        size_t *n_entries)
{
    uint8_t kbuf[8];
    MDB_val k = {8, kbuf};
    MDB_val v;
    MDB_cursor *cur;
    MDB_txn *txn;
    uint8_t *out = NULL;
    size_t used = 0;
    size_t cap = 0;
    size_t n = 0;
    pds_index expect = from;
    int rv;

    *buf = NULL;
    *len = 0;
    *n_entries = 0;
    pds_put_u64be(kbuf, from);
    rv = read_begin(store, &txn);
    if (rv != 0)
        return set_err(store, translate(rv), "log: %s", mdb_strerror(rv));
    rv = mdb_cursor_open(txn, store->log, &cur);
    if (rv == 0)
        rv = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rv == 0) {
        pds_index idx = pds_get_u64be(k.mv_data);
        if (idx != expect) {
            /* The first wanted entry was trimmed away. */
            rv = n == 0 ? MDB_NOTFOUND : 0;
            if (n == 0)
                expect = 0;
            break;
        }
        if (used + 4 + v.mv_size > cap) {
            size_t ncap = cap == 0 ? 65536 : cap * 2;
            uint8_t *p;
            while (ncap < used + 4 + v.mv_size)
                ncap *= 2;
            p = realloc(out, ncap);
            if (p == NULL) {
                rv = ENOMEM;
                break;
            }
            out = p;
            cap = ncap;
        }
        pds_put_u32be(out + used, (uint32_t)v.mv_size);
        memcpy(out + used + 4, v.mv_data, v.mv_size);
        used += 4 + v.mv_size;
        n++;
        expect++;
        if (used >= max_bytes)
            break;
        rv = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (rv == 0 || (rv == MDB_NOTFOUND && expect != 0))
        rv = 0;
    mdb_cursor_close(cur);
    read_end(store, txn);
    if (rv == MDB_NOTFOUND && n == 0 && expect == 0) {
        free(out);
        return set_err(store, PDS_ENOTFOUND,
                       "log entry %llu is no longer retained",
                       (unsigned long long)from);
    }
    if (rv != 0) {
        free(out);
        return set_err(store, translate(rv), "log: %s", mdb_strerror(rv));
    }
    if (n == 0) {
        free(out);
        return 0;
    }
    *buf = out;
    *len = used;
    *n_entries = n;
    return 0;
}

/* ---- Sharing scopes and device-specific values ----------------------------
 */

static int each_scope(void *ctx, const MDB_val *k, const MDB_val *v)
{
    struct scan_cb *sc = ctx;

    (void)v;
    if (k->mv_size == 0 || k->mv_size > PDS_ITEM_MAX)
        return 0;
    return sc->cb.scope(sc->arg, k->mv_data, k->mv_size);
}

int pds_store_scopes(struct pds_store *store, pds_store_scope_cb cb, void *arg)
{
    struct scan_cb sc;

    sc.cb.scope = cb;
    sc.arg = arg;
    return scan(store, store->scopes, "scopes", each_scope, &sc);
}

struct local_arg {
    const struct pds_key *key;
    const struct pds_record *rec;
};

static int local_write(struct pds_store *s, MDB_txn *txn, void *arg)
{
    struct local_arg *a = arg;
    uint8_t kbuf[PDS_RECKEY_MAX];
    MDB_val k, v;
    int rv;

    k.mv_data = kbuf;
    k.mv_size = pds_reckey_encode(a->key, kbuf);
    if (a->rec == NULL) {
        rv = mdb_del(txn, s->local, &k, NULL);
        return rv;
    }
    v.mv_size = pds_record_size(a->rec);
    rv = mdb_put(txn, s->local, &k, &v, MDB_RESERVE);
    if (rv == 0)
        pds_record_encode(a->rec, v.mv_data);
    return rv;
}

int pds_store_local_put(struct pds_store *store,
                        const struct pds_key *key,
                        const struct pds_record *rec)
{
    struct local_arg a = {key, rec};
    int rv;

    if (key->owner_len > PDS_OWNER_MAX || key->item_len > PDS_ITEM_MAX)
        return set_commit_err(store, PDS_EINVAL, "local: key too long");
    rv = small_write(store, local_write, &a);
    if (rv == MDB_NOTFOUND)
        return set_commit_err(store, PDS_ENOTFOUND, "local: not found");
    if (rv != 0)
        return set_commit_err(store, translate(rv), "local: %s",
                              mdb_strerror(rv));
    return 0;
}

int pds_store_local_get(struct pds_store *store,
                        const struct pds_key *key,
                        struct pds_record *rec,
                        uint8_t **value)
{
    uint8_t kbuf[PDS_RECKEY_MAX];
    struct pds_record r;
    MDB_txn *txn;
    MDB_val k, v;
    uint8_t *copy;
    int rv;

    if (key->owner_len > PDS_OWNER_MAX || key->item_len > PDS_ITEM_MAX)
        return set_err(store, PDS_EINVAL, "local: key too long");
    k.mv_data = kbuf;
    k.mv_size = pds_reckey_encode(key, kbuf);
    rv = read_begin(store, &txn);
    if (rv != 0)
        return set_err(store, translate(rv), "local: %s", mdb_strerror(rv));
    rv = mdb_get(txn, store->local, &k, &v);
    if (rv != 0) {
        read_end(store, txn);
        return rv == MDB_NOTFOUND
                   ? set_err(store, PDS_ENOTFOUND, "local: not found")
                   : set_err(store, translate(rv), "local: %s",
                             mdb_strerror(rv));
    }
    if (pds_record_decode(v.mv_data, v.mv_size, &r) != 0) {
        read_end(store, txn);
        return set_err(store, PDS_ECORRUPT, "local: a value is damaged");
    }
    copy = malloc(r.value_len + 1);
    if (copy == NULL) {
        read_end(store, txn);
        return set_err(store, PDS_ENOMEM, "local: out of memory");
    }
    if (r.value_len > 0)
        memcpy(copy, r.value, r.value_len);
    read_end(store, txn);
    r.value = copy;
    *rec = r;
    *value = copy;
    return 0;
}

/*
 * The error of a failed write transaction outside pds_store_commit(), in
 * the writers' text like its own (pds_store_commit_errmsg()): a full
 * file system (LMDB reports a short write as EIO), the storage budget, or
 * LMDB's own error; what says what was not done.
 */
static int
write_error(struct pds_store *s, int rv, const char *context, const char *what)
{
    if (rv == EIO && is_disk_full(s))
        rv = ENOSPC;
    if (rv == ENOSPC || rv == EDQUOT)
        return set_commit_err(s, PDS_EFULL,
                              "the file system of the data directory is "
                              "full: %s; free space there",
                              what);
    if (rv == MDB_MAP_FULL)
        return set_commit_err(s, PDS_ENOSPC, "storage budget exhausted: %s",
                              what);
    return set_commit_err(s, translate(rv), "%s: %s", context,
                          mdb_strerror(rv));
}

/* ---- Outbox --------------------------------------------------------------
 */

struct outbox_add_arg {
    const struct pds_entry *e;
    uint64_t seq;
};

static int outbox_next_seq(struct pds_store *s, MDB_txn *txn, uint64_t *seq)
{
    MDB_cursor *cur;
    MDB_val k, v;
    uint64_t last = 0;
    int rv = mdb_cursor_open(txn, s->outbox, &cur);

    if (rv != 0)
        return rv;
    rv = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (rv == 0 && k.mv_size == 8)
        last = pds_get_u64be(k.mv_data);
    mdb_cursor_close(cur);
    if (rv != 0 && rv != MDB_NOTFOUND)
        return rv;
    /* Sequence numbers never repeat, even after the outbox emptied. */
    if ((rv = meta_get(txn, s->meta, "outbox_seq", seq)) != 0)
        return rv;
    if (last > *seq)
        *seq = last;
    (*seq)++;
    return meta_put(txn, s->meta, "outbox_seq", *seq);
}

static int outbox_put(struct pds_store *s,
                      MDB_txn *txn,
                      const struct pds_entry *e,
                      int is_upload,
                      uint64_t *seq_out)
{
    struct pds_entry copy = *e;
    uint8_t kbuf[8];
    MDB_val k = {8, kbuf}, v;
    uint64_t seq;
    int rv = outbox_next_seq(s, txn, &seq);

    if (rv != 0)
        return rv;
    copy.epoch = is_upload ? PDS_OUTBOX_UPLOAD : 0;
    copy.index = seq;
    pds_put_u64be(kbuf, seq);
    v.mv_size = pds_entry_size(&copy);
    rv = mdb_put(txn, s->outbox, &k, &v, MDB_APPEND | MDB_RESERVE);
    if (rv != 0)
        return rv;
    pds_entry_encode(&copy, v.mv_data);
    if (seq_out != NULL)
        *seq_out = seq;
    /* The clock mark covers the write's version, so that after a restart
     * with the wall clock set back this node never stamps a later write
     * below it. */
    {
        uint64_t hlc;
        rv = meta_get(txn, s->meta, "last_hlc", &hlc); /* 0 when unset */
        if (rv != 0)
            return rv;
        if (e->version.hlc > hlc)
            return meta_put(txn, s->meta, "last_hlc", e->version.hlc);
    }
    return 0;
}

static int outbox_add(struct pds_store *s, MDB_txn *txn, void *arg)
{
    struct outbox_add_arg *a = arg;

    return outbox_put(s, txn, a->e, 0, &a->seq);
}

int pds_store_outbox_add(struct pds_store *store,
                         const struct pds_entry *entry,
                         uint64_t *seq)
{
    struct outbox_add_arg a = {entry, 0};
    int rv;

    if (!entry_is_valid(entry))
        return set_commit_err(store, PDS_EINVAL, "outbox: malformed entry");
    rv = small_write(store, outbox_add, &a);
    if (rv != 0)
        return write_error(store, rv, "outbox", "the write was not queued");
    *seq = a.seq;
    return 0;
}

int pds_store_outbox_list(struct pds_store *store,
                          pds_store_outbox_cb cb,
                          void *arg)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    int rv = read_begin(store, &txn);

    if (rv != 0)
        return set_err(store, translate(rv), "outbox: %s", mdb_strerror(rv));
    rv = mdb_cursor_open(txn, store->outbox, &cur);
    while (rv == 0 && (rv = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        struct pds_entry e;
        if (k.mv_size != 8 || pds_entry_decode(v.mv_data, v.mv_size, &e) != 0) {
            rv = PDS_ECORRUPT;
            break;
        }
        rv = cb(arg, pds_get_u64be(k.mv_data), &e);
    }
    if (rv != PDS_ECORRUPT && rv != MDB_NOTFOUND && rv > 0)
        rv = translate(rv);
    if (rv == MDB_NOTFOUND)
        rv = 0;
    mdb_cursor_close(cur);
    read_end(store, txn);
    if (rv == PDS_ECORRUPT)
        return set_err(store, rv, "outbox: an entry is damaged");
    return rv;
}

struct outbox_rm_arg {
    const uint64_t *seqs;
    size_t n;
};

static int outbox_rm(struct pds_store *s, MDB_txn *txn, void *arg)
{
    struct outbox_rm_arg *a = arg;
    size_t i;

    for (i = 0; i < a->n; i++) {
        uint8_t kbuf[8];
        MDB_val k = {8, kbuf};
        int rv;
        pds_put_u64be(kbuf, a->seqs[i]);
        rv = mdb_del(txn, s->outbox, &k, NULL);
        if (rv != 0 && rv != MDB_NOTFOUND)
            return rv;
    }
    return 0;
}

int pds_store_outbox_remove(struct pds_store *store,
                            const uint64_t *seqs,
                            size_t n)
{
    struct outbox_rm_arg a = {seqs, n};
    int rv;

    if (n == 0)
        return 0;
    rv = small_write(store, outbox_rm, &a);
    if (rv != 0)
        return set_commit_err(store, translate(rv), "outbox: %s",
                              mdb_strerror(rv));
    return 0;
}

/* ---- Snapshots -----------------------------------------------------------
 *
 * A chunk is a sequence of items: u8 kind (1 record, 2 scope, 3 memo, 4
 * delete mark), u16 key length, key, u32 value length, value (big-endian
 * lengths). Records carry their record key and stored record; scopes the
 * item name and its byte; memos of restamped writes their 16-byte key and
 * 32-byte value, as in the clamps table (a standby refreshed so still knows
 * them); delete marks their owner key and 24-byte row, as in the gone table
 * (so that an older write of a deleted owner loses to the delete there too).
 */

#define SNAP_RECORD 1
#define SNAP_SCOPE 2
#define SNAP_CLAMP 3
#define SNAP_GONE 4
#define SNAP_FLUSH (1u << 20) /* bytes buffered before a write */

static int snap_item(uint8_t **buf,
                     size_t *len,
                     size_t *cap,
                     int kind,
                     const MDB_val *k,
                     const MDB_val *v)
{
    size_t need = *len + 7 + k->mv_size + v->mv_size;
    uint8_t *p;

    if (need > *cap) {
        size_t ncap = *cap == 0 ? 65536 : *cap;
        while (ncap < need)
            ncap *= 2;
        p = realloc(*buf, ncap);
        if (p == NULL)
            return PDS_ENOMEM;
        *buf = p;
        *cap = ncap;
    }
    p = *buf + *len;
    p[0] = (uint8_t)kind;
    p[1] = (uint8_t)(k->mv_size >> 8);
    p[2] = (uint8_t)k->mv_size;
    memcpy(p + 3, k->mv_data, k->mv_size);
    p += 3 + k->mv_size;
    pds_put_u32be(p, (uint32_t)v->mv_size);
    memcpy(p + 4, v->mv_data, v->mv_size);
    *len = need;
    return 0;
}

/* Write all of buf to fd. 0 or an errno value. */
static int write_all(int fd, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Append the items of one table to the buffer, flushing it to fd. */
static int snap_table(MDB_txn *txn,
                      MDB_dbi dbi,
                      int kind,
                      int fd,
                      uint8_t **buf,
                      size_t *len,
                      size_t *cap,
                      uint64_t *bytes)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rv = mdb_cursor_open(txn, dbi, &cur);

    if (rv != 0)
        return rv;
    while ((rv = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        if (k.mv_size > PDS_RECKEY_MAX) {
            rv = MDB_CORRUPTED;
            break;
        }
        rv = snap_item(buf, len, cap, kind, &k, &v);
        if (rv != 0)
            break;
        if (*len >= SNAP_FLUSH) {
            rv = write_all(fd, *buf, *len);
            if (rv != 0)
                break;
            *bytes += *len;
            *len = 0;
        }
    }
    mdb_cursor_close(cur);
    return rv == MDB_NOTFOUND ? 0 : rv;
}

int pds_store_snap_write(struct pds_store *store,
                         int fd,
                         pds_epoch *epoch,
                         pds_index *index,
                         uint64_t *bytes,
                         char *errmsg)
{
    struct pds_store_meta m;
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    uint64_t written = 0;
    MDB_txn *txn;
    int rv = read_begin(store, &txn);

    if (rv != 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "snapshot: %s", mdb_strerror(rv));
        return translate(rv);
    }
    /* One read transaction: the copy is the data at exactly m's position. */
    rv = read_meta(txn, store->meta, &m);
    if (rv == 0)
        rv = snap_table(txn, store->scopes, SNAP_SCOPE, fd, &buf, &len, &cap,
                        &written);
    if (rv == 0)
        rv = snap_table(txn, store->records, SNAP_RECORD, fd, &buf, &len, &cap,
                        &written);
    if (rv == 0)
        rv = snap_table(txn, store->clamps, SNAP_CLAMP, fd, &buf, &len, &cap,
                        &written);
    if (rv == 0)
        rv = snap_table(txn, store->gone, SNAP_GONE, fd, &buf, &len, &cap,
                        &written);
    read_end(store, txn);
    if (rv == 0 && len > 0) {
        rv = write_all(fd, buf, len);
        written += len;
    }
    free(buf);
    if (rv == PDS_ENOMEM) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "snapshot: out of memory");
        return rv;
    }
    if (rv == ENOSPC || rv == EDQUOT) {
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "the file system of the data directory is full: no room "
                 "for a snapshot (%llu bytes written)",
                 (unsigned long long)written);
        return PDS_EFULL;
    }
    if (rv != 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "snapshot: %s", mdb_strerror(rv));
        return rv == MDB_CORRUPTED ? PDS_ECORRUPT : PDS_EIO;
    }
    *epoch = m.last_epoch;
    *index = m.last_index;
    *bytes = written;
    return 0;
}

/* The size of the item at buf (n bytes there), or 0 when n does not hold
 * its header. */
static size_t snap_item_size(const uint8_t *buf, size_t n)
{
    size_t klen;

    if (n < 3)
        return 0;
    klen = ((size_t)buf[1] << 8) | buf[2];
    if (n < 7 + klen)
        return 0;
    return 7 + klen + pds_get_u32be(buf + 3 + klen);
}

static int read_at(int fd, uint8_t *buf, size_t n, uint64_t offset)
{
    size_t got = 0;

    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, (off_t)(offset + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? errno : EIO;
        got += (size_t)r;
    }
    return 0;
}

int pds_store_snap_read(int fd,
                        uint64_t offset,
                        uint64_t size,
                        size_t max_bytes,
                        uint8_t **out,
                        size_t *out_len,
                        char *errmsg)
{
    size_t want, off = 0, item;
    uint8_t *buf;
    int rv;

    *out = NULL;
    *out_len = 0;
    if (offset >= size)
        return 0;
    want = size - offset < max_bytes ? (size_t)(size - offset) : max_bytes;
    for (;;) {
        buf = malloc(want);
        if (buf == NULL) {
            snprintf(errmsg, PDS_ERRMSG_SIZE, "snapshot: out of memory");
            return PDS_ENOMEM;
        }
        rv = read_at(fd, buf, want, offset);
        if (rv != 0) {
            snprintf(errmsg, PDS_ERRMSG_SIZE, "snapshot: read: %s",
                     strerror(rv));
            free(buf);
            return PDS_EIO;
        }
        /* Whole items only. */
        while ((item = snap_item_size(buf + off, want - off)) != 0 &&
               item <= want - off)
            off += item;
        if (off > 0)
            break;
        free(buf);
        if (item == 0 && want < size - offset) {
            /* Not even its header fits: read more. */
            want = size - offset < 7 + (size_t)PDS_RECKEY_MAX + want
                       ? (size_t)(size - offset)
                       : 7 + (size_t)PDS_RECKEY_MAX + want;
            continue;
        }
        /* The first item is larger than a chunk: read it whole. */
        if (item == 0 || item <= want || item > size - offset) {
            snprintf(errmsg, PDS_ERRMSG_SIZE,
                     "snapshot: the file holds a damaged item at %llu",
                     (unsigned long long)offset);
            return PDS_ECORRUPT;
        }
        want = item;
    }
    *out = buf;
    *out_len = off;
    return 0;
}

static int snap_clear(struct pds_store *s, MDB_txn *txn, void *arg)
{
    int rv;

    (void)arg;
    rv = mdb_drop(txn, s->snap_records, 0);
    if (rv == 0)
        rv = mdb_drop(txn, s->snap_scopes, 0);
    if (rv == 0)
        rv = mdb_drop(txn, s->snap_clamps, 0);
    if (rv == 0)
        rv = mdb_drop(txn, s->snap_gone, 0);
    return rv;
}

int pds_store_snap_begin(struct pds_store *store)
{
    int rv = small_write(store, snap_clear, NULL);

    if (rv != 0)
        return set_commit_err(store, translate(rv), "snapshot: %s",
                              mdb_strerror(rv));
    return 0;
}

struct snap_put_arg {
    const uint8_t *chunk;
    size_t len;
};

static int snap_put(struct pds_store *s, MDB_txn *txn, void *arg)
{
    struct snap_put_arg *a = arg;
    size_t off = 0;

    while (off < a->len) {
        MDB_val k, v;
        struct pds_record rec;
        struct pds_key key;
        int kind, rv;
        if (a->len - off < 3)
            return PDS_ECORRUPT;
        kind = a->chunk[off];
        k.mv_size = ((size_t)a->chunk[off + 1] << 8) | a->chunk[off + 2];
        off += 3;
        if (k.mv_size == 0 || k.mv_size > PDS_RECKEY_MAX ||
            a->len - off < k.mv_size + 4)
            return PDS_ECORRUPT;
        k.mv_data = (void *)(a->chunk + off);
        off += k.mv_size;
        v.mv_size = pds_get_u32be(a->chunk + off);
        off += 4;
        if (v.mv_size > a->len - off)
            return PDS_ECORRUPT;
        v.mv_data = (void *)(a->chunk + off);
        off += v.mv_size;
        if (kind == SNAP_RECORD) {
            if (pds_reckey_decode(k.mv_data, k.mv_size, &key) != 0 ||
                pds_record_decode(v.mv_data, v.mv_size, &rec) != 0)
                return PDS_ECORRUPT;
            rv = mdb_put(txn, s->snap_records, &k, &v, 0);
        } else if (kind == SNAP_SCOPE) {
            if (v.mv_size != 1 || k.mv_size > PDS_ITEM_MAX)
                return PDS_ECORRUPT;
            rv = mdb_put(txn, s->snap_scopes, &k, &v, 0);
        } else if (kind == SNAP_CLAMP) {
            if (k.mv_size != 16 || v.mv_size != 32)
                return PDS_ECORRUPT;
            rv = mdb_put(txn, s->snap_clamps, &k, &v, 0);
        } else if (kind == SNAP_GONE) {
            struct pds_version gv;
            pds_index gi;
            const uint8_t *ok = k.mv_data;
            if (k.mv_size < 2 || k.mv_size > 1 + PDS_OWNER_MAX ||
                (ok[0] != PDS_SCOPE_USER && ok[0] != PDS_SCOPE_GROUP) ||
                gone_decode(&v, &gv, &gi) != 0)
                return PDS_ECORRUPT;
            rv = mdb_put(txn, s->snap_gone, &k, &v, 0);
        } else {
            return PDS_ECORRUPT;
        }
        if (rv != 0)
            return rv;
    }
    return 0;
}

int pds_store_snap_put(struct pds_store *store,
                       const uint8_t *chunk,
                       size_t len)
{
    struct snap_put_arg a = {chunk, len};
    int rv = small_write(store, snap_put, &a);

    if (rv == PDS_ECORRUPT)
        return set_commit_err(store, rv,
                              "snapshot: a chunk does not decode (nothing of "
                              "it was kept)");
    if (rv != 0)
        return write_error(store, rv, "snapshot",
                           "the snapshot cannot be stored");
    return 0;
}

struct snap_finish_arg {
    pds_epoch epoch;
    pds_index index;
    const uint8_t *group;
    size_t group_len;
    enum pds_snap_keep keep;
    pds_time now;
    uint64_t n_uploaded;
};

/* Does the staged snapshot hold any record of the owner of key k? */
static int snap_has_owner(struct pds_store *s,
                          MDB_txn *txn,
                          const struct pds_key *key,
                          int *has)
{
    uint8_t pbuf[PDS_RECKEY_MAX];
    size_t plen =
        pds_reckey_prefix(key->scope, key->owner, key->owner_len, pbuf);
    MDB_cursor *cur;
    MDB_val k = {plen, pbuf}, v;
    int rv = mdb_cursor_open(txn, s->snap_records, &cur);

    if (rv != 0)
        return rv;
    rv = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    *has = rv == 0 && k.mv_size >= plen && memcmp(k.mv_data, pbuf, plen) == 0;
    mdb_cursor_close(cur);
    return rv == MDB_NOTFOUND ? 0 : rv;
}

/* Queue this node's own records that the group's copy does not have. */
static int
snap_upload(struct pds_store *s, MDB_txn *txn, struct snap_finish_arg *a)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rv = mdb_cursor_open(txn, s->records, &cur);

    if (rv != 0)
        return rv;
    while ((rv = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        struct pds_key key;
        struct pds_record rec, theirs;
        struct pds_entry e;
        MDB_val tv;
        int upload = 0, has;
        if (pds_reckey_decode(k.mv_data, k.mv_size, &key) != 0 ||
            pds_record_decode(v.mv_data, v.mv_size, &rec) != 0) {
            rv = MDB_CORRUPTED;
            break;
        }
        if (a->keep == PDS_SNAP_KEEP_NEWER) {
            rv = mdb_get(txn, s->snap_records, &k, &tv);
            if (rv == MDB_NOTFOUND)
                upload = !rec.is_tombstone;
            else if (rv == 0) {
                if (pds_record_decode(tv.mv_data, tv.mv_size, &theirs) != 0) {
                    rv = MDB_CORRUPTED;
                    break;
                }
                upload = pds_version_cmp(&rec.version, &theirs.version) > 0;
            } else {
                break;
            }
        } else {
            rv = snap_has_owner(s, txn, &key, &has);
            if (rv != 0)
                break;
            upload = !has && !rec.is_tombstone;
        }
        if (!upload)
            continue;
        memset(&e, 0, sizeof(e));
        e.op = rec.is_tombstone ? PDS_OP_DEL : PDS_OP_PUT;
        e.key = key;
        e.version = rec.version;
        e.value = rec.value;
        e.value_len = rec.is_tombstone ? 0 : rec.value_len;
        /* The outbox is another table: the cursor stays valid. */
        rv = outbox_put(s, txn, &e, 1, NULL);
        if (rv != 0)
            break;
        a->n_uploaded++;
    }
    mdb_cursor_close(cur);
    return rv == MDB_NOTFOUND ? 0 : rv;
}

/* Copy every key of one table into another (which is empty). */
static int copy_table(MDB_txn *txn, MDB_dbi from, MDB_dbi to, uint64_t *n_live)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rv = mdb_cursor_open(txn, from, &cur);

    if (rv != 0)
        return rv;
    while ((rv = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        rv = mdb_put(txn, to, &k, &v, MDB_APPEND);
        if (rv != 0)
            break;
        if (n_live != NULL) {
            struct pds_record rec;
            if (pds_record_decode(v.mv_data, v.mv_size, &rec) != 0) {
                rv = MDB_CORRUPTED;
                break;
            }
            *n_live += !rec.is_tombstone;
        }
    }
    mdb_cursor_close(cur);
    return rv == MDB_NOTFOUND ? 0 : rv;
}

/* The snapshot's memos into the clamps table, each with its order row. */
static int restore_clamps(struct pds_store *s, MDB_txn *txn)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rv = mdb_cursor_open(txn, s->snap_clamps, &cur);

    if (rv != 0)
        return rv;
    while ((rv = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        struct pds_clamp c;
        clamp_from(k.mv_data, v.mv_data, &c);
        rv = put_clamps(s, txn, &c, 1);
        if (rv != 0)
            break;
    }
    mdb_cursor_close(cur);
    return rv == MDB_NOTFOUND ? 0 : rv;
}

/* Rebuild the owners table from the records. */
static int rebuild_owners(struct pds_store *s, MDB_txn *txn, pds_time now)
{
    MDB_cursor *cur;
    MDB_val k, v;
    uint8_t tbuf[8];
    int rv = mdb_cursor_open(txn, s->records, &cur);

    if (rv != 0)
        return rv;
    pds_put_u64be(tbuf, now);
    while ((rv = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        struct pds_key key;
        uint8_t obuf[1 + PDS_OWNER_MAX];
        MDB_val ok, ov = {8, tbuf};
        if (pds_reckey_decode(k.mv_data, k.mv_size, &key) != 0) {
            rv = MDB_CORRUPTED;
            break;
        }
        ok.mv_data = obuf;
        ok.mv_size =
            (size_t)owner_key(key.scope, key.owner, key.owner_len, obuf);
        rv = mdb_put(txn, s->owners, &ok, &ov, 0);
        if (rv != 0)
            break;
    }
    mdb_cursor_close(cur);
    return rv == MDB_NOTFOUND ? 0 : rv;
}

static int snap_finish(struct pds_store *s, MDB_txn *txn, void *arg)
{
    struct snap_finish_arg *a = arg;
    struct pds_store_meta m;
    uint64_t n_live = 0;
    MDB_cursor *cur;
    MDB_val k, v;
    pds_hlc hlc;
    int rv;

    a->n_uploaded = 0;
    if ((rv = read_meta(txn, s->meta, &m)) != 0)
        return rv;
    hlc = m.last_hlc;
    if (a->keep != PDS_SNAP_KEEP_NONE && (rv = snap_upload(s, txn, a)) != 0)
        return rv;
    if ((rv = mdb_drop(txn, s->records, 0)) != 0 ||
        (rv = mdb_drop(txn, s->owners, 0)) != 0 ||
        (rv = mdb_drop(txn, s->scopes, 0)) != 0 ||
        (rv = mdb_drop(txn, s->log, 0)) != 0 ||
        /* The memos of restamped writes: the snapshot's. */
        (rv = mdb_drop(txn, s->clamps, 0)) != 0 ||
        (rv = mdb_drop(txn, s->clamp_log, 0)) != 0 ||
        /* What came before the stamp is the server's history, not ours. */
        (rv = mdb_drop(txn, s->epochs, 0)) != 0 ||
        (rv = mdb_drop(txn, s->gone, 0)) != 0 ||
        (a->index > 0 &&
         (rv = epoch_begins(s, txn, a->epoch, a->index)) != 0) ||
        (rv = copy_table(txn, s->snap_records, s->records, &n_live)) != 0 ||
        (rv = copy_table(txn, s->snap_scopes, s->scopes, NULL)) != 0 ||
        (rv = copy_table(txn, s->snap_gone, s->gone, NULL)) != 0 ||
        (rv = restore_clamps(s, txn)) != 0 ||
        (rv = rebuild_owners(s, txn, a->now)) != 0)
        return rv;
    /* The clock never goes back below a version this node now holds. */
    rv = mdb_cursor_open(txn, s->records, &cur);
    if (rv != 0)
        return rv;
    while ((rv = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        struct pds_record rec;
        if (pds_record_decode(v.mv_data, v.mv_size, &rec) == 0 &&
            rec.version.hlc > hlc)
            hlc = rec.version.hlc;
    }
    mdb_cursor_close(cur);
    if (rv != MDB_NOTFOUND)
        return rv;
    if ((rv = meta_put(txn, s->meta, "last_index", a->index)) != 0 ||
        (rv = meta_put(txn, s->meta, "last_epoch", a->epoch)) != 0 ||
        (rv = meta_put(txn, s->meta, "first_index", 0)) != 0 ||
        (rv = meta_put(txn, s->meta, "last_hlc", hlc)) != 0 ||
        (rv = meta_put(txn, s->meta, "n_records", n_live)) != 0 ||
        /* The data is now the group's: the "history" blob. */
        (rv = blob_set(s, txn, "history", a->group, a->group_len)) != 0)
        return rv;
    return snap_clear(s, txn, NULL);
}

int pds_store_snap_finish(struct pds_store *store,
                          pds_epoch epoch,
                          pds_index index,
                          const uint8_t *group,
                          size_t group_len,
                          enum pds_snap_keep keep,
                          pds_time now,
                          uint64_t *n_uploaded)
{
    struct snap_finish_arg a;
    int rv;

    memset(&a, 0, sizeof(a));
    a.epoch = epoch;
    a.index = index;
    a.group = group;
    a.group_len = group_len;
    a.keep = keep;
    a.now = now;
    rv = small_write(store, snap_finish, &a);
    if (rv != 0)
        return write_error(store, rv, "snapshot",
                           "the snapshot was not applied");
    if (n_uploaded != NULL)
        *n_uploaded = a.n_uploaded;
    return 0;
}

static int new_epoch(struct pds_store *s, MDB_txn *txn, void *arg)
{
    pds_epoch *e = arg;
    struct pds_store_meta m;
    int rv;

    rv = read_meta(txn, s->meta, &m);
    if (rv != 0)
        return rv;
    *e = (m.epoch > m.last_epoch ? m.epoch : m.last_epoch) + 1;
    return meta_put(txn, s->meta, "epoch", *e);
}

int pds_store_new_epoch(struct pds_store *store, pds_epoch *out)
{
    int rv = small_write(store, new_epoch, out);

    if (rv != 0)
        return write_error(store, rv, "new epoch", "the epoch was not changed");
    return 0;
}

static int raise_epoch(struct pds_store *s, MDB_txn *txn, void *arg)
{
    const pds_epoch *e = arg;
    struct pds_store_meta m;
    int rv;

    rv = read_meta(txn, s->meta, &m);
    if (rv != 0)
        return rv;
    if (m.epoch >= *e)
        return 0;
    return meta_put(txn, s->meta, "epoch", *e);
}

int pds_store_raise_epoch(struct pds_store *store, pds_epoch epoch)
{
    int rv = small_write(store, raise_epoch, &epoch);

    if (rv != 0)
        return write_error(store, rv, "record epoch",
                           "the epoch was not changed");
    return 0;
}

void pds_store_hold_log(struct pds_store *store, pds_index index)
{
    __atomic_store_n(&store->hold, index, __ATOMIC_RELAXED);
}
