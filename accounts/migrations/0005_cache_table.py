"""The database cache's table (CACHE_URL=db://, the embedded default).

Made here because the documented start runs only ``migrate`` and ``collectstatic``, never
``createcachetable``. Made whatever CACHE_URL says, so that switching to db:// later just works.
"""

from django.core.management.commands.createcachetable import Command as CreateCacheTable
from django.db import migrations

from registryadmin.env import CACHE_TABLE


def create(apps, schema_editor):
    command = CreateCacheTable()
    command.verbosity = 0
    command.create_table(schema_editor.connection.alias, CACHE_TABLE, dry_run=False)


def drop(apps, schema_editor):
    schema_editor.execute(f"DROP TABLE IF EXISTS {schema_editor.quote_name(CACHE_TABLE)}")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0004_grant_pattern_ops")]

    operations = [migrations.RunPython(create, drop)]
