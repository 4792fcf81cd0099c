"""``python -m console``: the same as the ``killswitch`` command."""

from console.cli import main

main()
