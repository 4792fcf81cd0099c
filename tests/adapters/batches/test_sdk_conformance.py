"""The batch stand-ins driven by the official clients (openai, anthropic, boto3) and raw REST.

Proves the wire protocol the adapters rely on: paths, pagination, auth headers, body and
error shapes, and the real state sequences after a cancel.
"""

from __future__ import annotations

import time

import anthropic
import boto3
import httpx
import openai
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from tests.adapters.batches.conftest import BatchSandbox


def _key(box: BatchSandbox, name: str) -> str:
    return (box.root / ".sandbox" / f"{name}-batch.key").read_text().strip()


def _settle(read: object, done: str, tries: int = 20) -> str:
    status = ""
    for _ in range(tries):
        status = read()  # type: ignore[operator]
        if status == done:
            return status
        time.sleep(0.1)
    return status


def test_openai_sdk_list_pages_retrieve_cancel(batches: BatchSandbox) -> None:
    oc = openai.OpenAI(api_key=_key(batches, "openai"),
                       base_url=f"http://127.0.0.1:{batches.ports['openai']}/v1", max_retries=0)
    page = oc.batches.list(limit=2)
    ids = [b.id for b in page]
    assert len(ids) == 6 and len(set(ids)) == 6
    assert any(r["query"].get("after") for r in batches.app("openai").requests)
    mine = [b for b in oc.batches.list() if (b.metadata or {}).get("integration") == "support-bot"
            and b.status == "in_progress"]
    [b] = mine
    assert b.input_file_id and b.request_counts and b.request_counts.total == 120
    got = oc.batches.cancel(b.id)
    assert got.status == "cancelling"
    assert _settle(lambda: oc.batches.retrieve(b.id).status, "cancelled") == "cancelled"
    assert oc.batches.retrieve(b.id).output_file_id
    with pytest.raises(openai.ConflictError):
        oc.batches.cancel(b.id)
    with pytest.raises(openai.NotFoundError):
        oc.batches.retrieve("batch_nope")
    bad = openai.OpenAI(api_key="sk-wrong", base_url=oc.base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.batches.list()


def test_azure_v1_path_and_api_key_header(batches: BatchSandbox) -> None:
    key = _key(batches, "openai")
    base = f"http://127.0.0.1:{batches.ports['openai']}/openai/v1"
    az = openai.OpenAI(api_key="unused", base_url=base, max_retries=0,
                       default_headers={"api-key": key, "Authorization": ""})
    batches_ = [b for b in az.batches.list()
                if (b.metadata or {}).get("integration") == "contract-drafter"]
    assert {b.status for b in batches_} == {"in_progress", "completed"}
    run = next(b for b in batches_ if b.status == "in_progress")
    assert az.batches.cancel(run.id).status == "cancelling"
    paths = {r["path"] for r in batches.app("openai").requests}
    assert f"/openai/v1/batches/{run.id}/cancel" in paths
    assert any(r["headers"].get("api-key") == key for r in batches.app("openai").requests)


@pytest.mark.parametrize("style", ["bearer", "x-api-key"])
def test_anthropic_sdk_both_auth_styles(batches: BatchSandbox, style: str) -> None:
    key = _key(batches, "anthropic")
    url = f"http://127.0.0.1:{batches.ports['anthropic']}"
    if style == "bearer":  # what anthropic 2.x sends
        ac = anthropic.Anthropic(api_key=key, base_url=url, max_retries=0)
    else:  # the documented header, as anthropic 1.x and raw clients send it
        ac = anthropic.Anthropic(api_key="unused", base_url=url, max_retries=0,
                                 default_headers={"x-api-key": key, "Authorization": "",
                                                  "anthropic-version": "2023-06-01"})
    hdr = {"anthropic-workspace-id": "wrkspc_codereview"}
    listed = list(ac.messages.batches.list(limit=1, extra_headers=hdr))
    assert [b.processing_status for b in listed] == ["ended", "in_progress"]
    run = next(b for b in listed if b.processing_status == "in_progress")
    got = ac.messages.batches.cancel(run.id, extra_headers=hdr)
    assert got.processing_status == "canceling" and got.cancel_initiated_at
    final = _settle(lambda: ac.messages.batches.retrieve(run.id, extra_headers=hdr)
                    .processing_status, "ended")
    assert final == "ended"
    done = ac.messages.batches.retrieve(run.id, extra_headers=hdr)
    assert done.request_counts.canceled == 70 and done.results_url
    with pytest.raises(anthropic.ConflictError):
        ac.messages.batches.cancel(run.id, extra_headers=hdr)
    with pytest.raises(anthropic.PermissionDeniedError):
        ac.messages.batches.list(extra_headers={"anthropic-workspace-id": "wrkspc_nope"})
    with pytest.raises(anthropic.NotFoundError):
        ac.messages.batches.retrieve("msgbatch_nope", extra_headers=hdr)


def test_boto3_bedrock_list_get_stop(batches: BatchSandbox) -> None:
    br = boto3.client("bedrock", endpoint_url=f"http://127.0.0.1:{batches.ports['bedrock']}",
                      region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing",
                      config=BotoConfig(retries={"total_max_attempts": 1}))
    pages = br.get_paginator("list_model_invocation_jobs").paginate(
        nameContains="claims-summariser-", PaginationConfig={"PageSize": 1})
    jobs = [j for p in pages for j in p["invocationJobSummaries"]]
    assert len(jobs) == 3  # substring match: the other integration's job too
    run = next(j for j in jobs if j["jobName"].startswith("claims-summariser-")
               and j["status"] == "InProgress")
    assert run["inputDataConfig"]["s3InputDataConfig"]["s3Uri"].startswith("s3://")
    assert run["submitTime"].year >= 2024
    br.stop_model_invocation_job(jobIdentifier=run["jobArn"])
    job_id = run["jobArn"].rsplit("/", 1)[-1]
    assert br.get_model_invocation_job(jobIdentifier=job_id)["status"] in ("Stopping", "Stopped")
    assert _settle(lambda: br.get_model_invocation_job(jobIdentifier=run["jobArn"])["status"],
                   "Stopped") == "Stopped"
    with pytest.raises(ClientError) as err:
        br.stop_model_invocation_job(jobIdentifier=run["jobArn"])
    assert err.value.response["Error"]["Code"] == "ConflictException"
    with pytest.raises(br.exceptions.ResourceNotFoundException):
        br.get_model_invocation_job(jobIdentifier="nope00000000")
    batches.app("bedrock").faults.throttle_rate = 1.0
    with pytest.raises(ClientError) as err:
        br.list_model_invocation_jobs()
    assert err.value.response["Error"]["Code"] == "ThrottlingException"


def test_vertex_rest_filter_get_cancel(batches: BatchSandbox) -> None:
    url = f"http://127.0.0.1:{batches.ports['vertex']}/v1"
    parent = "projects/search-prod/locations/europe-west4"
    with httpx.Client(base_url=url) as c:
        r = c.get(f"/{parent}/batchPredictionJobs",
                  params={"filter": 'labels.integration="search-embeddings"', "pageSize": 1})
        body = r.json()
        assert r.status_code == 200 and len(body["batchPredictionJobs"]) == 1
        nxt = c.get(f"/{parent}/batchPredictionJobs",
                    params={"filter": "labels.integration=search-embeddings",
                            "pageToken": body["nextPageToken"]}).json()
        jobs = body["batchPredictionJobs"] + nxt["batchPredictionJobs"]
        assert {j["state"] for j in jobs} == {"JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"}
        run = next(j for j in jobs if j["state"] == "JOB_STATE_RUNNING")
        assert c.post(f"/{run['name']}:cancel", json={}).json() == {}
        assert c.get(f"/{run['name']}").json()["state"] in ("JOB_STATE_CANCELLING",
                                                            "JOB_STATE_CANCELLED")
        assert _settle(lambda: c.get(f"/{run['name']}").json()["state"],
                       "JOB_STATE_CANCELLED") == "JOB_STATE_CANCELLED"
        again = c.post(f"/{run['name']}:cancel", json={})
        assert again.status_code == 400
        assert again.json()["error"]["status"] == "FAILED_PRECONDITION"
        bad = c.get(f"/{parent}/batchPredictionJobs", params={"filter": "foo>bar"})
        assert bad.json()["error"]["status"] == "INVALID_ARGUMENT"
        assert c.get(f"/{parent}/batchPredictionJobs/1").json()["error"]["status"] == \
            "NOT_FOUND"
