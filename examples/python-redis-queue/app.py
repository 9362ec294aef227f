"""The web service: takes jobs and says how they are doing. Jobs go to Redis through
rq; the workers (`rq worker`) run them. `REDIS_URL` names `redis.app.miren`, which is
Redis wherever it runs: a container beside processes, or beside other containers."""
import os

from flask import Flask, jsonify, request
from redis import Redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job

import tasks

redis = Redis.from_url(os.environ["REDIS_URL"])
queue = Queue(connection=redis)
app = Flask(__name__)


@app.get("/")
def index():
    return jsonify(queued=queue.count, workers=len(queue.connection.smembers("rq:workers")))


@app.post("/jobs")
def enqueue():
    job = queue.enqueue(tasks.count_words, request.get_data(as_text=True))
    return jsonify(id=job.id), 202


@app.get("/jobs/<job_id>")
def job(job_id):
    try:
        job = Job.fetch(job_id, connection=redis)
    except NoSuchJobError:
        return jsonify(error=f"no job {job_id}"), 404
    return jsonify(status=job.get_status(), result=job.return_value())
