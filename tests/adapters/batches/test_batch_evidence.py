"""Evidence from the batch adapters: every job of the integration and the files they left.

The stand-ins' file routes are proven with the official clients first (openai
``files.content``, anthropic ``messages.batches.results``), then ``preserve()`` runs against
the five seeded providers.
"""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from console.sandbox.standin import Faults, Request, Response
from tests.adapters.batches.conftest import BatchSandbox
from tests.adapters.evidence.recorder import Recorder


def _key(box: BatchSandbox, name: str) -> str:
    return (box.root / ".sandbox" / f"{name}-batch.key").read_text().strip()


def preserve(box: BatchSandbox, provider: str) -> Recorder:
    sink = Recorder()
    box.adapter(provider).preserve(box.ref(provider), sink)
    return sink


def jsonl(text: str) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# -- the stand-ins, driven by the official clients ------------------------------------------------

def test_openai_sdk_downloads_output_and_error_files(batches: BatchSandbox) -> None:
    oc = openai.OpenAI(api_key=_key(batches, "openai"),
                       base_url=f"http://127.0.0.1:{batches.ports['openai']}/v1", max_retries=0)
    done = next(b for b in oc.batches.list() if b.status == "completed")
    assert done.output_file_id and done.error_file_id and done.request_counts
    out = jsonl(oc.files.content(done.output_file_id).text)
    assert len(out) == min(done.request_counts.completed, 20)
    assert out[0]["response"]["status_code"] == 200 and out[0]["custom_id"] == "request-1"
    assert out[0]["response"]["body"]["object"] == "chat.completion"
    errors = jsonl(oc.files.content(done.error_file_id).text)
    assert len(errors) == done.request_counts.failed
    assert errors[0]["response"]["body"]["error"]["type"] == "invalid_request_error"
    with pytest.raises(openai.NotFoundError):
        oc.files.content("file-nope")
    oc.close()


def test_anthropic_sdk_streams_results_of_an_ended_batch(batches: BatchSandbox) -> None:
    ac = anthropic.Anthropic(api_key=_key(batches, "anthropic"),
                             base_url=f"http://127.0.0.1:{batches.ports['anthropic']}",
                             max_retries=0)
    hdr = {"anthropic-workspace-id": "wrkspc_codereview"}
    ended = next(b for b in ac.messages.batches.list(extra_headers=hdr)
                 if b.processing_status == "ended")
    assert ended.results_url and ended.results_url.startswith("http://127.0.0.1:")
    results = list(ac.messages.batches.results(ended.id, extra_headers=hdr))
    kinds = [r.result.type for r in results]
    assert kinds.count("succeeded") == 20 and kinds.count("errored") == 1
    ok = next(r for r in results if r.result.type == "succeeded")
    assert ok.result.message.content[0].text.startswith("Review")  # type: ignore[union-attr]
    running = next(b for b in ac.messages.batches.list(extra_headers=hdr)
                   if b.processing_status == "in_progress")
    with pytest.raises(anthropic.NotFoundError):
        ac.get(f"/v1/messages/batches/{running.id}/results", cast_to=object,
               options={"headers": hdr})
    ac.close()


# -- preserve() ------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "azure"])
def test_openai_jobs_and_their_files(batches: BatchSandbox, provider: str) -> None:
    sink = preserve(batches, provider)
    assert sink.failures == []
    jobs = sink.data("batches")
    assert jobs["count"] == 2 and not jobs["capped"]
    assert {j["status"] for j in jobs["jobs"]} == {"in_progress", "completed"}
    assert {j["metadata"]["integration"] for j in jobs["jobs"]} == \
        {batches.ref(provider)["metadata"]["integration"]}, "never another integration's"
    done = next(j for j in jobs["jobs"] if j["status"] == "completed")
    assert {"created_at", "expires_at", "input_file_id", "request_counts"} <= set(done)
    output = sink.items[f"{done['id']}-output.jsonl"]
    assert output.source == "batch-output"
    assert len(jsonl(output.text)) == 20
    assert {f["item"] for f in jobs["files"]} == {n for n, i in sink.items.items()
                                                   if i.content is not None}
    assert len([i for i in sink.items.values() if i.source == "batch-errors"]) == 2
    asked = [r["path"] for r in batches.app(provider).requests if "/files/" in r["path"]]
    prefix = "/openai/v1/files/" if provider == "azure" else "/v1/files/"
    assert asked and all(p.startswith(prefix) and p.endswith("/content") for p in asked)


def test_anthropic_jobs_and_results(batches: BatchSandbox) -> None:
    sink = preserve(batches, "anthropic")
    assert sink.failures == []
    jobs = sink.data("batches")["jobs"]
    assert {j["processing_status"] for j in jobs} == {"in_progress", "ended"}
    ended = next(j for j in jobs if j["processing_status"] == "ended")
    results = jsonl(sink.items[f"{ended['id']}-results.jsonl"].text)
    assert {r["result"]["type"] for r in results} == {"succeeded", "errored"}
    assert [i.source for i in sink.items.values()] == ["batches", "batch-results"]


@pytest.mark.parametrize(("provider", "where"), [("bedrock", "s3Uri"), ("vertex", "gcsSource")])
def test_bedrock_and_vertex_record_locations_only(batches: BatchSandbox, provider: str,
                                                  where: str) -> None:
    sink = preserve(batches, provider)
    assert sink.failures == [] and list(sink.items) == ["batches.json"]
    data = sink.data("batches")
    assert data["count"] == 2 and "locations only" in data["files"]
    assert where in json.dumps(data["jobs"])


def test_a_failing_file_is_reported_and_the_rest_comes(batches: BatchSandbox,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    app = batches.app("openai")
    inner = app.handle
    broken: list[str] = []

    def one_file_broken(req: Request) -> Response:
        if "/files/file-out-" in req.path:
            broken.append(req.path)
            return app.error(500, "The server had an error while processing your request.")
        return inner(req)

    monkeypatch.setattr(app, "handle", one_file_broken)
    sink = preserve(batches, "openai")
    done = next(j for j in sink.data("batches")["jobs"] if j["status"] == "completed")
    [(source, message)] = sink.failures
    assert source == f"batch-output {done['id']}" and "server had an error" in message
    assert f"{done['id']}-output.jsonl" not in sink.items, "no partial file"
    assert len([i for i in sink.items.values() if i.source == "batch-errors"]) == 2
    assert broken


def test_provider_down_reports_the_listing(batches: BatchSandbox) -> None:
    batches.app("anthropic").faults = Faults(error_rate=1.0, error_status=503)
    sink = preserve(batches, "anthropic")
    assert sink.items == {} and sink.failed_sources == {"batches"}


class CountingSink(Recorder):
    """A sink that does not read the files it is handed (like a rehearsal's)."""

    def file(self, name: str, chunks, *, source: str) -> None:  # type: ignore[no-untyped-def]
        self.failures.append(("not read", name))


def test_a_file_the_sink_does_not_read_is_released(batches: BatchSandbox) -> None:
    adapter = batches.adapter("openai")
    sink = CountingSink()
    adapter.preserve(batches.ref("openai"), sink)
    assert len(sink.failures) == 3 and "batches.json" in sink.items
    client = adapter.api.client
    assert client is not None
    pool = client._transport._pool  # type: ignore[attr-defined]
    assert all(c.is_idle() for c in pool.connections), "no answer is left open"
