"""Fair sharing of the actors between users: which lane the next actor batch comes from.

Users take turns, one batch each (round-robin over the users that have ready work, in the order they were
first seen), so a user with 20,000 queued archs and a user with 5 alternate batch for batch. Within a
user's turn, their lanes (one per priority) are chosen by smooth weighted round-robin with the weights of
:data:`~zcscore.workers.streams.PRIORITY_WEIGHTS` (high 16 : normal 4 : low 1): priority orders a user's own
work, never another user's, and low priority work still advances. Pure logic: no Redis, torch or Ray.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from zcscore.workers.streams import PRIORITY_WEIGHTS


class FairScheduler:
    """Picks the lane that gets the next batch; ``lane_of`` maps a lane name to ``(user, priority)``."""

    def __init__(self, lane_of: Callable[[str], tuple[str, str]], weights: dict[str, int] | None = None) -> None:
        self.lane_of = lane_of
        self.weights = weights or PRIORITY_WEIGHTS
        self.users: list[str] = []  # the ring of users, in order of first appearance
        self.turn = 0  # index in ``users`` where the search for the next user starts
        self.credit: dict[str, dict[str, int]] = {}  # user -> lane -> current weight (smooth weighted RR)

    def pick(self, ready: Iterable[str]) -> str | None:
        """The lane to serve next among ``ready`` (lanes with work that can start now); None when empty."""
        by_user: dict[str, list[str]] = {}
        for lane in ready:
            by_user.setdefault(self.lane_of(lane)[0], []).append(lane)
        if not by_user:
            return None
        self.users.extend(sorted(u for u in by_user if u not in self.credit))
        for u in by_user:
            self.credit.setdefault(u, {})
        n = len(self.users)
        for k in range(n):
            i = (self.turn + k) % n
            user = self.users[i]
            if user in by_user:
                self.turn = (i + 1) % n
                return self._within(user, sorted(by_user[user]))
        return None  # unreachable: every ready user is in the ring

    def _within(self, user: str, lanes: list[str]) -> str:
        """Smooth weighted round-robin between one user's ready lanes (nginx's algorithm)."""
        credit = self.credit[user]
        for lane in list(credit):
            if lane not in lanes:  # an idle lane earns nothing while it waits
                del credit[lane]
        total = 0
        for lane in lanes:
            w = self.weights[self.lane_of(lane)[1]]
            credit[lane] = credit.get(lane, 0) + w
            total += w
        best = max(lanes, key=lambda lane: (credit[lane], self.weights[self.lane_of(lane)[1]]))
        credit[best] -= total
        return best
