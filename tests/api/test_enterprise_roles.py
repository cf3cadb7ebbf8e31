"""``plant_operator``: an API role for utilities issuing work tickets, mapped onto an existing on-chain flag."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.models import ROLE_BITS, enterprise_role_bits
from api.routes.enterprises import EnterpriseCreate


def test_plant_operator_holds_the_core_enterprise_flag_and_never_adds_up_to_another_role() -> None:
    assert enterprise_role_bits(["plant_operator"]) == ROLE_BITS["core_enterprise"]
    # summing flags would turn core_enterprise + plant_operator (4 + 4) into bank (8): OR, not +
    assert enterprise_role_bits(["core_enterprise", "plant_operator"]) == ROLE_BITS["core_enterprise"]
    assert enterprise_role_bits(["plant_operator", "supplier"]) == ROLE_BITS["core_enterprise"] | ROLE_BITS["supplier"]
    assert enterprise_role_bits(["plant_operator"]) & ROLE_BITS["bank"] == 0


def test_the_registration_body_accepts_plant_operator_and_orders_roles() -> None:
    body = EnterpriseCreate(name="State Grid Xinzhuang Substation", roles=["plant_operator", "supplier", "supplier"])
    assert body.roles == ["supplier", "plant_operator"]
    with pytest.raises(ValidationError):
        EnterpriseCreate(name="x", roles=["utility"])
