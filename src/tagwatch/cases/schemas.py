"""Request and response shapes of the case record's JSON API.

People and orders travel in the document form of docs/order-format.md (checked by
`tagwatch.cases.validation`, which names every bad field); these models wrap the calls
that change them.
"""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, Field


class VaryIn(BaseModel):
    changes: dict[str, Any] = Field(description="Order fields to change, in document form")
    reason: str = Field(min_length=1)


class TransitionIn(BaseModel):
    status: str
    end_reason: str | None = None
    reason: str = Field(min_length=1)


class ConditionIn(BaseModel):
    condition: dict[str, Any] = Field(description="A condition in document form")
    reason: str = Field(min_length=1)


class FitIn(BaseModel):
    device: str = Field(description="The device's serial")
    fitted_at: AwareDatetime


class RemovalIn(BaseModel):
    removed_at: AwareDatetime


class AllocationOut(BaseModel):
    id: int
    order_ref: str
    person_ref: str
    device: str
    fitted_at: AwareDatetime
    removed_at: AwareDatetime | None


class ReferenceValueIn(BaseModel):
    kind: str = Field(min_length=1, max_length=40)
    code: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")
    label: str = Field(min_length=1, max_length=200)
    parent_code: str | None = None
    active: bool = True
    sort_order: int = 0


class ReferenceValueChange(BaseModel):
    label: str | None = Field(default=None, min_length=1, max_length=200)
    parent_code: str | None = None
    active: bool | None = None
    sort_order: int | None = None


class ReferenceValueOut(BaseModel):
    model_config = {"from_attributes": True}

    kind: str
    code: str
    label: str
    parent_code: str | None
    active: bool
    sort_order: int


class PersonPage(BaseModel):
    total: int
    page: int
    page_size: int
    items: list[dict[str, Any]]
