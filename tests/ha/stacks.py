"""The coupon service's HA stack for this suite's router tests, stopped on exit even
when its start failed half-way."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from chaos.infra.ha_stack import HaStack
from chaos.targets.coupons import COUPONS


@contextmanager
def coupon_ha_stack(router: str = "libpq") -> Iterator[HaStack]:
    """A started HA stack running the coupon service, routed by `router`."""
    stack = HaStack(
        router=router,
        service_command=COUPONS.service_command,
        service_settings_names=COUPONS.settings_names,
    )
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
