"""Media made by code: the embedded sample shot of ``likeness demo`` and moving portraits for
tests."""
