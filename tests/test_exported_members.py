"""The flat public API: ``tripwire.__all__`` lists exactly the public names."""

from __future__ import annotations

import tripwire


def test_all_matches_public_names() -> None:
    """Every public name in the package namespace is in __all__, and __all__ is sorted and exists."""
    exported = set(tripwire.__all__)
    public = {
        name
        for name, value in vars(tripwire).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("tripwire")
    }
    public.add("__version__")
    assert exported == public
    assert list(tripwire.__all__) == sorted(tripwire.__all__)
    for name in tripwire.__all__:
        assert hasattr(tripwire, name), name
