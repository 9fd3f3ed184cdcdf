"""The prompt stream: seeded epoch shuffles and a cursor that a checkpoint can restore.

>>> src = PromptSource([{"q": i} for i in range(3)], shuffle=False, seed=0)
>>> [r["q"] for r in src.take(4)]
[0, 1, 2, 0]
"""

from __future__ import annotations

import random


class PromptSource:
    """Yields rows in a seeded order, reshuffled each epoch; ``state_dict`` is the cursor."""

    def __init__(self, rows: list[dict], shuffle: bool = True, seed: int = 0) -> None:
        if not rows:
            raise ValueError("the training set is empty")
        self.rows, self.shuffle, self.seed = rows, shuffle, seed
        self.epoch, self.position = 0, 0
        self._order = self._make_order()

    def _make_order(self) -> list[int]:
        order = list(range(len(self.rows)))
        if self.shuffle:
            random.Random(self.seed * 1_000_003 + self.epoch).shuffle(order)
        return order

    def take(self, k: int) -> list[dict]:
        """The next ``k`` rows, wrapping into a new (reshuffled) epoch when needed."""
        out = []
        while len(out) < k:
            if self.position == len(self._order):
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._make_order()
            out.append(self.rows[self._order[self.position]])
            self.position += 1
        return out

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = state["epoch"], state["position"]
        self._order = self._make_order()
