"""API views, one module a family: ``me``, ``people`` (users, teams, members), ``rights`` (repositories,
grants, robots, personal access tokens), ``operations`` (registries, signing keys, jobs, policy),
``audit`` (records and exports), ``access`` (why and who)."""
