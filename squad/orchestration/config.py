"""RunConfig: everything one run is configured with, decided once, never by mutating shared settings.

`squad run` flags and the Action's inputs (`--model`, `--max-cost`, the workflow's `model` and
`max-cost`) become a RunConfig instead of writes into a `Settings` object that other code also holds.
Limits come from `Limits.from_settings` (the one place where 0 means unlimited) and are then replaced
(`--max-cost` from the person running squad) or only ever tightened (inputs a pull request can edit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from squad.config import Charter, Settings, Team
from squad.domain.usage import Limits
from squad.errors import UsageError


@dataclass(frozen=True)
class RunConfig:
    """One run's configuration.

    Args:
        root: the repository's main work tree.
        settings: the repository's settings, as loaded (never mutated).
        team: the roster.
        limits: the run's budgets (derived from `settings.budgets`, then overridden).
        model: use this model for every agent (`claude-...`, `scripted:<path>`, `replay:<run>`), or None.
        apply: after a successful run, merge `squad/<run>` into the user's current branch (clean tree only).
        allow_failing_baseline: start even when the tests fail on the base commit; then only NEW failures veto.
    """

    root: Path
    settings: Settings
    team: Team
    limits: Limits
    model: str | None = None
    apply: bool = False
    allow_failing_baseline: bool = False

    @staticmethod
    def build(
        root: Path,
        settings: Settings,
        team: Team,
        *,
        model: str | None = None,
        max_cost: float | None = None,
        apply: bool = False,
        allow_failing_baseline: bool = False,
    ) -> RunConfig:
        """The config of a run started by a person: `max_cost` replaces `budgets.run_usd` (it must be > 0)."""
        limits = Limits.from_settings(settings.budgets)
        if max_cost is not None:
            if not 0 < max_cost < math.inf:  # nan and inf are no budget
                raise UsageError(f"--max-cost must be a number of US dollars more than 0, got {max_cost:g}")
            limits = replace(limits, run_usd=max_cost)
        return RunConfig(
            Path(root),
            settings,
            team,
            limits,
            model=model or None,
            apply=apply,
            allow_failing_baseline=allow_failing_baseline,
        )

    def tightened(self, *, model: str | None = None, max_cost: float | None = None) -> RunConfig:
        """This config with inputs that may only TIGHTEN it (the Action's, which a PR can edit): a lower run
        cap, and a model the settings already use for some agent.

        Raises:
            UsageError: `max_cost` is not a positive number, or `model` is not one the settings allow.
        """
        limits = self.limits
        if max_cost is not None:
            if not 0 < max_cost < math.inf:
                raise UsageError(f"max-cost must be a number of US dollars more than 0, got {max_cost:g}")
            limits = limits.tightened(run_usd=max_cost)
        if model:
            allowed = self.allowed_models()
            if model not in allowed:
                raise UsageError(
                    f"model {model!r} is not one the base branch's settings use ({', '.join(sorted(allowed))})",
                    hint="the `model` input can only pick a model already named in .squad/squad.toml [models] "
                    "or a charter on the base branch",
                )
        return replace(self, limits=limits, model=model or self.model)

    def allowed_models(self) -> set[str]:
        """Every model the settings and charters name: what a tighten-only `model` input may choose."""
        m = self.settings.models
        names = {m.default, m.coordinator, m.reviewer, *m.fallback}
        names.update(c.model for c in self.team.agents.values())
        return {n for n in names if n}

    def model_for(self, charter: Charter) -> str:
        """The model an agent uses: the run's override, else its charter's, else the defaults."""
        return self.model or charter.model_for(self.settings)

    def requested_model(self, agent: str, task: str) -> str:
        """The model `agent` asks for on `task` (`plan`: the planner's), "" for an agent not in the team."""
        lead, lead_model = self.lead()
        if task == "plan" and agent == lead:
            return lead_model
        charter = self.team.agents.get(agent)
        return self.model_for(charter) if charter is not None else ""

    def model_names(self, *, planning: bool = True) -> set[str]:
        """Every model the run may call: each agent's (any worker may revise, every reviewer reviews) and,
        when it plans, the planner's."""
        names = {self.model_for(c) for c in self.team.agents.values()}
        if planning:
            names.add(self.lead()[1])
        return names

    def check_team(self, agent: str | None) -> None:
        """Refuse a team that cannot run the review gate, and an `agent` (the whole request as one task) that is
        a reviewer.

        Raises:
            UsageError: no reviewer in the team, `agent` unknown or a reviewer (exit 2).
        """
        if not self.team.reviewers:
            raise UsageError(
                "the team has no reviewer, so the review gate cannot run",
                hint="add a charter with `reviewer: true` to .squad/agents/",
            )
        if agent is not None and self.team.get(agent).reviewer:
            raise UsageError(f"{agent!r} is a reviewer; --agent needs a specialist who does work")

    def preflight(self, *, planning: bool = True, models: bool = True) -> None:
        """Refuse a run that cannot start, before it writes anything (no run folder, nothing in `squad runs`):
        a repository without a commit to work from, or (with `models`; not when a caller injects its own model
        factory) a model it could not call (`check_models`).

        Raises:
            UsageError: HEAD is not a commit (exit 2).
            ConfigError: a model name, its API key or its price under a dollar budget (exit 2).
        """
        from squad.agents.context import resolve_commit
        from squad.errors import WorkspaceError
        from squad.models.registry import check_models

        try:
            resolve_commit(self.root, "HEAD")
        except WorkspaceError as exc:
            raise UsageError(f"{self.root} has no commit for the team to work from", hint=exc.hint) from None
        if models:
            check_models(self.model_names(planning=planning), settings=self.settings, limits=self.limits)

    def lead(self) -> tuple[str, str]:
        """(agent name, model) of the planner: the `lead` charter when there is one."""
        lead = self.team.agents.get("lead")
        model = self.model or self.settings.models.coordinator or (lead.model_for(self.settings) if lead else "")
        return (lead.name if lead else "coordinator"), model or self.settings.models.default
