"""The SDK's decorators as the module uses them, typed for mypy.

mypy does not follow ``dataclass_transform`` through the SDK's module-level
alias (``dagger.object_type`` is a bound method of the default module), so it
would see objects without constructor fields. At run time this *is*
``dagger.object_type``; for the type checker it is the same transform.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar, dataclass_transform

T = TypeVar("T")

if TYPE_CHECKING:

    @dataclass_transform(kw_only_default=True)
    def object_type(cls: T) -> T: ...

else:
    from dagger import object_type

__all__ = ["object_type"]
