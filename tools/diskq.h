/*
 * diskq.h - pdsyncd's storage job queue: every durable storage write of
 * the daemon runs on a thread of libuv's pool, so that the event loop never
 * waits on the disk (heartbeats, acknowledgements and votes flow while a
 * commit syncs).
 *
 * Jobs run one at a time, in the order they were queued: a job's work
 * begins only after the done callback of the job before it has returned.
 * So a done callback runs while no other job touches the store, and what
 * it reads there is what the jobs done so far wrote; the writes of one
 * node never wait for each other in LMDB's writer lock.
 *
 * The callback contract is libuv's: pds__diskq_push() cannot fail, and
 * the job's done callback fires exactly once, on the loop thread, never
 * from within pds__diskq_push(). The work callback runs on a pool thread
 * and may touch only the job's own data and the store; everything else of
 * the daemon belongs to the loop thread (the log included). The loop keeps
 * running while a job is queued or running, so shutdown waits for them.
 */
#ifndef PDS_DISKQ_H
#define PDS_DISKQ_H

#include <stddef.h>

#include <uv.h>

struct pds_diskq_job;

/* On a pool thread: the storage calls. */
typedef void (*pds_diskq_work_cb)(struct pds_diskq_job *job);
/* On the loop thread, after the work: results into the daemon's state
 * (the job may be freed here). */
typedef void (*pds_diskq_done_cb)(struct pds_diskq_job *job);

/* Embedded in the caller's job; the fields are the queue's. */
struct pds_diskq_job {
    uv_work_t req;
    struct pds_diskq *q;
    struct pds_diskq_job *next;
    pds_diskq_work_cb work;
    pds_diskq_done_cb done;
};

/* The struct holding a job, from a pointer to the job inside it. */
#define PDS_DISKQ_OWNER(job, type, member)                                     \
    ((type *)(void *)((char *)(job)-offsetof(type, member)))

struct pds_diskq {
    uv_loop_t *loop;
    struct pds_diskq_job *head; /* waiting, oldest first */
    struct pds_diskq_job *tail;
    struct pds_diskq_job *running; /* handed to the pool */
    size_t n_jobs;                 /* waiting and running */
};

void pds__diskq_init(struct pds_diskq *q, uv_loop_t *loop);

/* Queue a job behind the others; work runs on a pool thread, then done on
 * the loop. The job (caller-owned) must stay valid until done is called. */
void pds__diskq_push(struct pds_diskq *q,
                     struct pds_diskq_job *job,
                     pds_diskq_work_cb work,
                     pds_diskq_done_cb done);

/* Jobs queued or running (0: the store is idle as far as writes go). */
size_t pds__diskq_pending(const struct pds_diskq *q);

#endif /* PDS_DISKQ_H */
