/*
 * diskq.c - the storage job queue (see diskq.h): a FIFO of jobs, the one
 * at its head on libuv's pool, the next handed over once the done callback
 * of the one before has returned.
 */
#include <stdio.h>
#include <stdlib.h>

#include "diskq.h"

void pds__diskq_init(struct pds_diskq *q, uv_loop_t *loop)
{
    q->loop = loop;
    q->head = NULL;
    q->tail = NULL;
    q->running = NULL;
    q->n_jobs = 0;
}

static void on_work(uv_work_t *req)
{
    struct pds_diskq_job *job = req->data;

    job->work(job);
}

static void submit_next(struct pds_diskq *q);

static void on_after_work(uv_work_t *req, int status)
{
    struct pds_diskq_job *job = req->data;
    struct pds_diskq *q = job->q;

    /* Canceled, never ran (nothing here cancels: for completeness). */
    if (status != 0)
        job->work(job);
    q->running = NULL;
    q->n_jobs--;
    job->done(job); /* may free job, and queue more */
    submit_next(q);
}

static void submit_next(struct pds_diskq *q)
{
    struct pds_diskq_job *job = q->head;
    int rv;

    if (q->running != NULL || job == NULL)
        return;
    q->head = job->next;
    if (q->head == NULL)
        q->tail = NULL;
    q->running = job;
    job->req.data = job;
    rv = uv_queue_work(q->loop, &job->req, on_work, on_after_work);
    if (rv != 0) {
        /* Only for a missing callback (libuv aborts itself when it cannot
         * start its threads): a bug here, and nothing would be durable. */
        fprintf(stderr, "pdsyncd: storage job refused by the pool: %s\n",
                uv_strerror(rv));
        abort();
    }
}

void pds__diskq_push(struct pds_diskq *q,
                     struct pds_diskq_job *job,
                     pds_diskq_work_cb work,
                     pds_diskq_done_cb done)
{
    job->q = q;
    job->next = NULL;
    job->work = work;
    job->done = done;
    if (q->tail != NULL)
        q->tail->next = job;
    else
        q->head = job;
    q->tail = job;
    q->n_jobs++;
    submit_next(q);
}

size_t pds__diskq_pending(const struct pds_diskq *q)
{
    return q->n_jobs;
}
