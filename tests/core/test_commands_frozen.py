"""Commands are values: once made, nothing changes them (a triad member stamps its epoch on a copy)."""

from __future__ import annotations

import msgspec
import pytest

from licentia.core import commands as c
from licentia.core.model import ClientInfo


def test_every_command_is_frozen():
    kinds = [kind for kind in vars(c).values()
             if isinstance(kind, type) and issubclass(kind, c.Command) and kind is not c.Command]
    assert len(kinds) > 20
    assert [kind.__name__ for kind in kinds if not kind.__struct_config__.frozen] == []


def test_a_command_cannot_be_changed_and_a_stamped_copy_leaves_the_original_alone():
    checkout = c.Checkout(request_id="r-1", lease_id="L-1", product="CAD", client=ClientInfo())
    with pytest.raises(AttributeError):
        checkout.epoch = 3  # type: ignore[misc]
    stamped = msgspec.structs.replace(checkout, epoch=3, honour_from=10.0)
    assert (stamped.epoch, stamped.honour_from) == (3, 10.0)
    assert (checkout.epoch, checkout.honour_from) == (0, 0.0)
    assert c.decode_command(c.encode_command(stamped)) == stamped
