"""Edits and checks, one module per group of bugs; importing a module registers them."""
