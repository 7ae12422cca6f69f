"""The SQL of the registration transaction, built once at import.

Each statement is one round trip; while a course row is locked, as few run as
possible, because that lock is what limits the throughput of a popular course
(docs/performance.md). The writes carry their audit event in the same statement
(a data-modifying CTE), so the trail costs no extra round trip and can never
miss a change or record one that did not happen.

Bind parameters never share a column's name: in an UPDATE, SQLAlchemy would
take such a parameter as a value to SET.
"""

from typing import Any

from sqlalchemy import TextClause, TextualSelect, Uuid, bindparam, column, text
from sqlalchemy.types import TypeEngine


def _sql(statement: str, **types: TypeEngine[Any]) -> TextClause:
    """Parameters are cast in the SQL itself; only a uuid.UUID needs converting on the way."""
    return text(statement).bindparams(*(bindparam(name, type_=type_) for name, type_ in types.items()))


def _returning(statement: TextClause, columns: str) -> TextualSelect:
    """A statement whose result columns (space-separated) are listed here, in their order.
    With the list, SQLAlchemy builds the result's column map once and keeps it with the
    compiled statement; without it, again from the cursor's description on every execution
    (about 25 us of the worker's CPU a statement). tests/registrations/test_statements.py
    checks the list against what PostgreSQL returns."""
    return statement.columns(*(column(name) for name in columns.split()))


def sql_of(statement: TextClause | TextualSelect) -> str:
    """The SQL a statement sends (the bench builds its pgbench scripts from it)."""
    clause = statement.element if isinstance(statement, TextualSelect) else statement
    assert isinstance(clause, TextClause)
    return clause.text


_UUID: Uuid[Any] = Uuid()

# The student's lock (lock order, docs/architecture.md: the student, then courses by
# ascending id). NO KEY UPDATE: it still lets other transactions insert rows that
# merely reference the student.
LOCK_STUDENT = _returning(_sql("SELECT id FROM students WHERE id = :student FOR NO KEY UPDATE", student=_UUID), "id")

# Everything the rules read, in one statement, taken after the student's lock so
# that a hold, an appointment or a registration committed before is seen. None
# of the course's side changes while registrations run (a registrar's edit of it
# takes the course lock, and the write re-checks `cancelled` under that lock).
_STANDING_SQL = _sql(
    """
    SELECT c.id AS course_id, c.semester_id, c.code, c.credits, c.meetings, c.prerequisites,
           c.cancelled_at IS NOT NULL AS cancelled, s.registration_start, s.registration_end,
           c.max_capacity, c.reserve_limit, c.enrolled_count, c.reserved_count,
           COALESCE(st.max_credits, :default_max_credits) AS max_credits,
           COALESCE(t.credits, 0) AS term_credits, t.registration_opens_at,
           ARRAY(SELECT h.reason FROM student_holds h
                 WHERE h.student_id = :student AND h.lifted_at IS NULL ORDER BY h.id) AS hold_reasons,
           ARRAY(SELECT cc.course_code FROM student_completed_courses cc
                 WHERE cc.student_id = :student AND cc.course_code = ANY (c.prerequisites)) AS completed,
           COALESCE((SELECT json_agg(json_build_object('course_id', r.course_id, 'credits', r.credits,
                                                       'meetings', rc.meetings))
                     FROM course_registrations r JOIN courses rc ON rc.id = r.course_id
                     WHERE r.student_id = :student AND rc.semester_id = c.semester_id), '[]') AS registered
    FROM courses c
    JOIN semesters s ON s.id = c.semester_id
    JOIN students st ON st.id = :student
    LEFT JOIN student_terms t ON t.student_id = :student AND t.semester_id = c.semester_id
    WHERE c.id = :course
    """,
    student=_UUID,
)
STANDING_COLUMNS = (
    "course_id semester_id code credits meetings prerequisites cancelled registration_start registration_end"
    " max_capacity reserve_limit enrolled_count reserved_count max_credits term_credits registration_opens_at"
    " hold_reasons completed registered"
)
STANDING = _returning(_STANDING_SQL, STANDING_COLUMNS)

# FOR UPDATE OF courses: the semester is joined only to read its window, and must
# not be locked, or every registration in the semester would serialise.
_LOCK_COURSE_SQL = _sql(
    """
    SELECT c.id, c.semester_id, c.max_capacity, c.reserve_limit, c.enrolled_count, c.reserved_count,
           c.credits, c.meetings, c.prerequisites, c.cancelled_at IS NOT NULL AS cancelled,
           s.registration_start, s.registration_end
    FROM courses c JOIN semesters s ON s.id = c.semester_id
    WHERE c.id = :course
    FOR UPDATE OF c
    """
)
LOCK_COURSE = _returning(
    _LOCK_COURSE_SQL,
    "id semester_id max_capacity reserve_limit enrolled_count reserved_count credits meetings prerequisites"
    " cancelled registration_start registration_end",
)

# Registering: the row, the course's counters, the student's credits and the event,
# in one statement. The insert does nothing if the student already has this course
# (the rules refused that already, under the student's lock; this is the backstop),
# and then nothing else happens either: `inserted` is 0.
_REGISTER_SQL = _sql(
    """
    WITH new_registration AS (
        INSERT INTO course_registrations (student_id, course_id, status, reserve_position, credits)
        VALUES (:student, :course, CAST(CAST(:new_status AS text) AS registration_status), :new_position,
                :course_credits)
        ON CONFLICT (student_id, course_id) DO NOTHING
        RETURNING id
    ), counted AS (
        UPDATE courses SET enrolled_count = :new_enrolled_count, reserved_count = :new_reserved_count,
                           updated_at = now()
        WHERE id = :course AND EXISTS (SELECT FROM new_registration)
    ), term AS (
        INSERT INTO student_terms (student_id, semester_id, credits)
        SELECT CAST(:student AS uuid), CAST(:semester AS integer), CAST(:course_credits AS integer)
        WHERE EXISTS (SELECT FROM new_registration)
        ON CONFLICT (student_id, semester_id) DO UPDATE SET credits = student_terms.credits + EXCLUDED.credits
    ), event AS (
        INSERT INTO registration_events (event_type, semester_id, course_id, student_id, actor, request_id,
                                         reserve_position, details)
        SELECT CAST(CAST(:new_status AS text) AS registration_event_type), CAST(:semester AS integer),
               CAST(:course AS integer),
               CAST(:student AS uuid), CAST(:actor AS text), CAST(:request_id AS text),
               CAST(:new_position AS integer), CAST(:details AS jsonb)
        WHERE EXISTS (SELECT FROM new_registration)
    )
    SELECT count(*) AS inserted FROM new_registration
    """,
    student=_UUID,
)
REGISTER = _returning(_REGISTER_SQL, "inserted")

_DELETE_REGISTRATION_SQL = _sql(
    """
    DELETE FROM course_registrations WHERE student_id = :student AND course_id = :course
    RETURNING status, reserve_position, credits
    """,
    student=_UUID,
)
DELETE_REGISTRATION = _returning(_DELETE_REGISTRATION_SQL, "status reserve_position credits")

# After a registration is deleted: everyone behind the vacated position moves up
# one, and whoever reaches position 0 is enrolled (a freed seat counts as
# "position 0"; with no vacated position, nobody moves). The course's counters,
# the student's credits and the events (the drop, then the promotion if any) in
# the same statement; it returns the promoted student, if any.
_VACATE_SQL = _sql(
    """
    WITH shifted AS (
        UPDATE course_registrations
        SET status = CASE WHEN reserve_position = 1 THEN 'ENROLLED'::registration_status ELSE status END,
            reserve_position = NULLIF(reserve_position - 1, 0), updated_at = now()
        WHERE course_id = :course AND reserve_position > CAST(:vacated_position AS integer)
        RETURNING student_id, status
    ), promoted AS (
        SELECT student_id FROM shifted WHERE status = 'ENROLLED'
    ), counted AS (
        UPDATE courses SET enrolled_count = :new_enrolled_count, reserved_count = :new_reserved_count,
                           updated_at = now()
        WHERE id = :course
    ), term AS (
        UPDATE student_terms SET credits = credits - :freed_credits
        WHERE student_id = :student AND semester_id = :semester
    ), events AS (
        INSERT INTO registration_events (event_type, semester_id, course_id, student_id, actor, request_id,
                                         reserve_position, details)
        SELECT event_type, CAST(:semester AS integer), CAST(:course AS integer), student_id, CAST(:actor AS text),
               CAST(:request_id AS text), reserve_position, details
        FROM (
            SELECT 1 AS n, CAST(:event_type AS registration_event_type) AS event_type,
                   CAST(:student AS uuid) AS student_id, CAST(:dropped_position AS integer) AS reserve_position,
                   CAST(:details AS jsonb) AS details
            UNION ALL
            SELECT 2, 'PROMOTED'::registration_event_type, student_id, 1, '{}'::jsonb FROM promoted
        ) AS happened
        ORDER BY n
    )
    SELECT student_id FROM promoted
    """,
    student=_UUID,
)
VACATE = _returning(_VACATE_SQL, "student_id")

# A registrar's capacity change, under the course lock: the first `promote`
# reserved students (in position order) take the new seats, everyone behind moves
# up by as many; then the course's limits and counters. Returns the promoted, in
# the order they were promoted, with the positions they came from.
PROMOTE_HEADS = _sql(
    """
    WITH heads AS (
        SELECT id, student_id, reserve_position AS from_position FROM course_registrations
        WHERE course_id = :course AND reserve_position IS NOT NULL AND reserve_position <= :promote
    ), moved AS (
        UPDATE course_registrations r
        SET status = CASE WHEN r.reserve_position <= :promote THEN 'ENROLLED'::registration_status ELSE r.status END,
            reserve_position = CASE WHEN r.reserve_position <= :promote THEN NULL
                                    ELSE r.reserve_position - :promote END,
            updated_at = now()
        WHERE r.course_id = :course AND r.reserve_position IS NOT NULL
    ), events AS (
        INSERT INTO registration_events (event_type, semester_id, course_id, student_id, actor, request_id,
                                         reserve_position, details)
        SELECT 'PROMOTED', CAST(:semester AS integer), CAST(:course AS integer), student_id, CAST(:actor AS text),
               CAST(:request_id AS text), from_position, '{"capacity_change": true}'::jsonb
        FROM heads ORDER BY from_position
    )
    SELECT student_id, from_position FROM heads ORDER BY from_position
    """
)

SET_LIMITS = _sql(
    """
    WITH changed AS (
        UPDATE courses SET max_capacity = :new_max_capacity, reserve_limit = :new_reserve_limit,
                           enrolled_count = :new_enrolled_count, reserved_count = :new_reserved_count,
                           updated_at = now()
        WHERE id = :course
    )
    INSERT INTO registration_events (event_type, semester_id, course_id, actor, request_id, details)
    VALUES ('CAPACITY_CHANGED', :semester, :course, :actor, :request_id, CAST(:details AS jsonb))
    """
)

MARK_CANCELLED = _sql("UPDATE courses SET cancelled_at = COALESCE(cancelled_at, now()) WHERE id = :course")

REGISTERED_STUDENTS = _sql("SELECT student_id FROM course_registrations WHERE course_id = :course ORDER BY student_id")

LOCK_STUDENTS = _sql("SELECT id FROM students WHERE id = ANY (CAST(:students AS uuid[])) ORDER BY id FOR NO KEY UPDATE")

# Cancelling, under the locks of every registered student and of the course: every
# registration ends (nobody is promoted), each student gets their credits back, and
# each ending is recorded, reserve list in position order after the enrolled.
END_ALL_REGISTRATIONS = _sql(
    """
    WITH ended AS (
        DELETE FROM course_registrations WHERE course_id = :course
        RETURNING student_id, status, reserve_position, credits
    ), terms AS (
        UPDATE student_terms t SET credits = t.credits - ended.credits
        FROM ended WHERE t.student_id = ended.student_id AND t.semester_id = :semester
    ), counted AS (
        UPDATE courses SET enrolled_count = 0, reserved_count = 0, updated_at = now() WHERE id = :course
    ), events AS (
        INSERT INTO registration_events (event_type, semester_id, course_id, student_id, actor, request_id,
                                         reserve_position, details)
        SELECT 'CANCELLED', CAST(:semester AS integer), CAST(:course AS integer), student_id, CAST(:actor AS text),
               CAST(:request_id AS text), reserve_position, jsonb_build_object('status', status, 'credits', credits)
        FROM ended ORDER BY reserve_position NULLS FIRST, student_id
    )
    SELECT count(*) FROM ended
    """
)


# ---- prepared once per connection -----------------------------------------------------------------
#
# STANDING and REGISTER run on every registration. Sent as text, PostgreSQL plans
# each one every time, and planning them costs more than running them (0.2-0.8 ms
# against 0.1-0.3 ms, docs/performance.md section 12). Prepared once per
# connection of the write engine, each is planned once (then as a generic plan)
# and executed by name. Prepared statements live in the connection: they do not
# survive PgBouncer in transaction mode, where DB_PREPARED_STATEMENTS must be off.

PREPARED_KEY = "registration_statements_prepared"

_PREPARED = {
    "registration_standing": (_STANDING_SQL, ("student", "course", "default_max_credits")),
    "registration_register": (
        _REGISTER_SQL,
        (
            "student",
            "course",
            "semester",
            "new_status",
            "new_position",
            "course_credits",
            "new_enrolled_count",
            "new_reserved_count",
            "actor",
            "request_id",
            "details",
        ),
    ),
}


def _numbered(statement: TextClause, names: tuple[str, ...]) -> str:
    """The statement's SQL with its :named parameters as $1, $2, ... in the order of `names`."""
    sql = statement.text
    for number, name in sorted(enumerate(names, start=1), key=lambda item: -len(item[1])):
        sql = sql.replace(f":{name}", f"${number}")
    return sql


def prepare_on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    """A `connect` event of the write engine: prepare the hot statements on the new connection."""
    cursor = dbapi_connection.cursor()
    try:
        for name, (statement, names) in _PREPARED.items():
            cursor.execute(f"PREPARE {name} AS {_numbered(statement, names)}")
    finally:
        cursor.close()
    connection_record.info[PREPARED_KEY] = True


def _executing(name: str, names: tuple[str, ...], **types: TypeEngine[Any]) -> TextClause:
    return _sql(f"EXECUTE {name} ({', '.join(':' + n for n in names)})", **types)


STANDING_PREPARED = _returning(
    _executing("registration_standing", _PREPARED["registration_standing"][1], student=_UUID), STANDING_COLUMNS
)
REGISTER_PREPARED = _returning(
    _executing("registration_register", _PREPARED["registration_register"][1], student=_UUID), "inserted"
)
