"""The export worker's registry maintenance: a job another worker has just dequeued is never
re-enqueued under it (so never run twice at once), and a job a dead worker left between
dequeue and start is still retried."""
from __future__ import annotations

import rq
from rq import Queue, Retry
from rq import Worker as RQWorker

from bq_etl import history
from bq_etl.extension import state
from bq_etl.jobs import enqueue_run
from bq_etl.worker import STUCK_AFTER, Worker, clean_intermediate_queue
from api.demo.seed import seed

RQ_VERSION = tuple(int(part) for part in rq.VERSION.split(".")[:2])


def dequeued_not_started(redis, name="bq-etl-worker-test"):
    """A queue whose one job (with retries) a worker has taken off the queue (RQ's LMOVE onto
    the intermediate list) but whose horse has not yet put in the StartedJobRegistry."""
    queue = Queue(name, connection=redis)
    job = queue.enqueue("os.getpid", retry=Retry(max=3))
    redis.lmove(queue.key, queue.intermediate_queue_key)
    return queue, job


def mark_started(queue, job, ttl=600):
    """What a work horse does as it begins `job`: put it in the StartedJobRegistry (RQ 2 and
    newer register an execution of the job instead of the job itself)."""
    if RQ_VERSION < (2, 0):
        queue.started_job_registry.add(job, ttl)
        return
    from rq.executions import Execution

    with queue.connection.pipeline() as pipeline:
        Execution.create(job, ttl, pipeline)
        pipeline.execute()


def test_maintenance_leaves_a_job_that_another_worker_has_just_dequeued(redis):
    queue, job = dequeued_not_started(redis)

    Worker([queue], connection=redis).clean_registries()

    job.refresh()
    assert queue.job_ids == []  # not put back on the queue for a second worker to take
    assert (job.get_status(), job.retries_left) == ("queued", 3)
    assert redis.lrange(queue.intermediate_queue_key, 0, -1) == [job.id.encode()]


def test_rq_1_15s_own_maintenance_would_run_that_job_a_second_time(redis):
    queue, job = dequeued_not_started(redis)

    RQWorker([queue], connection=redis).clean_registries()

    job.refresh()
    if RQ_VERSION < (1, 16):
        assert (queue.job_ids, job.retries_left) == ([job.id], 2)  # why bq_etl.worker exists
    else:  # RQ 1.16 and newer wait, as bq_etl.worker does on 1.15
        assert (queue.job_ids, job.retries_left) == ([], 3)


def test_a_job_left_between_dequeue_and_start_by_a_dead_worker_is_retried_after_the_wait(redis):
    queue, job = dequeued_not_started(redis)
    worker = Worker([queue], connection=redis)

    assert clean_intermediate_queue(worker, queue, now=1000.0) == []
    assert clean_intermediate_queue(worker, queue, now=1000.0 + STUCK_AFTER - 1) == []
    assert clean_intermediate_queue(worker, queue, now=1000.0 + STUCK_AFTER) == [job.id]

    job.refresh()
    assert (queue.job_ids, job.retries_left) == ([job.id], 2)  # retried, as RQ does
    assert redis.lrange(queue.intermediate_queue_key, 0, -1) == []
    assert not redis.exists(f"bq-etl:intermediate-seen:{queue.name}")


def test_a_job_that_started_between_two_passes_is_forgotten(redis):
    queue, job = dequeued_not_started(redis)
    worker = Worker([queue], connection=redis)
    clean_intermediate_queue(worker, queue, now=1000.0)

    mark_started(queue, job)  # its horse began it
    assert clean_intermediate_queue(worker, queue, now=1000.0 + STUCK_AFTER) == []

    job.refresh()
    assert job.retries_left == 3
    assert not redis.exists(f"bq-etl:intermediate-seen:{queue.name}")


def test_one_enqueue_on_two_workers_started_together_is_one_run(app, workers, redis):
    seed(60)
    exporter = state()
    start = enqueue_run(exporter, "members")
    workers.start(2)
    output = workers.wait()

    runs = history.runs(redis, "members")
    assert [run.outcome for run in runs] == ["loaded"], output
    start.refresh()
    # No attempt spent: RQ 1.15's maintenance in the second worker did not re-enqueue it.
    assert (start.get_status(), start.retries_left) == ("finished", exporter.config.shard_retries)
