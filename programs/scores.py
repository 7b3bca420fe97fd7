"""A program's exact-match figures as what they are: k of n, with how sure we can be.

A compile scores its program on the spec's training examples (the self-check)
and, with 8 or more examples, on every fourth example held out. The held-out
figure rests on few examples (4 of 16), so it is shown with a Wilson interval
and called rough below ROUGH_BELOW examples.
"""

import math
from dataclasses import dataclass

# Under this many held-out examples the estimate is rough (the interval spans
# more than half of the scale for most scores).
ROUGH_BELOW = 8
# A held-out score under this, or a rough one, earns a suggestion to give more examples.
LOW_HELDOUT = 0.8
Z_95 = 1.959964


def wilson_interval(correct: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval for `correct` successes out of `total` trials."""
    if total <= 0:
        return 0.0, 1.0
    p = correct / total
    z2 = z * z
    denominator = 1 + z2 / total
    centre = (p + z2 / (2 * total)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Score:
    correct: int
    total: int

    @classmethod
    def from_accuracy(cls, accuracy: float | None, total: int):
        """The count behind a stored accuracy (None when nothing was scored)."""
        if accuracy is None or total <= 0:
            return None
        return cls(correct=round(accuracy * total), total=total)

    @property
    def rate(self) -> float:
        return self.correct / self.total

    @property
    def percent(self) -> int:
        return round(100 * self.rate)

    @property
    def interval(self) -> tuple[int, int]:
        """The 95 % Wilson interval, in whole percent."""
        low, high = wilson_interval(self.correct, self.total)
        return math.floor(100 * low), math.ceil(100 * high)

    @property
    def is_rough(self) -> bool:
        return self.total < ROUGH_BELOW

    @property
    def is_low(self) -> bool:
        return self.rate < LOW_HELDOUT

    def __str__(self):
        return f"{self.correct}/{self.total} ({self.percent} %)"
