"""Bash: functions are the only units; everything else is script body."""

from __future__ import annotations

from indexer_core.chunking.spec import LanguageSpec

SPECS = {"bash": LanguageSpec(containers={}, leaves={"function_definition": "function"})}
