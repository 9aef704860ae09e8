"""Codebases to practise on, blind workspaces, and the runs made in them."""
