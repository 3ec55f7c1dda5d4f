"""Reference solutions of the notebooks\x27 exercises, for the tests (kept out of the installed package)."""
