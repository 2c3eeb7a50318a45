"""Migrating a second database (backup verification's scratch one) never writes into the default one."""

from __future__ import annotations

import ast

from tests.conftest import REPO_ROOT


def test_every_data_migration_writes_only_to_the_database_being_migrated() -> None:
    offenders = []
    for path in sorted(REPO_ROOT.glob("*/migrations/0*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "objects":
                parent_call = next(
                    (
                        n
                        for n in ast.walk(tree)
                        if isinstance(n, ast.Attribute) and n.value is node and n.attr in {"using", "db_manager"}
                    ),
                    None,
                )
                if parent_call is None and "Manager()" not in ast.unparse(node):
                    offenders.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    assert not offenders, f"use .objects.using(schema_editor.connection.alias): {offenders}"
