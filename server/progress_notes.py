"""A long tool call's progress, as MCP progress notifications a client can draw as one bar.

The work reports in its own terms, many times a second and often the same thing again: a
stage's step of its planned steps ("baseline (pristine code): step 40 of 100"), then the next
stage's from 0. A client wants something else: a notification only when something changed, a
few a second at most, and `progress` that only ever grows (the protocol requires it) with a
`total` beside it. So each stage's steps are laid end to end: a stage of N steps spans N + 1
units (its start, then each step). The work may say its plan first (`plan`: every stage it means
to run, so the total is right from the first notification) and skip what it found already done
(`reach`: a cached baseline); without a plan, or past it, the total is what is known so far (it
grows when a stage starts whose length was not known before; a stage whose script prints no
step count is one unit until it does). The message always names the stage and its step.

Notifications are throttled to one per MIN_GAP_S: the first report goes out at once (leading
edge); reports inside the gap replace each other, and the last of them goes out when the gap
has passed, or at `flush` when the work ends, so the final state is never lost.
"""

import threading
import time

MIN_GAP_S = 0.5


def stage_units(steps):
    """The units a stage of `steps` planned steps spans: its start, then each step (a stage whose
    steps are not known, its start and its end)."""
    return (steps or 1) + 1


class ProgressNotes:
    def __init__(self, send, min_gap_s=MIN_GAP_S, clock=time.monotonic):
        """`send(progress, total, message)` delivers one notification (from a worker thread)."""
        self.send, self.min_gap_s, self.clock = send, min_gap_s, clock
        self.lock = threading.Lock()
        self.offset = 0  # units of the stages before the current one
        self.stage = None  # (label, total) of the current stage
        self.last_done = 0
        self.sent_progress = -1
        self.sent_at = None
        self.pending = None  # (progress, total, message) held back by the throttle
        self.planned = 0  # the last unit of the plan, when the work said it
        self.known = 0  # the last unit of the stages seen so far

    def plan(self, units):
        """The work means to run stages spanning `units` units in all (stage_units of each)."""
        with self.lock:
            self.planned = max(units - 1, 0)

    def reach(self, units, message):
        """What came before unit `units` is done (a phase that ran, or one found cached): the next
        stage starts there."""
        with self.lock:
            self._close_stage()
            self.offset = max(self.offset, units)
            self._note((self.offset - 1, self._total(self.offset - 1), message))

    def finish(self, message):
        """The work ended: the bar is full, with `message` saying how it ended."""
        with self.lock:
            total = self._total(self.sent_progress)
            self.pending = None
            if self.sent_progress < total:
                self.pending = (total, total, message)
                self._deliver()

    def __call__(self, done, total, message):
        """A report in the work's terms: `done` of `total` (None: not known) in the stage that
        `message` names before its first ': '. One that moves nothing on (the same step again) is
        dropped."""
        with self.lock:
            self._note(self._overall(done, total, message))

    def _note(self, note):
        if note[0] <= self.sent_progress:
            return
        self.pending = note
        if self.sent_at is None or self.clock() - self.sent_at >= self.min_gap_s:
            self._deliver()

    def flush(self):
        """Send the last report the throttle held back: called when the work ends."""
        with self.lock:
            if self.pending is not None:
                self._deliver()

    def _overall(self, done, total, message):
        label = message.split(": ", 1)[0]
        if self.stage is not None and (label != self.stage[0] or done < self.last_done):
            self._close_stage()
        if total is None:
            done, total = 0, 1  # the stage is running; how far along, its script does not say
        done = min(max(done, 0), total)
        self.stage, self.last_done = (label, total), done
        return self.offset + done, self._total(self.offset + total), message

    def _close_stage(self):
        if self.stage is not None:
            self.offset += self.stage[1] + 1  # the stage is laid down whole
            self.stage, self.last_done = None, 0

    def _total(self, known):
        self.known = max(self.known, known)
        return max(self.planned, self.known)

    def _deliver(self):
        progress, total, message = self.pending
        self.pending, self.sent_progress, self.sent_at = None, progress, self.clock()
        self.send(progress, total, message)
