"""Headless commands. Never imports Textual (a test checks ``sys.modules``).

Exit codes (also in the README):
    0 ok; 1 some operations failed; 2 usage / config / input error;
    3 refused (drift, lock held, blast radius, irreversible without consent, no confirmation);
    4 verification failed (a kill did not take effect, or the audit chain does not verify);
    130 interrupted by Ctrl-C (in-flight operations finished and were recorded).
The numbers live in ``console.errors`` only: no literal exit code appears here.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

from console.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_REFUSED,
    EXIT_USAGE,
    EXIT_VERIFY,
    ConsoleError,
    NotConfirmed,
    UsageError,
)

if TYPE_CHECKING:
    from console.config import Config
    from console.engine.model import Plan, RunResult
    from console.engine.service import Session

__all__ = ["cli", "main"]


def _store(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value not in (None, False):
        ctx.ensure_object(dict)[param.name or ""] = value


def common(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add --config and --json to a command (they work before or after the subcommand)."""
    fn = click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
                      expose_value=False, callback=_store,
                      help="Config file (default: $KILLSWITCH_CONFIG, then "
                           "~/.config/killswitch/config.toml).")(fn)
    fn = click.option("--json", "json_out", is_flag=True, expose_value=False,
                      callback=_store, help="Machine-readable output.")(fn)
    return fn


def _opts() -> dict[str, Any]:
    ctx = click.get_current_context()
    return ctx.ensure_object(dict)


def _config() -> Config:
    from console.config import load_config

    config = load_config(_opts().get("config"))
    from console.store import local_override

    if local_override(config):
        click.echo("WARNING: KILLSWITCH_STORE=sqlite: using the local SQLite file "
                   f"{config.resolve(config.settings.audit_db)}, not the shared store: other "
                   "commanders' locks, runs and approvals are not seen, and they do not see "
                   "yours", err=True)
    import gc

    gc.freeze()  # the config lives as long as the command: keep full collections off it
    return config


def _json() -> bool:
    return bool(_opts().get("json_out"))


def _session(incident: str | None = None, mode: str = "live",
             cause: str | None = None) -> Session:
    from console.engine.service import Session

    return Session(_config(), incident=incident, mode=mode, cause=cause)


CAUSE_CHOICES = ("leak", "cost", "data", "abuse", "exercise", "other")
"""``--cause`` values (:data:`console.vocab.CAUSES`; literal here so --help imports nothing)."""

cause_option = click.option(
    "--cause", type=click.Choice(CAUSE_CHOICES), default=None,
    help="Why this run happens: leak, cost, data, abuse, exercise or other (the default). "
         "Recorded in the trail, the plan, the report and notifications; after a leak, "
         "restore will not re-enable the leaked key.")

break_glass_option = click.option(
    "--break-glass", "break_glass", is_flag=True,
    help="Two-person rule: act alone, now (needs --reason). Recorded loudly in the trail; "
         "another commander must co-sign afterwards (`killswitch approve ID`).")

new_key_option = click.option(
    "--new-key-from", "new_key_from", type=click.Path(dir_okay=False), metavar="FILE",
    help="rotate: the new key(s) pasted by the operator, for integrations whose provider "
         "cannot issue one by API: INTEGRATION_ID=KEY lines, or the bare key when one "
         "integration needs it. The file must be readable by you only (chmod 600); a key "
         "equal to the current one is refused (exit 3).")


def _paste_keys(session: Session, plan: Plan, path: str | None) -> None:
    """Hold the plan's pasted keys (``--new-key-from``, or a hidden prompt at a terminal);
    refuse (exit 3) a plan that needs one and has none. Only fingerprints are printed."""
    from console.engine import rotation

    needed = rotation.pasted_key_needed(plan)
    keys: dict[str, str] = {}
    if path:
        keys = rotation.parse_key_file(rotation.read_key_file(path), needed,
                                       plan.integrations, where=path)
    elif needed and sys.stdin.isatty():
        keys = {i: click.prompt(f"Paste the new key for {i} (not shown)", hide_input=True,
                                default="", show_default=False) for i in needed}
    for integration, value in keys.items():
        fp = rotation.put_pasted_key(session, plan, integration, value)
        click.echo(f"new key for {integration}: pasted by the operator ({fp}); it differs "
                   "from the current key", err=True)
    rotation.require_pasted_keys(plan)


def _audit_key() -> bytes | None:
    """The audit key (signs and checks saved plans), if one is set."""
    import os

    from console.audit import KEY_ENV

    value = os.environ.get(KEY_ENV, "")
    return value.encode("utf-8") if value else None


def _out(text: str) -> None:
    from console.scrub import scrub_text

    click.echo(scrub_text(text))


# -- shell completion ----------------------------------------------------------------------
# click's completion (`eval "$(_KILLSWITCH_COMPLETE=bash_source killswitch)"`). Candidates
# come from the config, the runbook folders and the audit trail, read-only; nothing here
# imports an adapter, a cloud SDK or Textual, and no error ever reaches the shell.
def _complete_config(ctx: click.Context) -> Config | None:
    """The config the command line names (``--config`` before the word), or None."""
    from console.config import load_config

    path: str | None = None
    c: click.Context | None = ctx
    while c is not None and path is None:
        if isinstance(c.obj, dict):
            path = c.obj.get("config")
        c = c.parent
    try:
        return load_config(path)
    except Exception:  # noqa: BLE001 - no config, or a broken one: fewer candidates
        return None


def _complete_runbook(ctx: click.Context, param: click.Parameter,
                      incomplete: str) -> list[Any]:
    """Runbook names (shipped and ``settings.runbook_dirs``), or a file path."""
    from click.shell_completion import CompletionItem

    if "/" in incomplete or incomplete.endswith(".toml"):
        return [CompletionItem(incomplete, type="file")]
    try:
        import tomllib

        from console.runbook import runbook_paths

        config = _complete_config(ctx)
        try:
            paths = runbook_paths(config)
        except ConsoleError:  # a missing runbook folder: the shipped ones still complete
            paths = runbook_paths(None)
        items = []
        for name, path in sorted(paths.items()):
            if not name.startswith(incomplete):
                continue
            try:  # the description only: loading would import the adapters
                text = str(tomllib.loads(path.read_text("utf-8")).get("description", ""))
            except (OSError, ValueError):
                text = ""
            items.append(CompletionItem(name, help=" ".join(text.split())[:80] or None))
        return items
    except Exception:  # noqa: BLE001 - completion never fails loudly
        return []


def _complete_integration(ctx: click.Context, param: click.Parameter,
                          incomplete: str) -> list[Any]:
    """Integration ids of the inventory."""
    from click.shell_completion import CompletionItem

    config = _complete_config(ctx)
    if config is None:
        return []
    return [CompletionItem(i.id, help=i.name or None) for i in config.integrations
            if i.id.startswith(incomplete)]


def _complete_selector(ctx: click.Context, param: click.Parameter,
                       incomplete: str) -> list[Any]:
    """Integration ids, ``key=`` selector keys and, after ``key=``, the inventory's values
    (after a comma, the next alternative)."""
    from click.shell_completion import CompletionItem

    if "=" not in incomplete:
        from console.inventory import SELECTOR_KEYS

        keys = [CompletionItem(f"{k}=", help="selector") for k in SELECTOR_KEYS
                if f"{k}=".startswith(incomplete) and incomplete]
        return _complete_integration(ctx, param, incomplete) + keys
    config = _complete_config(ctx)
    if config is None:
        return []
    try:
        from console.inventory import _values

        key, _, value = incomplete.partition("=")
        done, _, last = value.rpartition(",")
        prefix = f"{key}={done}," if done else f"{key}="
        norm = key.strip().lower().replace("-", "_")
        seen = dict.fromkeys(v for i in config.integrations for v in _values(i, norm))
        return [CompletionItem(prefix + v) for v in seen if v.startswith(last)]
    except Exception:  # noqa: BLE001 - an unknown key: nothing to offer
        return []


def _complete_run_id(ctx: click.Context, param: click.Parameter,
                     incomplete: str) -> list[Any]:
    """Run ids of the audit trail, newest first. Read-only; never creates a file: a trail
    whose WAL is not open is read ``immutable`` (SQLite then creates no -wal / -shm)."""
    import sqlite3

    from click.shell_completion import CompletionItem

    from console.config import Settings
    from console.store import store_url

    config = _complete_config(ctx)
    try:
        if config is not None and store_url(config):
            from console.store import open_audit
            with open_audit(config, readonly=True) as log:
                runs = [r for r in reversed(log.runs()) if str(r["run_id"]).startswith(incomplete)]
            return [CompletionItem(str(r["run_id"]), help=" ".join(
                str(x) for x in (r.get("mode"), r.get("incident"), r.get("first_ts")) if x)
                or None) for r in runs[:200]]
        db = (config.resolve(config.settings.audit_db) if config is not None
              else Path(Settings().audit_db).expanduser())
        if not db.is_file():
            return []
        live = all(Path(f"{db}{s}").exists() for s in ("-wal", "-shm"))
        uri = db.resolve().as_uri() + ("?mode=ro" if live else "?immutable=1")
        conn = sqlite3.connect(uri, uri=True, timeout=1.0)
        try:
            rows = conn.execute(
                "SELECT run_id, coalesce(max(CASE WHEN mode != 'plan' THEN mode END), "
                "max(mode)), max(incident), min(ts) FROM events "
                "WHERE run_id IS NOT NULL AND substr(run_id, 1, ?) = ? "
                "GROUP BY run_id ORDER BY min(seq) DESC LIMIT 200",
                (len(incomplete), incomplete)).fetchall()
        finally:
            conn.close()
    except Exception:  # noqa: BLE001 - no trail, locked, not a trail: no candidates
        return []
    return [CompletionItem(str(r[0]), help=" ".join(str(x) for x in r[1:] if x) or None)
            for r in rows]


@click.group(invoke_without_command=True)
@common
@click.option("--exercise", is_flag=True,
              help="Console only: a tabletop exercise on sandbox backends. Refuses (exit 2) "
              "a config with any backend not marked `sandbox = true`; opens in DRY-RUN, and "
              "EXERCISE (applies only to sandbox backends) is one typed word away.")
@click.option("--incident", "tui_incident", help="Console only: incident id.")
@click.version_option(package_name="killswitch")
@click.pass_context
def cli(ctx: click.Context, exercise: bool, tui_incident: str | None) -> None:
    """Killswitch: contain an approved AI integration in minutes.

    Without a command, opens the console (the TUI).
    """
    ctx.ensure_object(dict)
    if ctx.invoked_subcommand is None:
        import gc

        gc.disable()  # start-up allocates a lot and frees little: the app re-enables it
        from console.tui.app import run_tui

        sys.exit(run_tui(_opts().get("config"), mode="dry-run", exercise=exercise,
                         incident=tui_incident or ""))


# -- inventory -----------------------------------------------------------------------------
@cli.group()
def inventory() -> None:
    """List, show and lint the inventory of approved AI integrations."""


@inventory.command("list")
@common
@click.argument("selectors", nargs=-1, shell_complete=_complete_selector)
def inventory_list(selectors: tuple[str, ...]) -> None:
    """List integrations (optionally filtered by SELECTORS)."""
    from console.inventory import select
    from console.render import table

    config = _config()
    items = select(config.integrations, list(selectors)) if selectors else config.integrations
    if _json():
        _out(json.dumps([i.model_dump(mode="json") for i in items], indent=2))
        return
    rows = [[i.id, i.name, i.provider, i.environment, ",".join(i.data_classes), i.owner,
             i.status] for i in items]
    _out(table(["id", "name", "provider", "env", "data classes", "owner", "status"], rows))


@inventory.command("show")
@common
@click.argument("integration_id", shell_complete=_complete_integration)
def inventory_show(integration_id: str) -> None:
    """Everything the inventory says about one integration."""
    from console.inventory import select_one

    item = select_one(_config().integrations, integration_id)  # UsageError unless exactly one
    data = item.model_dump(mode="json")
    if _json():
        _out(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            _out(f"{key}:")
            for v in value:
                _out("  - " + ", ".join(f"{k}={x}" for k, x in v.items() if x is not None))
        elif value not in (None, [], {}):
            _out(f"{key}: {value if not isinstance(value, list) else ', '.join(map(str, value))}")


@inventory.command("lint")
@common
def inventory_lint() -> None:
    """Check the inventory: errors exit 2, warnings are printed."""
    from console.inventory import lint

    findings = lint(_config())
    if _json():
        _out(json.dumps([f.__dict__ if hasattr(f, "__dict__") else f for f in findings],
                        indent=2, default=str))
    else:
        for f in findings:
            _out(f"{f.level}: {f.where}: {f.message}" + (f"\n  hint: {f.hint}" if f.hint else ""))
        errors = sum(1 for f in findings if f.level == "error")
        _out(f"{errors} error(s), {len(findings) - errors} warning(s)")
    if any(f.level == "error" for f in findings):
        sys.exit(EXIT_USAGE)


# -- plan / run ----------------------------------------------------------------------------
def _emit_plan(plan: Plan, out: str | None, dry_run: bool, digest: str | None = None) -> None:
    """Print (and save) a plan; exit 1 when some target could not be observed.

    ``digest``: the plan's hash, when it was just computed for this very plan."""
    from console.render import render_plan

    digest = digest or plan.hash  # once: hashing 40,000 changes takes about 0.5 s
    if out:
        from console.privfile import write_private

        write_private(out, plan.to_json(_audit_key(), digest))
    if _json():
        _out(plan.to_json(_audit_key(), digest))
    else:
        _out(render_plan(plan, dry_run=dry_run, plan_hash=digest))
        if out:
            _out(f"\nsaved to {out}; apply with `killswitch run --plan {out}`")
    errors = [c for c in plan.changes if c.status == "error"]
    if errors:
        click.echo(f"{len(errors)} target(s) could not be observed; applying this plan would "
                   "fail for them (see notes)", err=True)
        sys.exit(EXIT_FAILED)


@cli.command()
@common
@click.argument("runbook", shell_complete=_complete_runbook)
@click.argument("selectors", nargs=-1, required=True, shell_complete=_complete_selector)
@click.option("--out", type=click.Path(dir_okay=False), help="Save the plan (JSON) here.")
@click.option("--incident", help="Incident id, recorded.")
@click.option("--include-unlisted", is_flag=True,
              help="Scan the stores and plan copies of each key the inventory does not list.")
@cause_option
@new_key_option
def plan(runbook: str, selectors: tuple[str, ...], out: str | None,
         incident: str | None, include_unlisted: bool, cause: str | None,
         new_key_from: str | None = None) -> None:
    """Observe every target read-only and show what RUNBOOK would do to SELECTORS."""
    session = _session(incident, cause=cause)
    result = session.sync(session.plan(runbook, list(selectors),
                                       include_unlisted=include_unlisted))
    if new_key_from:  # checked now (file, format, new); the run reads it again
        from console.engine.rotation import discard

        _paste_keys(session, result, new_key_from)
        discard(result.run_id)
    _emit_plan(result, out, dry_run=False, digest=session.recorded_hashes.get(result.run_id))


def _confirm(plan: Plan, yes: bool, reason: str | None) -> str:
    """The recorded reason, after the operator confirmed (or refuse)."""
    if not sys.stdin.isatty():
        if not yes:
            raise NotConfirmed("a live run needs --yes when standard input is not a terminal",
                               hint="add --yes --reason '...' (the reason is recorded)")
        if not reason:
            raise NotConfirmed("a live run needs --reason when standard input is not a terminal",
                               hint="add --reason '...': it is recorded in the audit trail")
        return reason
    if yes and reason:
        return reason
    expected = plan.integrations[0] if len(plan.integrations) == 1 else str(len(plan.integrations))
    what = "the integration id" if len(plan.integrations) == 1 else "the number of integrations"
    typed = click.prompt(f"LIVE run on {', '.join(plan.integrations)}. Type {what} to confirm",
                         default="", show_default=False)
    if typed.strip() != expected:
        raise NotConfirmed(f"confirmation did not match (expected {expected!r}); nothing done")
    reason = reason or click.prompt("Reason (recorded)", default="", show_default=False)
    if not reason.strip():
        raise NotConfirmed("a reason is required for a live run; nothing done")
    return reason


def _run_live(session: Session, plan: Plan, reason: str, allow_irreversible: bool,
              max_targets: int | None, saved: bool,
              authorise: Callable[[], object] | None = None) -> RunResult:
    async def go() -> RunResult:
        loop = asyncio.get_running_loop()

        opts = _opts()

        def on_sigint() -> None:
            opts["interrupted"] = True
            if session.cancel is not None and not session.cancel.is_set():
                click.echo("\ncancelling: no new operations start; in-flight ones finish and "
                           "are recorded", err=True)
                session.cancel.set()

        loop.add_signal_handler(signal.SIGINT, on_sigint)
        try:
            return await session.apply(plan, reason=reason,
                                       allow_irreversible=allow_irreversible,
                                       max_targets=max_targets, saved=saved,
                                       authorise=authorise)
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    return asyncio.run(go())


def _finish(result: RunResult, extra: dict[str, Any] | None = None) -> None:
    """Print the result (``extra``: fields the JSON adds; its ``note`` goes to stderr)."""
    from console.render import render_result, result_json

    if extra and _json():
        _out(json.dumps({**json.loads(result_json(result)), **extra}, indent=2))
    else:
        _out(result_json(result) if _json() else render_result(result))
    if extra and extra.get("note") and not _json():
        click.echo(str(extra["note"]), err=True)
    if _opts().get("interrupted"):
        click.echo("interrupted: in-flight operations finished and were recorded; "
                   f"`killswitch resume {result.run_id}` finishes the rest", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(result.exit_code())


def _saved_plan(path: str, cause: str | None) -> Plan:
    """A saved plan file, loaded (hash, signature); ``--cause`` must agree with its cause,
    which is part of what was reviewed (and of its hash)."""
    from console.engine.model import Plan as PlanModel

    saved = PlanModel.load(path, _audit_key())
    if cause is not None and cause != saved.cause:
        raise UsageError(f"the saved plan's cause is {saved.cause!r}, not {cause!r}",
                         where=path, hint="drop --cause (the plan's own is used), or plan "
                                          f"again with --cause {cause}")
    return saved


def _rehearse(runbook: str | None, selectors: list[str], plan_file: str | None,
              incident: str | None, reason: str, allow_irreversible: bool,
              max_targets: int | None, include_unlisted: bool, faults: tuple[str, ...],
              scenario: str | None, seed: int | None, cause: str | None = None) -> None:
    """``run --rehearse``: plan (recorded as a rehearsal), then play the run simulated."""
    from console.engine.rehearsal import (
        HEADER,
        RehearsalResult,
        parse_fault_option,
        parse_faults,
        rehearsal_json,
        render_rehearsal,
        scenario_faults,
    )

    session = _session(incident, mode="rehearsal", cause=cause)
    spec: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    if scenario:
        try:
            from console.exercise.scenario import load_scenario
        except ImportError as exc:
            raise UsageError("exercise scenarios are not available in this installation",
                             hint="give the faults with --fault BACKEND:field=value,...") from exc
        spec, notes = scenario_faults(load_scenario(scenario, session.config))
    for text in faults:
        backend, settings = parse_fault_option(text)
        spec.setdefault(backend, {}).update(settings)
    parse_faults(spec, session.config)  # refuse bad faults before observing anything
    if plan_file:
        the_plan = session.sync(session.rederive(_saved_plan(plan_file, cause)))
    else:
        assert runbook is not None
        the_plan = session.sync(session.plan(runbook, selectors, record_mode="rehearsal",
                                             include_unlisted=include_unlisted))
    if not _json():
        from console.render import render_plan

        click.echo(f"{HEADER}\n{render_plan(the_plan)}\n", err=True)

    async def go() -> RehearsalResult:
        loop = asyncio.get_running_loop()
        opts = _opts()

        def on_sigint() -> None:
            opts["interrupted"] = True
            if session.cancel is not None and not session.cancel.is_set():
                click.echo("\ncancelling the rehearsal: no new operations start", err=True)
                session.cancel.set()

        loop.add_signal_handler(signal.SIGINT, on_sigint)
        try:
            return await session.rehearse(plan=the_plan, faults=spec, seed=seed, reason=reason,
                                          allow_irreversible=allow_irreversible,
                                          max_targets=max_targets, notes=notes)
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    result = session.sync(go())
    _out(rehearsal_json(result) if _json() else render_rehearsal(result))
    if _opts().get("interrupted"):
        click.echo("interrupted: the rehearsal stopped; nothing was changed", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(result.exit_code())


@cli.command()
@common
@click.argument("runbook", required=False, shell_complete=_complete_runbook)
@click.argument("selectors", nargs=-1, shell_complete=_complete_selector)
@click.option("--plan", "plan_file", type=click.Path(dir_okay=False),
              help="Apply exactly this saved plan (refused if any target drifted).")
@click.option("--dry-run", is_flag=True, help="Observe and report; change nothing.")
@click.option("--yes", is_flag=True, help="Confirm a live run (required off a terminal).")
@click.option("--reason", help="Why this run happens (recorded; required with --yes).")
@click.option("--incident", help="Incident id, recorded.")
@click.option("--allow-irreversible", is_flag=True, help="Consent to irreversible changes.")
@click.option("--max-targets", type=int, help="Allow more integrations than max_targets.")
@click.option("--include-unlisted", is_flag=True,
              help="Scan the stores and include copies the inventory does not list.")
@click.option("--rehearse", is_flag=True,
              help="Rehearse: observe the real targets read-only, then play the whole run "
                   "(progress, retries, verify, proof) against a simulated copy of that "
                   "state. Nothing is changed; no --yes needed; not with --dry-run.")
@click.option("--fault", "faults", multiple=True, metavar="BACKEND:FIELD=VALUE,...",
              help="With --rehearse: inject faults into a backend's simulated calls, e.g. "
                   "vault:throttle_rate=0.3,retry_after=1 (fields: latency, throttle_rate, "
                   "retry_after, error_rate, error_status, timeout_rate, hang, down). "
                   "Repeatable.")
@click.option("--scenario", metavar="SCENARIO",
              help="With --rehearse: inject the backend faults of this exercise scenario "
                   "(all from the start).")
@click.option("--seed", type=int,
              help="With --rehearse: seed of the fault dice (the output names the seed used; "
                   "give it again to replay).")
@click.option("--approval", "approval_id", metavar="APPROVAL_ID",
              help="Two-person rule: apply exactly the plan of this approved request (once; "
                   "refused and voided if anything drifted). Either operator may run it.")
@break_glass_option
@cause_option
@new_key_option
def run(runbook: str | None, selectors: tuple[str, ...], plan_file: str | None, dry_run: bool,
        yes: bool, reason: str | None, incident: str | None, allow_irreversible: bool,
        max_targets: int | None, include_unlisted: bool, rehearse: bool,
        faults: tuple[str, ...], scenario: str | None, seed: int | None,
        cause: str | None, new_key_from: str | None = None, approval_id: str | None = None,
        break_glass: bool = False) -> None:
    """Run RUNBOOK on SELECTORS (or a saved --plan): plan, confirm, apply, verify.

    With --rehearse, the run is a rehearsal: the real targets are observed read-only as a
    plan does, then the whole run plays against a simulated copy of what was observed, with
    each backend's latency as measured while planning and any --fault/--scenario faults.
    Output and trail say REHEARSAL; the exit code is the one a live run would have had.

    Under the two-person rule (settings.two_person), a live run is not applied: an approval
    bound to its plan is requested (exit 3, its id printed); see `killswitch approve`.
    """
    if approval_id:
        if runbook or selectors or plan_file or dry_run or rehearse or break_glass or cause:
            raise UsageError("--approval applies the approved plan: give no RUNBOOK, "
                             "SELECTOR, --plan, --cause, --dry-run, --rehearse or --break-glass",
                             hint=f"killswitch run --approval {approval_id} --yes --reason '...'")
        from console.approvals_cli import apply_approved

        apply_approved(approval_id, yes=yes, reason=reason, incident=incident,
                       allow_irreversible=allow_irreversible, max_targets=max_targets,
                       new_key_from=new_key_from)
        return
    if break_glass and (dry_run or rehearse):
        raise UsageError("--break-glass is for live runs only",
                         hint="a dry-run or a rehearsal never needs an approval")
    if break_glass and not (reason or "").strip():
        raise UsageError("--break-glass needs --reason",
                         hint="add --reason '...': it is recorded and shown to the co-signer")
    if plan_file and (runbook or selectors):
        raise UsageError("give either RUNBOOK SELECTOR... or --plan FILE, not both")
    if not plan_file and (not runbook or not selectors):
        raise UsageError("missing RUNBOOK and SELECTOR", hint="e.g. killswitch run kill-switch "
                         "support-bot --dry-run")
    if rehearse or faults or scenario or seed is not None:
        if not rehearse:
            raise UsageError("--fault, --scenario and --seed only go with --rehearse",
                             hint="add --rehearse (a rehearsal changes nothing)")
        if dry_run:
            raise UsageError("--rehearse and --dry-run do not go together",
                             hint="drop --dry-run to rehearse the whole run against a "
                                  "simulated copy, or drop --rehearse for the read-only plan")
        _rehearse(runbook, list(selectors), plan_file, incident, reason or "",
                  allow_irreversible, max_targets, include_unlisted, faults, scenario, seed,
                  cause)
        return
    session = _session(incident, mode="live", cause=cause)
    if plan_file:
        # untrusted input: signature (with an audit key), then re-derived from a fresh plan
        the_plan = session.sync(session.rederive(_saved_plan(plan_file, cause)))
        if dry_run:
            _emit_plan(the_plan, None, dry_run=True)
            return
    else:
        assert runbook is not None
        the_plan = session.sync(session.plan(runbook, list(selectors),
                                             record_mode="dry-run" if dry_run else "plan",
                                             include_unlisted=include_unlisted))
        if dry_run:
            _emit_plan(the_plan, None, dry_run=True)
            return
    session.check_guards(the_plan, allow_irreversible=allow_irreversible,
                         max_targets=max_targets)
    if not _json():
        from console.render import render_plan

        click.echo(render_plan(the_plan), err=True)
    from console.approvals_cli import TwoPerson

    two = TwoPerson.check(session, the_plan, reason=reason, break_glass=break_glass)
    _paste_keys(session, the_plan, new_key_from)  # rotate: before any confirmation
    the_reason = _confirm(the_plan, yes, reason)
    result = _run_live(session, the_plan, the_reason, allow_irreversible, max_targets,
                       saved=bool(plan_file), authorise=two.authorise(the_reason))
    _finish(result, two.extra())


@cli.command()
@common
@click.argument("run_id", shell_complete=_complete_run_id)
def resume(run_id: str) -> None:
    """Finish RUN_ID after a crash without repeating completed side effects."""
    session = _session()
    _finish(session.sync(session.resume(run_id)))


@cli.command()
@common
@click.argument("run_id", shell_complete=_complete_run_id)
@click.option("--dry-run", is_flag=True, help="Show the restore plan only.")
@click.option("--yes", is_flag=True, help="Confirm (required off a terminal).")
@click.option("--reason", help="Why (recorded).")
@click.option("--incident", help="Incident id, recorded.")
@click.option("--out", type=click.Path(dir_okay=False), help="Save the restore plan here.")
@click.option("--reenable-leaked", is_flag=True,
              help="The run's cause was leak: re-enable the leaked credentials anyway "
                   "(needs --reason; recorded). Without it they stay disabled: rotate instead.")
@click.option("--reenable-old-key", is_flag=True,
              help="The run rotated keys: bring the old key back anyway (needs --reason).")
@break_glass_option
def restore(run_id: str, dry_run: bool, yes: bool, reason: str | None,
            incident: str | None, out: str | None, reenable_leaked: bool,
            reenable_old_key: bool, break_glass: bool = False) -> None:
    """Undo RUN_ID: plan the recorded inverses, confirm, apply, verify.

    After a run whose cause was leak, the credentials are not re-enabled (exit 3, rotate
    instead) unless --reenable-leaked is given with --reason; flags, egress and everything
    else restore as usual. The undo of a rotation likewise needs --reenable-old-key.
    """
    from console.engine.service import held_back

    if (reenable_leaked or reenable_old_key) and not (reason or "").strip():
        flag = "--reenable-leaked" if reenable_leaked else "--reenable-old-key"
        raise UsageError(f"{flag} needs a reason", hint=f"add --reason '...' to {flag}: it is "
                         "recorded in the audit trail")
    if break_glass and (dry_run or out or not (reason or "").strip()):
        raise UsageError("--break-glass is for a live restore, and needs --reason",
                         hint="add --reason '...' (recorded); drop --dry-run and --out")
    if (reenable_leaked or reenable_old_key) and out:
        raise UsageError("a restore that brings a leaked or retired key back cannot be saved "
                         "for later: consent is given when it runs",
                         hint="drop --out and run the restore now")
    session = _session(incident, mode="live")
    the_plan = session.restore_plan(run_id, reenable_leaked=reenable_leaked,
                                    reenable_old_key=reenable_old_key)
    session.record_plan(the_plan, "dry-run" if dry_run else "plan")
    held = held_back(the_plan.changes)
    if dry_run or out:
        _emit_plan(the_plan, out, dry_run=dry_run)
        return
    if not _json():
        from console.render import render_plan

        click.echo(render_plan(the_plan), err=True)
    if held and not any(c.actionable for c in the_plan.changes):
        _refuse_held(held)
    from console.approvals_cli import TwoPerson

    two = TwoPerson.check(session, the_plan, reason=reason, break_glass=break_glass,
                          consent_now="--reenable-leaked" if reenable_leaked else
                          "--reenable-old-key" if reenable_old_key else "")
    the_reason = _confirm(the_plan, yes, reason)
    result = _run_live(session, the_plan, the_reason, False, None, saved=True,
                       authorise=two.authorise(the_reason))
    if held and not result.failed and result.exit_code() != EXIT_VERIFY:
        from console.render import render_result, result_json

        _out(result_json(result) if _json() else render_result(result))
        _refuse_held(held)
    _finish(result, two.extra())


def _refuse_held(held: list[Any]) -> None:
    """Exit 3 naming the credential changes a restore held back (leak or rotation)."""
    from console.engine.service import LEAK_ADVICE, OLD_KEY_ADVICE, OLD_KEY_HELD

    rotation = all(OLD_KEY_HELD in c.note for c in held)
    click.echo(f"refused: {len(held)} credential change(s) were not restored: "
               + ", ".join(sorted({c.target for c in held}))
               + f"; {OLD_KEY_ADVICE if rotation else LEAK_ADVICE}", err=True)
    sys.exit(EXIT_REFUSED)


# -- credentials ---------------------------------------------------------------------------
@cli.group()
def credentials() -> None:
    """Find every copy of an integration's key."""


@credentials.command("scan")
@common
@click.argument("selectors", nargs=-1, required=True, shell_complete=_complete_selector)
def credentials_scan(selectors: tuple[str, ...]) -> None:
    """Fingerprint each key and search every store for copies the inventory does not list.

    Exits 1 (``EXIT_FAILED``) when some store or key could not be scanned: the copies found
    are still shown, and each problem is printed on stderr as ``warning: could not scan
    ...`` (with ``--json`` too, where ``problems`` lists them as well).
    """
    from console.engine.scan import scan_copies
    from console.inventory import select
    from console.render import table
    from console.scrub import scrub_text

    config = _config()
    integrations = select(config.integrations, list(selectors))
    report = asyncio.run(scan_copies(config, integrations))
    if _json():
        _out(json.dumps({"copies": [c.__dict__ for c in report.copies],
                         "problems": report.problems}, indent=2))
    else:
        _out(table(["integration", "copy", "fingerprint", "inventory"],
                   [[c.integration, c.target, c.fingerprint,
                     "listed" if c.listed else "UNLISTED"] for c in report.copies]))
        n = sum(1 for c in report.copies if not c.listed)
        _out(f"{n} unlisted cop{'y' if n == 1 else 'ies'}"
             + ("; include them with `killswitch plan ... --include-unlisted`" if n else "")
             + (" (incomplete: see the warnings)" if report.problems else ""))
    for p in report.problems:
        click.echo(scrub_text(f"warning: {p}"), err=True)
    if report.problems:
        sys.exit(EXIT_FAILED)


# -- audit / report ------------------------------------------------------------------------
@cli.group()
def audit() -> None:
    """Verify, show and export the audit trail."""


@audit.command("verify")
@common
@click.option("--witness", "witness_files", multiple=True, type=click.Path(dir_okay=False),
              help="Also check against this witness file (a copy kept elsewhere); "
                   "repeatable.")
def audit_verify(witness_files: tuple[str, ...]) -> None:
    """Check the trail (read-only, never repaired): its hash chain, tables and triggers,
    keying (settings.audit_keyed) and every witnessed checkpoint. Exit 0, or exit 4 naming
    the first bad and the last good sequence number."""
    from console.errors import EXIT_VERIFY
    from console.store import describe, has_trail
    from console.witness import WitnessFile, read_checkpoints, verify_configured, witness_path

    config = _config()
    db = describe(config)
    configured = read_checkpoints(witness_path(config))
    exported: list[WitnessFile] = []
    for name in witness_files:
        wf = read_checkpoints(Path(name))
        if not wf.exists:
            raise UsageError(f"no witness file {name}", hint="give the path of a witness "
                             "file (JSON Lines written by `killswitch audit checkpoint`)")
        exported.append(wf)
    report = verify_configured(config, exported)
    files = [str(w.path) for w in (configured, *exported) if w.exists]
    if _json():
        _out(json.dumps({**report.__dict__, "db": str(db), "witness_files": files},
                        indent=2, default=str))
    elif report.ok:
        if not report.count and not has_trail(config):
            _out(f"audit trail OK: no audit trail at {db} yet (0 events)")
        else:
            _out(f"audit chain OK: {report.count} events verified (through sequence "
                 f"{report.last_good_seq})")
        if report.checkpoints:
            _out(f"witness: {report.checkpoints} checkpoint(s) in {', '.join(files)} match")
        elif report.count:
            _out(f"note: no witnessed checkpoint of this trail ({witness_path(config)}): "
                 "its newest events could be deleted unnoticed; `killswitch audit "
                 "checkpoint` writes one")
    else:
        at = f" at sequence {report.first_bad_seq}" if report.first_bad_seq else ""
        _out(f"audit trail BROKEN{at}: {report.reason}")
        if report.last_good_seq is not None:
            _out(f"last good sequence: {report.last_good_seq}")
        _out("the database was left as found; keep it, and the witness file, as evidence")
    if not report.ok:
        sys.exit(EXIT_VERIFY)


@audit.command("checkpoint")
@common
@click.option("--witness", "witness_files", multiple=True, type=click.Path(dir_okay=False),
              help="Also append the checkpoint to this file (a copy kept elsewhere); "
                   "repeatable.")
def audit_checkpoint(witness_files: tuple[str, ...]) -> None:
    """Verify the trail, then witness its head (seq, hash, count, time, HMAC when keyed) in
    the witness file (settings.witness). Exit 4, writing nothing, if it does not verify."""
    from console.errors import EXIT_VERIFY
    from console.store import open_audit
    from console.witness import (
        append_checkpoint,
        checkpoint_or_raise,
        verify_configured,
        witness_path,
    )

    config = _config()
    path = witness_path(config)
    report = verify_configured(config)
    if not report.ok:
        at = f" at sequence {report.first_bad_seq}" if report.first_bad_seq else ""
        click.echo(f"audit trail BROKEN{at}: {report.reason}; no checkpoint written "
                   "(run `killswitch audit verify`)", err=True)
        sys.exit(EXIT_VERIFY)
    with open_audit(config, readonly=True) as log:
        cp = checkpoint_or_raise(log, path)
        for extra in witness_files:
            try:
                append_checkpoint(extra, cp)
            except OSError as exc:
                raise UsageError(f"cannot write the witness file: {exc.strerror or exc}",
                                 where=extra) from exc
    if _json():
        _out(cp.to_json())
    else:
        where = ", ".join([str(path), *witness_files])
        _out(f"checkpoint: {cp.short()} ({cp.count} events, "
             f"{'keyed' if cp.keyed else 'unkeyed'}) witnessed in {where}")


@audit.command("show")
@common
@click.option("--run", "run_id", help="Only this run.", shell_complete=_complete_run_id)
@click.option("--incident", help="Only this incident.")
@click.option("--integration", help="Only this integration.")
def audit_show(run_id: str | None, incident: str | None, integration: str | None) -> None:
    """Show events (or runs, without filters)."""
    from console.render import table

    session = _session()
    if not (run_id or incident or integration):
        runs = session.audit.runs()
        if _json():
            _out(json.dumps(runs, indent=2, default=str))
        else:
            _out(table(["run", "mode", "incident", "by", "first", "events"],
                       [[r.get("run_id"), r.get("mode"), r.get("incident") or "-",
                         _by(r), r.get("first_ts"), r.get("count")] for r in runs]))
        return
    events = session.audit.events(run_id=run_id, incident=incident, integration=integration)
    if _json():
        _out(json.dumps(events, indent=2, default=str))
        return
    _out(table(["seq", "time", "by", "phase", "integration", "action", "target", "outcome"],
               [[e["seq"], e["ts"], _by(e), e.get("phase") or "", e.get("integration") or "",
                 e.get("action") or "", e.get("target") or "", e.get("outcome") or ""]
                for e in events]))


def _by(row: dict[str, Any]) -> str:
    """``operator@host`` of an event or run summary (every commander shares one trail)."""
    who, host = row.get("operator") or "-", row.get("host") or ""
    return f"{who}@{host}" if host else str(who)


@audit.command("export")
@common
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl")
@click.option("--run", "run_id", help="Only this run.", shell_complete=_complete_run_id)
@click.option("--out", type=click.Path(dir_okay=False), help="File (default: stdout).")
def audit_export(fmt: Literal["jsonl", "csv"], run_id: str | None, out: str | None) -> None:
    """Export events as JSONL or CSV (a file is created 0600: it names operators, targets)."""
    from console.privfile import open_private_text

    session = _session()
    if out:
        with open_private_text(out, newline="") as fh:
            n = session.audit.export(fmt, fh, run_id=run_id)
        click.echo(f"{n} events written to {out}", err=True)
    else:
        session.audit.export(fmt, sys.stdout, run_id=run_id)


@cli.command()
@common
@click.argument("run_id", required=False, shell_complete=_complete_run_id)
@click.option("--incident", help="Report on every run of this incident.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write Markdown here.")
def report(run_id: str | None, incident: str | None, out: str | None) -> None:
    """Markdown timeline of RUN_ID (or --incident) for the postmortem."""
    from console.report import render_report

    if not run_id and not incident:
        raise UsageError("give RUN_ID or --incident ID")
    session = _session()
    text = render_report(session.audit, run_id=run_id, incident=incident,
                         config=session.config)
    if out:
        from console.privfile import write_private

        write_private(out, text)
        click.echo(f"report written to {out}", err=True)
    else:
        _out(text)


# -- sandbox / demo ------------------------------------------------------------------------
@cli.group()
def sandbox() -> None:
    """Start, inspect and stop the local sandbox backends named in the config."""


def _show_services(services: list[Any]) -> None:
    """Print sandbox services (or JSON); every text line fits 80 columns.

    One row per service: its name, whether it runs, its pid, then where it is reached (one
    URL per line: the stand-ins list several) and the detail below them. A cell too wide
    for its column wraps inside the column; nothing is cut off.
    """
    import textwrap

    if _json():
        _out(json.dumps([s.__dict__ for s in services], indent=2, default=str))
        return
    width, gap = 80, "  "
    name_w = min(max([len("service"), *(len(s.name) for s in services)]), 20)
    pid_w = max([len("pid"), *(len(str(s.pid)) for s in services if s.pid)])
    run_w = len("running")
    text_w = width - name_w - run_w - pid_w - 3 * len(gap)

    def wrap(text: str, w: int) -> list[str]:
        return textwrap.wrap(text, w, break_long_words=True, break_on_hyphens=False)

    lines = [gap.join(["SERVICE".ljust(name_w), "RUNNING", "PID".ljust(pid_w),
                       "WHERE / DETAIL"])]
    for s in services:
        where = [u.strip() for u in str(s.url or "").split(", ") if u.strip()]
        text = [piece for part in (*where, str(s.detail or "")) for piece in wrap(part, text_w)]
        names = wrap(s.name, name_w) or [""]
        for i in range(max(len(names), len(text), 1)):
            first = i == 0
            lines.append(gap.join([
                (names[i] if i < len(names) else "").ljust(name_w),
                ("yes" if s.running else "no").ljust(run_w) if first else " " * run_w,
                str(s.pid or "-").ljust(pid_w) if first else " " * pid_w,
                text[i] if i < len(text) else ""]).rstrip())
    _out("\n".join(lines))


@sandbox.command("start")
@common
def sandbox_start() -> None:
    """Start the sandbox in the background (seeded from the inventory)."""
    from console import sandbox as sb

    _show_services(sb.start(_config()))


@sandbox.command("status")
@common
def sandbox_status() -> None:
    """Show what runs where."""
    from console import sandbox as sb

    _show_services(sb.status(_config()))


@sandbox.command("stop")
@common
def sandbox_stop() -> None:
    """Stop only what `sandbox start` started."""
    from console import sandbox as sb

    _show_services(sb.stop(_config()))


@sandbox.command("reset")
@common
def sandbox_reset() -> None:
    """Stop, drop the inventory's flags, start again: every sandbox backend back to its
    seeded state (between exercise rounds). Refuses (exit 2) a config with any backend not
    marked `sandbox = true`."""
    from console import sandbox as sb

    _show_services(sb.reset(_config()))


@sandbox.command("fault")
@common
@click.argument("backend", required=False)
@click.option("--latency", type=click.FloatRange(min=0), help="Seconds added to every call.")
@click.option("--rate", type=click.FloatRange(0, 1),
              help="Share of calls (0-1) answered --status: 429 is throttling, 5xx errors.")
@click.option("--status", "status_code", type=int, default=503, show_default=True,
              help="Status of the --rate answers: 429 or a 5xx.")
@click.option("--retry-after", type=click.FloatRange(min=0),
              help="Retry-After seconds of the 429 answers (default 1).")
@click.option("--timeout-rate", type=click.FloatRange(0, 1),
              help="Share of calls (0-1) that hang --hang seconds (client timeouts).")
@click.option("--hang", type=click.FloatRange(min=0),
              help="Seconds a --timeout-rate call hangs (default 30).")
@click.option("--down", is_flag=True,
              help="Backend unreachable: connection refused (moto, OpenBao, Unleash behind "
              "the sandbox's fault proxy) or reset unanswered (stand-ins).")
@click.option("--clear", is_flag=True, help="Faults off (on every sandbox backend without "
              "BACKEND).")
def sandbox_fault(backend: str | None, latency: float | None, rate: float | None,
                  status_code: int, retry_after: float | None, timeout_rate: float | None,
                  hang: float | None, down: bool, clear: bool) -> None:
    """Inject faults into sandbox BACKEND (for exercises and facilitators).

    \b
    killswitch sandbox fault openai-sandbox --latency 2 --rate 0.3 --status 429
    killswitch sandbox fault aws-sandbox-sm --rate 0.5 --status 503
    killswitch sandbox fault vault-sandbox --down
    killswitch sandbox fault vault-sandbox --clear     # this backend's faults off
    killswitch sandbox fault --clear                   # every sandbox backend's faults off
    killswitch sandbox fault                           # show what is in effect

    New settings replace the backend's previous faults. Backends sharing a server (the
    aws-* backends of one moto) share its faults. Only backends marked `sandbox = true` on
    127.0.0.1 are touched: anything else is refused (exit 2). Prints the faults now in
    effect (--json: {backend: settings}).
    """
    from console.sandbox import faults

    config = _config()
    settings: dict[str, Any] = {}
    if latency is not None:
        settings["latency"] = latency
    if rate is not None:
        if status_code == 429:
            settings["throttle_rate"] = rate
        elif 500 <= status_code <= 599:
            settings.update(error_rate=rate, error_status=status_code)
        else:
            raise UsageError(f"--status {status_code} cannot be injected", where="--status",
                             hint="use 429 (throttling, with --retry-after) or a 5xx status")
    if retry_after is not None:
        settings["retry_after"] = retry_after
    if timeout_rate is not None:
        settings["timeout_rate"] = timeout_rate
    if hang is not None:
        settings["hang"] = hang
    if down:
        settings["down"] = True
    if clear and settings:
        raise UsageError("--clear cannot be combined with fault settings", where="--clear",
                         hint="clear first, then set the new faults (setting replaces anyway)")
    if clear:
        line = faults.clear_faults(config, backend)
    elif settings:
        if backend is None:
            raise UsageError("which backend? name the sandbox BACKEND to inject faults into",
                             where="BACKEND", hint="killswitch sandbox fault BACKEND --latency 2")
        line = faults.apply_fault(config, backend, settings)
    elif backend is not None:
        raise UsageError(f"no fault given for {backend}", where="BACKEND",
                         hint="add --latency, --rate, --timeout-rate, --down, or --clear")
    else:
        line = ""
    now = faults.current_faults(config)
    if _json():
        _out(json.dumps(now, indent=2, sort_keys=True))
        return
    from console.sandbox.faultproxy import describe

    lines = [line] if line else []
    lines.append("faults in effect:" if now else "faults in effect: none")
    lines += [f"  {name}: {describe(values)}" for name, values in sorted(now.items())]
    _out("\n".join(lines))


@cli.command()
@common
@click.option("--runbook", default="kill-switch", show_default=True,
              shell_complete=_complete_runbook)
def demo(runbook: str) -> None:
    """Dry-run RUNBOOK over the whole example inventory on the sandbox."""
    config = _config()
    session = _session()
    ids = [i.id for i in config.integrations]
    the_plan = session.sync(session.plan(runbook, ids, record_mode="dry-run"))
    _emit_plan(the_plan, None, dry_run=True)


# -- config --------------------------------------------------------------------------------
@cli.group("config")
def config_group() -> None:
    """Where the config and the state are, and every effective setting."""


def _setting_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value or '""'
    return json.dumps(value)


@config_group.command("show")
@common
def config_show() -> None:
    """Every effective setting with its value and where it came from: default, the config
    file (file:line) or an environment variable. Paths are shown resolved. Without a config
    file at the default location, shows the defaults (and says so on stderr)."""
    from console.locations import effective_settings
    from console.render import table

    settings, note = effective_settings(_opts().get("config"))
    if _json():
        _out(json.dumps({"settings": [s.to_dict() for s in settings], "note": note},
                        indent=2, default=str))
    else:
        _out(table(["setting", "value", "source"],
                   [[s.name, _setting_text(s.value), s.source_text()] for s in settings]))
    if note:
        click.echo(f"note: {note}", err=True)


# -- permissions ---------------------------------------------------------------------------
@cli.command("permissions")
@common
@click.argument("runbook", shell_complete=_complete_runbook)
@click.argument("selectors", nargs=-1, required=True, shell_complete=_complete_selector)
def permissions(runbook: str, selectors: tuple[str, ...]) -> None:
    """The least privilege the console's own identity needs to run RUNBOOK on SELECTORS.

    Per backend: an AWS IAM policy, GCP permissions with a custom role, a Vault policy, a
    LaunchDarkly custom role, or the API keys and scopes a provider needs. Computed from the
    adapters' declarations and the inventory; nothing is contacted.
    """
    from console.inventory import select
    from console.permissions import least_privilege, render_text
    from console.runbook import load_runbook

    config = _config()
    integrations = select(config.integrations, list(selectors))
    if not integrations:
        raise UsageError(f"no integration matches {' '.join(selectors)!r}",
                         hint="see the ids with `killswitch inventory list`")
    needs = least_privilege(config, load_runbook(runbook, config), integrations)
    _out(json.dumps(needs.to_dict(), indent=2) if _json() else render_text(needs))


# -- exercise, evidence --------------------------------------------------------------------
# `killswitch exercise ...` lives in console/exercise/cli.py and `killswitch evidence ...` in
# console/evidence_cli.py; each adds its group to `cli` when imported (click and this module
# only: --help stays free of SDKs and Textual).
import console.approvals_cli  # noqa: E402,F401
import console.evidence_cli  # noqa: E402,F401
import console.exercise.cli  # noqa: E402,F401


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning Killswitch errors into message + exit code."""
    from console.scrub import scrub_text

    try:
        cli.main(args=argv, prog_name="killswitch", standalone_mode=False)
    except ConsoleError as exc:
        click.echo(scrub_text(f"error: {exc}"), err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted; nothing was changed", err=True)
        sys.exit(EXIT_REFUSED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE if exc.exit_code == 2 else exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
