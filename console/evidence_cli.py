"""``killswitch evidence``: check, show and hand over the evidence bundle of a run.

::

    killswitch evidence verify RUN_ID [--json]
    killswitch evidence show RUN_ID [--json]
    killswitch evidence export RUN_ID --out bundle.tar.gz [--force] [--unverified]

``verify`` re-hashes every file of the run's bundle (``settings.evidence_dir``/RUN_ID) and
compares ``manifest.json`` with the SHA-256 the audit trail recorded last: exit 0 with one
line naming the file count, or exit 4 naming every changed, missing and extra file and
whether the manifest itself no longer matches the trail. ``export`` verifies first and
refuses (exit 4) a bundle that does not verify unless ``--unverified``; it never replaces an
existing file without ``--force`` (exit 2). An unknown run is exit 2 with a hint.

The group registers itself on the main ``cli`` group (``console.cli`` imports this module
at its end); only click and ``console.cli`` are imported at load time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from console.cli import _complete_run_id, _config, _json, _out, cli, common
from console.errors import EXIT_VERIFY

if TYPE_CHECKING:
    from console.audit import TrailBase
    from console.config import Config
    from console.engine.evidence import BundleCheck

__all__ = ["evidence"]


@contextlib.contextmanager
def _trail(config: Config) -> Iterator[TrailBase | None]:
    """The audit trail, read-only (None when there is none yet)."""
    from console.store import has_trail, open_audit

    if not has_trail(config):
        yield None
        return
    log = open_audit(config, readonly=True)
    try:
        yield log
    finally:
        log.close()


def _check(run_id: str) -> BundleCheck:
    from console.engine.evidence import check_bundle, evidence_root

    config = _config()
    with _trail(config) as audit:
        return check_bundle(evidence_root(config), run_id, audit)


@cli.group()
def evidence() -> None:
    """Verify, show and export the evidence bundle of a run (evidence.preserve)."""


@evidence.command("verify")
@common
@click.argument("run_id", shell_complete=_complete_run_id)
def evidence_verify(run_id: str) -> None:
    """Re-hash every file of RUN_ID's evidence bundle and check its manifest against the
    hash the audit trail recorded. Exit 0, or exit 4 naming every changed, missing and
    extra file (and the manifest, when it no longer matches the trail)."""
    check = _check(run_id)
    if _json():
        _out(json.dumps(check.to_dict(), indent=2))
    elif check.ok:
        failed = (f"; {check.failed} source(s) could not be preserved (listed in the manifest)"
                  if check.failed else "")
        _out(f"evidence OK: run {run_id}: {check.files} file(s) match manifest.json, whose "
             f"SHA-256 {check.manifest_sha256[:16]}... is the one the audit trail recorded "
             f"(seq {check.recorded_seq}){failed}")
    else:
        _out(f"evidence of run {run_id} does NOT verify ({check.path}):")
        for problem in check.problems:
            _out(f"  {problem}")
        _out("the bundle was left as found; keep it, and the audit trail, as they are")
    if not check.ok:
        sys.exit(EXIT_VERIFY)


@evidence.command("show")
@common
@click.argument("run_id", shell_complete=_complete_run_id)
def evidence_show(run_id: str) -> None:
    """List RUN_ID's evidence: every file (path, size, source, target) and every source that
    could not be preserved, with the bundle's verification status."""
    from console.render import table

    check = _check(run_id)
    if _json():
        _out(json.dumps({**check.to_dict(), "listed": check.listed,
                         "failures": check.failures}, indent=2))
        return
    _out(f"evidence of run {run_id}: {check.path}")
    _out(table(["file", "size", "source", "target"],
               [[str(e.get("path", "")), str(e.get("size", "")), str(e.get("source", "")),
                 str(e.get("target", ""))] for e in check.listed]))
    for f in check.failures:
        _out(f"not preserved: {f.get('integration', '?')} {f.get('target', '?')} "
             f"{f.get('source', '?')}: {f.get('message', '')}")
    _out("verification: OK" if check.ok else
         "verification: FAILED (`killswitch evidence verify` names the problems)")


@evidence.command("export")
@common
@click.argument("run_id", shell_complete=_complete_run_id)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="The .tar.gz to write (0600).")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option("--unverified", is_flag=True,
              help="Export a bundle that does not verify, as found (its problems are "
                   "printed on stderr); without it such a bundle is refused (exit 4).")
def evidence_export(run_id: str, out: str, force: bool, unverified: bool) -> None:
    """Verify RUN_ID's evidence bundle, then write it as a reproducible .tar.gz for handing
    over: manifest.json, manifest.json.sha256 (the hash the trail recorded) and every file."""
    from console.engine.evidence import evidence_root, export_bundle

    config = _config()
    with _trail(config) as audit:
        check = export_bundle(evidence_root(config), run_id, out, audit, force=force,
                              unverified=unverified)
    digest = hashlib.sha256(Path(out).read_bytes()).hexdigest()
    for problem in check.problems:
        click.echo(f"warning: exported unverified: {problem}", err=True)
    result: dict[str, Any] = {"run_id": run_id, "out": str(Path(out).resolve()),
                              "files": check.files, "sha256": digest, "verified": check.ok,
                              "manifest_sha256": check.manifest_sha256}
    if _json():
        _out(json.dumps(result, indent=2))
    else:
        _out(f"exported run {run_id}: manifest.json and {check.files} file(s) to {out} "
             f"(sha256 {digest}){'' if check.ok else ' UNVERIFIED'}")
