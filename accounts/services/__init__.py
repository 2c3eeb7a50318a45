"""Every state change to accounts, teams, repositories and grants.

Each function runs in one transaction and writes its audit record inside it:
a record exists exactly when the change committed. Views, management
commands, the admin site and Celery tasks all call these; none saves models
directly.

One module per concern (``users``, ``teams``, ``registries``, ``grants``,
``credentials``, ``leads``, ``keys``, ``refresh``, ``endpoints``, ``limits``, ``directory``,
``unused``, ``reviews``, ``reminders``, ``rewrap``, and the ``backups`` package; shared helpers in
``_common``). They import from ``_common`` and from each other, never from this package; callers
import from here (``from accounts import services``).
"""

from accounts.services import backups, directory, directory_sync, doctor, limits, reminders, reviews, rewrap, unused
from accounts.services._common import USER_FIELDS, grant_state, user_state
from accounts.services.credentials import (
    ROBOT_GRACE,
    create_access_token,
    create_robot,
    record_credential_expiries,
    revoke_access_token,
    revoke_robot,
    rotate_robot,
)
from accounts.services.endpoints import notification_secret, rotate_notification_secret
from accounts.services.grants import (
    attach_parents,
    bound_managed_grants,
    check_robot_grant,
    check_within_team,
    covered_role,
    covering_grants,
    create_grant,
    current_team_grants,
    lies_in,
    purge_expired_grants,
    revoke_grant,
    update_grant,
)
from accounts.services.keys import ensure_keys, has_keys, key_age, retire_previous_key, rotate_signing_key
from accounts.services.leads import (
    lead_create_robot,
    lead_grant,
    lead_remove_membership,
    lead_revoke,
    lead_revoke_robot,
    lead_rotate_robot,
    lead_set_expiry,
    lead_set_membership,
)
from accounts.services.refresh import new_refresh_token, revoke_refresh_tokens
from accounts.services.registries import (
    create_registry,
    create_repository,
    delete_registry,
    delete_repository,
    ensure_repository,
    set_repository_public,
    update_registry,
)
from accounts.services.teams import create_team, delete_team, remove_membership, set_membership, update_team
from accounts.services.users import (
    DIRECTORY_FIELDS,
    create_user,
    delete_user,
    disable_password,
    revoke_user_refresh_tokens,
    set_password,
    update_user,
)

__all__ = [
    "DIRECTORY_FIELDS",
    "ROBOT_GRACE",
    "USER_FIELDS",
    "attach_parents",
    "backups",
    "bound_managed_grants",
    "check_robot_grant",
    "check_within_team",
    "covered_role",
    "covering_grants",
    "create_access_token",
    "create_grant",
    "create_registry",
    "create_repository",
    "create_robot",
    "create_team",
    "create_user",
    "current_team_grants",
    "delete_registry",
    "delete_repository",
    "delete_team",
    "delete_user",
    "directory",
    "directory_sync",
    "disable_password",
    "doctor",
    "ensure_keys",
    "ensure_repository",
    "grant_state",
    "has_keys",
    "key_age",
    "lead_create_robot",
    "lead_grant",
    "lead_remove_membership",
    "lead_revoke",
    "lead_revoke_robot",
    "lead_rotate_robot",
    "lead_set_expiry",
    "lead_set_membership",
    "lies_in",
    "limits",
    "new_refresh_token",
    "notification_secret",
    "purge_expired_grants",
    "record_credential_expiries",
    "reminders",
    "remove_membership",
    "retire_previous_key",
    "reviews",
    "revoke_access_token",
    "revoke_grant",
    "revoke_refresh_tokens",
    "revoke_robot",
    "revoke_user_refresh_tokens",
    "rewrap",
    "rotate_notification_secret",
    "rotate_robot",
    "rotate_signing_key",
    "set_membership",
    "set_password",
    "set_repository_public",
    "unused",
    "update_grant",
    "update_registry",
    "update_team",
    "update_user",
    "user_state",
]
