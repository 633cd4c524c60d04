"""Tests written for mutants that survived the fast tier (docs/mutation.md)."""
