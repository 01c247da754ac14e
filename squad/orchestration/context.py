"""RunContext: what the parts of one run in progress share (journal, state, workspace, models, threads).

The state is the fold of the journal and nothing else: the journal hands every event it writes to
`state.apply`, so what the orchestration reads is by construction what `squad log` and a resume read.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from squad.domain.events import AgentEvent, Event, ModelCalled
from squad.domain.state import RunState

if TYPE_CHECKING:
    from squad.agents.context import ContextPack
    from squad.agents.tools import Toolbox
    from squad.domain.usage import Limits, SpendTotals
    from squad.infra.journal import Journal
    from squad.infra.workspace import Lease, Workspace
    from squad.models import ModelRuntime
    from squad.models.base import Model, ModelRequest, ModelResponse
    from squad.orchestration.config import RunConfig

T = TypeVar("T")
#: `(model name, runtime) -> Model`: how tests put an observing model around the real one.
ModelFactory = Callable[[str, "ModelRuntime"], "Model"]


@dataclass
class RunContext:
    """One run in progress. Create with `open`."""

    config: RunConfig
    journal: Journal
    state: RunState
    workspace: Workspace
    toolbox: Toolbox
    runtime: ModelRuntime
    pool: ThreadPoolExecutor
    model_factory: ModelFactory | None = None
    pack: ContextPack | None = None
    leases: dict[str, Lease] = field(default_factory=dict)
    #: lease id -> plan task: model requests carry the lease id (scripted replies bind to it).
    lease_tasks: dict[str, str] = field(default_factory=dict)
    _models: dict[str, Model] = field(default_factory=dict)

    @classmethod
    def open(
        cls,
        config: RunConfig,
        journal: Journal,
        state: RunState,
        workspace: Workspace,
        *,
        limits: Limits,
        spent: SpendTotals | None,
        model_factory: ModelFactory | None = None,
    ) -> RunContext:
        """The context of a run (or of one CI job of it): one thread per agent that may run at once, and models
        that spend within `limits`, counting from `spent` (a resumed run's spend, or a job's own), recording
        every call in the journal.
        The caller shuts the pool down and closes the runtime."""
        from squad.agents.tools import default_toolbox
        from squad.models import ModelRuntime

        pool = ThreadPoolExecutor(
            max_workers=config.settings.concurrency.max_agents, thread_name_prefix=f"squad-{journal.run}"
        )
        rc = cls(
            config=config,
            journal=journal,
            state=state,
            workspace=workspace,
            toolbox=default_toolbox(),
            runtime=None,  # type: ignore[arg-type]  # set just below: its recorder is the context's
            pool=pool,
            model_factory=model_factory,
        )
        rc.runtime = ModelRuntime.from_settings(config.settings, rc.record, limits=limits, spent=spent)
        return rc

    @property
    def run_id(self) -> str:
        return self.journal.run

    def emit(self, event: Event) -> Event:
        """Journal one event (the state folds it in through the journal's listener)."""
        return self.journal.emit(event)

    async def in_thread(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Blocking work (git, mostly) on the run's own threads, one per task that may run at once.

        asyncio's default pool has min(32, cpus + 4) threads (6 on 2 cores), so 8 tasks' leases and commits
        queued for a thread, and agents' tool calls share that pool too. Context variables are carried over.
        """
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self.pool, call)

    def model(self, name: str) -> Model:
        """One model object per name and run: a scripted model keeps its per-(agent, task) bindings."""
        if name not in self._models:
            if self.model_factory is not None:
                self._models[name] = self.model_factory(name, self.runtime)
            else:
                from squad.models import create_model

                self._models[name] = create_model(name, settings=self.config.settings, runtime=self.runtime)
        return self._models[name]

    def agent_emit(self, task: str, lease: str | None) -> Callable[[AgentEvent], None]:
        """The `emit` of an agent session on plan task `task` in worktree `lease`."""

        def emit(event: AgentEvent) -> None:
            self.emit(event.model_copy(update={"task": task, "lease": lease}))

        return emit

    def record(self, request: ModelRequest, response: ModelResponse) -> None:
        """The model runtime's recorder: model requests carry the lease id, the journal names its plan task."""
        lease = request.task if request.task in self.lease_tasks else None
        record_call(self.journal, request, response, task=self.lease_tasks.get(request.task, request.task), lease=lease)


def record_call(
    journal: Journal, request: ModelRequest, response: ModelResponse, *, task: str, lease: str | None = None
) -> None:
    """Keep a model response for replay and journal the priced call (`squad run`, the CI jobs, the Action's review)."""
    journal.record_response(request.agent, request.task, response.to_dict())
    journal.emit(
        ModelCalled(
            agent=request.agent,
            task=task,
            lease=lease,
            model=response.model,
            usage=response.usage,
            cost_usd=response.cost_usd,
            latency_s=response.latency_s,
            ttft_s=response.ttft_s,
            stop_reason=response.stop_reason,
            request_id=response.request_id,
        )
    )
