"""Every adapter that acts on keys or batch jobs can preserve evidence about them."""

from __future__ import annotations

import pytest

from adapters.base import Adapter, adapter_names, load_adapter_class
from adapters.evidence import EVIDENCE_KILL_POINTS


@pytest.mark.parametrize("name", adapter_names())
def test_key_and_batch_adapters_preserve(name: str) -> None:
    cls = load_adapter_class(name)
    points = {spec.kill_point for spec in cls.ACTIONS.values()}
    if points & set(EVIDENCE_KILL_POINTS):
        assert cls.CAN_PRESERVE, f"{name} acts on {sorted(points)} but cannot preserve"
        assert cls.preserve is not Adapter.preserve, f"{name} declares CAN_PRESERVE only"
    else:
        assert not cls.CAN_PRESERVE, f"{name} preserves evidence of no kill point it knows"
