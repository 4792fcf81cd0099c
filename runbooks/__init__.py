"""The runbooks shipped with Killswitch.

This folder stays at the top of the repository (where users look for it) and is also a
package, so that the runbook files travel inside the wheel as package data and are found
wherever Killswitch is installed: ``importlib.resources.files("runbooks")`` (see
``console.runbook.SHIPPED_DIR``). Only the ``*.toml`` files (and ``exercises/*.toml``) are
runbooks; this module holds no code.
"""
