"""SpendBook: what a run has spent and what its calls in flight hold, checked against its Limits.

One book per run, shared by every agent's models (through ModelRuntime). It starts from spend passed in
(`SpendTotals`: a resumed run folds it out of its journal, a CI job is handed its run's), never from a
hidden zero. Every call takes a reservation of its estimate before it is sent (`reserve`, which checks
the limits against spent + held and fails closed), and gives it back after: `settle` with the real usage
and cost, or `release` when the call failed. So eight agents checking at once cannot all slip under
the same limit: each sees the others' reservations.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from squad.domain.usage import Estimate, Limits, Spend, SpendTotals, Usage


@dataclass(frozen=True, eq=False, slots=True)
class Reservation:
    """A call in flight: whose, on which model, and what it holds (its estimate and one turn)."""

    agent: str
    task: str
    model: str
    held: Spend


class SpendBook:
    """Spend per run, per agent and per model, plus reservations of calls in flight, against `limits`.

    Args:
        limits: what the run may spend (None = unlimited everywhere).
        spent: what it had spent before this process (None = nothing).
    """

    def __init__(self, limits: Limits | None = None, spent: SpendTotals | None = None) -> None:
        self.limits = limits or Limits()
        self._totals = spent or SpendTotals()
        self._in_flight: set[Reservation] = set()
        self._held = Spend()  # the sum of the reservations, in all and per agent
        self._held_by_agent: dict[str, Spend] = {}
        self._lock = threading.Lock()  # calls run on one loop today; a lock keeps the book right if not

    @property
    def totals(self) -> SpendTotals:
        """What was spent so far (settled calls only; seed included)."""
        return self._totals

    @property
    def held(self) -> Spend:
        """What calls in flight hold."""
        return self._held

    def held_by(self, agent: str) -> Spend:
        """What `agent`'s calls in flight hold."""
        return self._held_by_agent.get(agent, Spend())

    def reserve(self, *, agent: str, task: str, model: str, estimate: Estimate) -> Reservation:
        """Check the limits for a call with `estimate`, and hold it until `settle` or `release`.

        Raises:
            BudgetExceededError: the call could take a budget past its limit, or a dollar limit is set and
                the model has no known price. Nothing is held then.
        """
        with self._lock:
            run = self._totals.run + self._held
            mine = self._totals.agent(agent) + self.held_by(agent)
            self.limits.check(run=run, agent=mine, estimate=estimate, agent_name=agent, task=task, model=model)
            held = Spend(input_tokens=estimate.input_tokens, usd=estimate.usd or 0.0, turns=1)
            reservation = Reservation(agent, task, model, held)
            self._in_flight.add(reservation)
            self._held += held
            self._held_by_agent[agent] = self.held_by(agent) + held
            return reservation

    def settle(self, reservation: Reservation, usage: Usage, usd: float, *, model: str | None = None) -> None:
        """Replace the reservation with what the call really spent (one turn); `model`: who answered."""
        with self._lock:
            self._drop(reservation)
            self._totals = self._totals.plus(
                agent=reservation.agent, model=model or reservation.model, usage=usage, usd=usd
            )

    def release(self, reservation: Reservation) -> None:
        """Drop the reservation of a call that failed (nothing was spent)."""
        with self._lock:
            self._drop(reservation)

    def _drop(self, reservation: Reservation) -> None:
        if reservation not in self._in_flight:  # settled or released already
            return
        self._in_flight.remove(reservation)
        self._held -= reservation.held
        mine = self.held_by(reservation.agent) - reservation.held
        if mine.turns:
            self._held_by_agent[reservation.agent] = mine
        else:  # no call of this agent in flight: forget it (and any float dust in its dollars)
            del self._held_by_agent[reservation.agent]
        if not self._in_flight:
            self._held = Spend()
