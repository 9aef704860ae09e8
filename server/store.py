"""Interviews, their events and per-bug progress, kept in SQLite in the state directory.

Everything a tool reports is committed before the tool returns, so a server killed at any moment
and started again carries on with nothing lost. Tools run in worker threads: each call opens its
own connection (cheap for SQLite), WAL lets readers work beside the one writer, and a busy timeout
makes concurrent writers (several threads, or an interviewer and a candidate server on the same
state directory) wait for each other instead of failing.
"""

import json
import sqlite3
import time
from contextlib import closing, contextmanager
from pathlib import Path

from sandbox.state import state_dir

DB_NAME = "bugdrill.sqlite3"
SCHEMA_VERSION = 1

KINDS = ("code_review", "production_debugging", "practice")
EVENT_KINDS = ("hint", "run", "view", "verify", "diagnosis", "edit", "reveal", "end", "note")
STATUSES = ("not_started", "attempted", "found", "fixed")  # in order: progress only moves up
# when an interview's clock starts: at creation, or at the candidate's first call on it. NULL, the
# interviewer's default, counts from creation until a candidate server is bound to the interview,
# which makes it 'first_call'; rows from before the column existed read 'now', as they always ran
CLOCK_STARTS = ("now", "first_call")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS interviews (
    id             TEXT PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN {KINDS}),
    bugs           TEXT NOT NULL,    -- JSON list of {{"id", "variant"}}: 0, 1 or 2 bugs
    codebase       TEXT NOT NULL,
    seed           INTEGER NOT NULL,
    workspace      TEXT NOT NULL,
    time_limit_s   INTEGER NOT NULL,
    snippet        TEXT NOT NULL,    -- JSON list of the code-review windows, drawn once at start
    started        REAL NOT NULL,
    ended          REAL,
    verdict        TEXT,
    time_to_find_s REAL,
    diagnoses_per_bug INTEGER,      -- the diagnosis budget per bug; NULL: started before budgets
    clock_starts   TEXT DEFAULT 'now' CHECK (clock_starts IN {CLOCK_STARTS}),  -- NULL: the default (CLOCK_STARTS above)
    clock_started  REAL             -- with 'first_call': the candidate's first call; NULL until then
);
CREATE TABLE IF NOT EXISTS events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    interview_id TEXT NOT NULL REFERENCES interviews(id),
    time         REAL NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN {EVENT_KINDS}),
    payload      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_interview ON events (interview_id, id);
CREATE TABLE IF NOT EXISTS progress (
    bug_id      INTEGER PRIMARY KEY,
    status      TEXT NOT NULL CHECK (status IN {STATUSES}),
    attempts    INTEGER NOT NULL DEFAULT 0,
    best_time_s REAL,
    notes       TEXT NOT NULL DEFAULT '[]'  -- JSON list of {{time, interview_id, symptoms, key_learning}}
);
"""

JSON_COLUMNS = {"bugs", "snippet", "payload", "notes"}


def _row(row):
    return None if row is None else {k: (json.loads(row[k]) if k in JSON_COLUMNS else row[k]) for k in row.keys()}


# columns added to a table after it was first shipped: a state directory from before gets them
ADDED_COLUMNS = {"interviews": {"diagnoses_per_bug": "INTEGER",
                                 "clock_starts": f"TEXT DEFAULT 'now' CHECK (clock_starts IN {CLOCK_STARTS})",
                                 "clock_started": "REAL"}}


def _add_missing_columns(db):
    db.execute("BEGIN IMMEDIATE")  # two servers starting on one old state directory add each column once
    for table, columns in ADDED_COLUMNS.items():
        present = {row["name"] for row in db.execute(f"PRAGMA table_info({table})")}
        for name, declaration in columns.items():
            if name not in present:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")
    db.execute("COMMIT")


class Store:
    def __init__(self, path=None):
        self.path = Path(path) if path else state_dir() / DB_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            _add_missing_columns(db)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _connect(self):
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        return db

    @contextmanager
    def transaction(self):
        """One connection, one write transaction: committed when the block ends, rolled back if it raises."""
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @contextmanager
    def _use(self, db):
        if db is not None:
            yield db
        else:
            with self.transaction() as fresh:
                yield fresh

    # interviews

    def insert_interview(self, row, db=None):
        row = {k: (json.dumps(v) if k in JSON_COLUMNS else v) for k, v in row.items()}
        with self._use(db) as db:
            db.execute(f"INSERT INTO interviews ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                       tuple(row.values()))

    def interview(self, interview_id):
        with closing(self._connect()) as db:
            return _row(db.execute("SELECT * FROM interviews WHERE id = ?", (interview_id,)).fetchone())

    def interviews(self, ids=None):
        """All interviews (or those with the given ids), newest first."""
        with closing(self._connect()) as db:
            rows = db.execute("SELECT * FROM interviews ORDER BY started DESC, id").fetchall()
        found = [_row(r) for r in rows]
        return found if ids is None else [r for r in found if r["id"] in ids]

    def end_interview(self, interview_id, ended, verdict, db=None):
        with self._use(db) as db:
            db.execute("UPDATE interviews SET ended = ?, verdict = ? WHERE id = ? AND ended IS NULL",
                       (ended, verdict, interview_id))

    def bind_clock_to_first_call(self, interview_id, db=None):
        """A clock left to its default (NULL) waits for the candidate's first call from now on."""
        with self._use(db) as db:
            db.execute("UPDATE interviews SET clock_starts = 'first_call' "
                       "WHERE id = ? AND clock_starts IS NULL AND ended IS NULL", (interview_id,))

    def start_clock(self, interview_id, at, db=None):
        """Start a clock that waits for the first call: once (a second server's call changes nothing)."""
        with self._use(db) as db:
            db.execute("UPDATE interviews SET clock_started = ? WHERE id = ? AND clock_starts = 'first_call' "
                       "AND clock_started IS NULL AND ended IS NULL", (at, interview_id))

    def set_time_to_find(self, interview_id, seconds, db=None):
        """Kept from the first correct diagnosis only."""
        with self._use(db) as db:
            db.execute("UPDATE interviews SET time_to_find_s = ? WHERE id = ? AND time_to_find_s IS NULL",
                       (seconds, interview_id))

    # events

    def add_event(self, interview_id, kind, payload, db=None, at=None):
        at = time.time() if at is None else at
        with self._use(db) as db:
            cursor = db.execute("INSERT INTO events (interview_id, time, kind, payload) VALUES (?, ?, ?, ?)",
                                (interview_id, at, kind, json.dumps(payload)))
        return {"id": cursor.lastrowid, "interview_id": interview_id, "time": at, "kind": kind, "payload": payload}

    def events(self, interview_id, kind=None):
        query, args = "SELECT * FROM events WHERE interview_id = ?", [interview_id]
        if kind is not None:
            query, args = query + " AND kind = ?", args + [kind]
        with closing(self._connect()) as db:
            return [_row(r) for r in db.execute(query + " ORDER BY id", args).fetchall()]

    def count_events(self, interview_id, kind):
        with closing(self._connect()) as db:
            return db.execute("SELECT COUNT(*) FROM events WHERE interview_id = ? AND kind = ?",
                              (interview_id, kind)).fetchone()[0]

    # progress

    def progress(self):
        with closing(self._connect()) as db:
            return {r["bug_id"]: _row(r) for r in db.execute("SELECT * FROM progress").fetchall()}

    def _ensure_progress(self, db, bug_id):
        db.execute("INSERT OR IGNORE INTO progress (bug_id, status) VALUES (?, 'not_started')", (bug_id,))

    def count_attempt(self, bug_id, db=None):
        with self._use(db) as db:
            self._ensure_progress(db, bug_id)
            db.execute("UPDATE progress SET attempts = attempts + 1 WHERE bug_id = ?", (bug_id,))
            self._raise_status(db, bug_id, "attempted")

    def _raise_status(self, db, bug_id, status):
        current = db.execute("SELECT status FROM progress WHERE bug_id = ?", (bug_id,)).fetchone()[0]
        if STATUSES.index(status) > STATUSES.index(current):
            db.execute("UPDATE progress SET status = ? WHERE bug_id = ?", (status, bug_id))

    def raise_status(self, bug_id, status, time_to_find_s=None, db=None):
        """Move a bug's status up (never down); keep the best time to find it."""
        with self._use(db) as db:
            self._ensure_progress(db, bug_id)
            self._raise_status(db, bug_id, status)
            if time_to_find_s is not None:
                db.execute("UPDATE progress SET best_time_s = MIN(COALESCE(best_time_s, ?), ?) WHERE bug_id = ?",
                           (time_to_find_s, time_to_find_s, bug_id))

    def add_note(self, bug_id, note, db=None):
        with self._use(db) as db:
            self._ensure_progress(db, bug_id)
            notes = json.loads(db.execute("SELECT notes FROM progress WHERE bug_id = ?", (bug_id,)).fetchone()[0])
            notes.append(note)
            db.execute("UPDATE progress SET notes = ? WHERE bug_id = ?", (json.dumps(notes), bug_id))
