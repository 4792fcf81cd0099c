"""Vertex AI batch jobs as Google names them (issue 9): project numbers, hosts, User-Agent.

Google answers a request made with the project ID with names that carry the project NUMBER,
serves ``global`` and the multi-regions ``us`` / ``eu`` on other hosts than a region, and
its audit log records the caller's User-Agent. The stand-in does the first two (and refuses
a googleapis.com host that does not serve the path's location); these tests drive the
adapter against it, with requests to googleapis.com hosts routed to the loopback stand-in.
"""

from __future__ import annotations

import asyncio
import time
from importlib.metadata import version
from typing import Any

import httpx
import pytest

from adapters.base import PlanContext
from adapters.http import HttpApi
from adapters.vertex_batch import VertexBatchAdapter, default_url
from console.engine.runtime import Runtime
from console.errors import AdapterError
from console.sandbox.api_vertex import host_of, job_object, project_number
from tests.adapters.batches.conftest import BatchSandbox

CTX = PlanContext("search-embeddings", "cancel-batches", run_id="r-plan")
UA = f"killswitch/{version('killswitch')} run/"
NUMBER = project_number("search-prod")


def vertex(batches: BatchSandbox, **options: Any) -> VertexBatchAdapter:
    adapter = batches.adapter("vertex", **options)
    assert isinstance(adapter, VertexBatchAdapter)
    return adapter


def test_standin_answers_with_the_project_number(batches: BatchSandbox) -> None:
    url = f"http://127.0.0.1:{batches.ports['vertex']}/v1"
    with httpx.Client(base_url=url, timeout=5) as c:
        by_id = c.get("/projects/search-prod/locations/europe-west4/batchPredictionJobs").json()
        names = [j["name"] for j in by_id["batchPredictionJobs"]]
        assert names and all(n.startswith(f"projects/{NUMBER}/locations/europe-west4/")
                             for n in names)
        assert NUMBER.isdigit() and len(NUMBER) == 12
        job_id = names[0].rsplit("/", 1)[1]
        one = f"/projects/search-prod/locations/europe-west4/batchPredictionJobs/{job_id}"
        assert c.get(one).json()["name"] == names[0]  # the ID reaches the same job
        assert c.get(f"/{names[0]}").json()["name"] == names[0]  # and so does the number
        assert c.get("/projects/search-prod/locations/us-east1/batchPredictionJobs/"
                     f"{job_id}").status_code == 404  # another location: another job


def test_cancel_a_job_google_names_by_project_number(batches: BatchSandbox) -> None:
    a = vertex(batches)
    [c] = a.plan("batch.cancel", batches.ref("vertex"), CTX)
    job_id = c.undo["job"]["id"]
    assert job_id.startswith(f"projects/{NUMBER}/locations/europe-west4/batchPredictionJobs/")
    assert a.apply(c)["status_after"] in ("JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED")
    assert a.verify(c).ok
    posts = [r["path"] for r in batches.app("vertex").requests if r["method"] == "POST"]
    short = job_id.rsplit("/", 1)[1]
    assert posts == [f"/v1/projects/search-prod/locations/europe-west4/batchPredictionJobs/"
                     f"{short}:cancel"], "sent under the reference's own project and location"


def test_jobs_outside_the_reference_are_left_alone(batches: BatchSandbox) -> None:
    a = vertex(batches)
    ref = batches.ref("vertex")
    for outside in ("projects/other-project/locations/europe-west4/batchPredictionJobs/1",
                    f"projects/{NUMBER}/locations/us-east1/batchPredictionJobs/1",
                    "projects/search-prod/locations/europe-west4/customJobs/1"):
        with pytest.raises(AdapterError, match="left alone"):
            a._cancel(ref, outside)
        with pytest.raises(AdapterError, match="left alone"):
            a._get(ref, outside)
    assert not [r for r in batches.app("vertex").requests if r["method"] == "POST"]
    for bad in ("europe west4", "../x", ""):
        with pytest.raises(AdapterError, match="location"):
            a.plan("batch.cancel", {**ref, "location": bad}, CTX)


def test_default_hosts_by_location() -> None:
    assert default_url("europe-west4") == "https://europe-west4-aiplatform.googleapis.com"
    assert default_url("global") == "https://aiplatform.googleapis.com"
    assert default_url("us") == "https://aiplatform.us.rep.googleapis.com"
    assert default_url("eu") == "https://aiplatform.eu.rep.googleapis.com"
    a = VertexBatchAdapter("v", {})
    assert a.base_url("global") == "https://aiplatform.googleapis.com"
    t = VertexBatchAdapter("v", {"base_url": "http://127.0.0.1:9/{location}/"})
    assert t.base_url("eu") == "http://127.0.0.1:9/eu" and t.base_url("global").endswith("/global")
    for loc in ("europe-west4", "global", "us", "eu"):  # the stand-in agrees with the adapter
        assert default_url(loc) == f"https://{host_of(loc)}"


class ToLoopback(httpx.BaseTransport):
    """Sends every request to the stand-in on 127.0.0.1, keeping the Host it was made for."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.inner = httpx.HTTPTransport()
        self.hosts: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert request.url.scheme == "https" and "googleapis.com" in request.url.host
        self.hosts.append(request.headers["host"])
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self.port)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("location", ["global", "us", "eu", "us-central1"])
def test_default_host_of_each_location_reaches_its_jobs(
        batches: BatchSandbox, monkeypatch: pytest.MonkeyPatch, location: str) -> None:
    transport = ToLoopback(batches.ports["vertex"])
    monkeypatch.setattr(HttpApi, "TRANSPORT", transport)
    app = batches.app("vertex")
    labels = {"integration": "search-embeddings"}
    job = job_object(f"projects/search-prod/locations/{location}", "777", "emb-777",
                     "JOB_STATE_RUNNING", labels, 5, 0, 95, time.time() - 60)
    with app.lock:
        app.jobs()[job["name"]] = job
    a = vertex(batches, base_url="")  # no base_url: Google's host for the location
    ref = {**batches.ref("vertex"), "location": location}
    [c] = a.plan("batch.cancel", ref, CTX)
    assert c.undo["job"]["id"] == f"projects/{NUMBER}/locations/{location}/" \
        "batchPredictionJobs/777"
    a.apply(c)
    assert a.verify(c).ok
    assert set(transport.hosts) == {host_of(location)}
    assert app.jobs()[job["name"]]["state"] in ("JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED")


def test_standin_refuses_a_host_that_does_not_serve_the_location(
        batches: BatchSandbox) -> None:
    url = f"http://127.0.0.1:{batches.ports['vertex']}/v1"
    path = "/projects/search-prod/locations/global/batchPredictionJobs"
    with httpx.Client(base_url=url, timeout=5) as c:
        bad = c.get(path, headers={"Host": "global-aiplatform.googleapis.com"})
        assert bad.status_code == 400 and bad.json()["error"]["status"] == "INVALID_ARGUMENT"
        assert "aiplatform.googleapis.com" in bad.json()["error"]["message"]
        good = c.get(path, headers={"Host": "aiplatform.googleapis.com"})
        assert good.status_code == 200


def test_user_agent_names_the_run(batches: BatchSandbox) -> None:
    a = vertex(batches)
    [c] = a.plan("batch.cancel", batches.ref("vertex"), CTX)
    b = vertex(batches)
    b.run_id = "r-apply"  # what the engine's Runtime sets on the adapter of a run
    b.apply(c)
    reqs = batches.app("vertex").requests
    agents = [r["headers"].get("user-agent") for r in reqs]
    assert agents[0] == UA + "r-plan"
    cancel = next(r for r in reqs if r["method"] == "POST")
    assert cancel["headers"]["user-agent"] == UA + "r-apply"
    assert set(agents) == {UA + "r-plan", UA + "r-apply"}


def test_runtime_gives_the_vertex_adapter_its_run_id(batches: BatchSandbox) -> None:
    """Each call sees the run of the runtime view that made it, even when two runs share
    the same adapter (one set of clients per session)."""
    rt = Runtime(batches.config)

    async def both() -> list[str]:
        return list(await asyncio.gather(
            rt.view(run_id="r-one").call("vertex-sandbox", lambda a: a.run_id),
            rt.view(run_id="r-two").call("vertex-sandbox", lambda a: a.run_id)))
    try:
        assert asyncio.run(both()) == ["r-one", "r-two"]
        assert rt.adapter("vertex-sandbox").run_id == ""  # outside a call: no run
    finally:
        rt.close()
