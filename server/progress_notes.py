"""A long tool call's progress, as MCP progress notifications a client can draw as one bar.

The work reports in its own terms, many times a second and often the same thing again: a
stage's step of its planned steps ("baseline (pristine code): step 40 of 100"), then the next
stage's from 0. A client wants something else: a notification only when something changed, a
few a second at most, and `progress` that only ever grows (the protocol requires it) with a
`total` beside it. So each stage's steps are laid end to end: a stage of N steps spans N + 1
units (its start, then each step), and the total is what is known so far (it grows when a stage
starts whose length was not known before; a stage whose script prints no step count is one
unit until it does). The message always names the stage and its step.

Notifications are throttled to one per MIN_GAP_S: the first report goes out at once (leading
edge); reports inside the gap replace each other, and the last of them goes out when the gap
has passed, or at `flush` when the work ends, so the final state is never lost.
"""

import threading
import time

MIN_GAP_S = 0.5


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

    def __call__(self, done, total, message):
        """A report in the work's terms: `done` of `total` (None: not known) in the stage that
        `message` names before its first ': '. One that moves nothing on (the same step again) is
        dropped."""
        with self.lock:
            note = self._overall(done, total, message)
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
            self.offset += self.stage[1] + 1  # a new stage: the one before is laid down whole
            self.stage, self.last_done = None, 0
        if total is None:
            done, total = 0, 1  # the stage is running; how far along, its script does not say
        done = min(max(done, 0), total)
        self.stage, self.last_done = (label, total), done
        return self.offset + done, self.offset + total, message

    def _deliver(self):
        progress, total, message = self.pending
        self.pending, self.sent_progress, self.sent_at = None, progress, self.clock()
        self.send(progress, total, message)
