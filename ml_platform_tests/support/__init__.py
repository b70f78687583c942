"""Helpers and fixtures of the test suite: one home for each, so that test modules never import
each other."""
