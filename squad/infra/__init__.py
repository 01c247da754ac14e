"""Infrastructure below the orchestration: the git runner, scrubbed environments, the command runner,
locks, workspaces (the only writer of branches), the run journal, the decisions ledger, scaffolding."""
