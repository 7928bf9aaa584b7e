"""Harness: the explorer's partial-order reduction, sleep sets (Godefroid,
"Partial-Order Methods for the Verification of Concurrent Systems", 1996),
with or without state caching.

At a decision point every enabled actor is explored except those asleep.
Once an actor's transition t has been explored from a state, every later
sibling explored from that state puts t to sleep, and t stays asleep along
transitions independent of it (`Transition.dependent`: no word written by
one and touched by the other, a wait's try against any write reaching
memory, a store buffer's flush against its CPU's drain): executing it there
would only reach an interleaving equivalent to one already explored. So
the search runs one complete schedule per class of equivalent
interleavings (Mazurkiewicz traces), plus schedules cut short when every
enabled actor is asleep. Sleep sets alone visit every reachable state, so
the reachable final states are those of the unreduced search (a test
checks it).

With state caching (`visited`: fingerprint -> the actors asleep when it was
explored), a state reached again is explored only along the actors asleep
then but awake now, and its record shrinks to the intersection
(Godefroid's algorithm for sleep sets with state caching).
"""
from __future__ import annotations

from percpu.explore.machine import ReplayDiverged


class Node:
    """A decision point of the reduced search: what is still to explore from
    it, what was asleep on arrival, and what was explored (with what it
    touched)."""

    __slots__ = ("chosen", "todo", "sleep", "done")

    def __init__(self, chosen, todo, sleep):
        self.chosen, self.todo, self.sleep = chosen, todo, sleep
        self.done: dict = {}

    def candidates(self) -> dict:
        """Asleep for the next sibling: what was asleep here and what was explored."""
        return {**self.sleep, **self.done}


class SleepSets:
    """One schedule's side of the reduction. Decisions before `start` replay
    the prefix; at `start` the prefix's last choice is the sibling being
    explored, with `sleep` (actor -> Transition) asleep; after it every new
    decision point becomes a Node (`nodes`) whose first choice this
    schedule takes."""

    def __init__(self, start: int, sleep: dict, visited: dict | None, fingerprints: set | None):
        self.start, self.sleep, self.visited, self.fingerprints = start, dict(sleep), visited, fingerprints
        self.tracking = start < 0
        self.nodes: list[Node] = []
        self.first = None  # the transition taken at `start`
        self.awaiting = None  # the Node (or True for `start`) whose chosen transition runs now
        self.outcome = "sleep-blocked"

    def awake(self, actor) -> bool:
        return not self.tracking or actor not in self.sleep

    def executed(self, t) -> None:
        if not self.tracking:
            return
        if self.awaiting is True:
            self.first = t
        elif self.awaiting is not None:
            self.awaiting.done[t.actor] = t
        self.awaiting = None
        self.sleep = {a: u for a, u in self.sleep.items() if not u.dependent(t)}

    def choose(self, sched, index, options, default):
        if index == self.start:
            chosen = sched.prefix[index]
            if chosen not in options:
                raise ReplayDiverged(f"decision {index}: {chosen} is not one of {options}")
            self.tracking, self.awaiting = True, True
            self.sleep.pop(chosen, None)
            return chosen
        asleep = self.sleep
        if self.visited is not None:
            fp = sched.fingerprint()
            if self.fingerprints is not None:
                self.fingerprints.add(fp)
            stored = self.visited.get(fp)
            if stored is None:
                todo = [a for a in options if a not in asleep]
            else:
                todo = [a for a in options if a in stored and a not in asleep]
                self.sleep = asleep = {a: u for a, u in asleep.items() if a in stored}
            self.visited[fp] = frozenset(asleep)
            if stored is not None and not todo:
                self.outcome = "pruned"
                return None
        else:
            todo = [a for a in options if a not in asleep]
            if self.fingerprints is not None:
                self.fingerprints.add(sched.fingerprint())
        if not todo:
            self.outcome = "sleep-blocked"
            return None
        if default in todo:
            todo.remove(default)
            todo.insert(0, default)
        node = Node(todo[0], todo[1:], dict(asleep))
        self.nodes.append(node)
        self.awaiting = node
        return todo[0]
