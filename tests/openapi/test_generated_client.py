"""A client generated from /openapi.json by a well-known generator
(openapi-python-client, pinned in requirements-dev.txt) runs the student flow
against a real server process: every answer parses into the documented model,
errors included, and every error code is one the enum knows."""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.main import create_app

pytestmark = pytest.mark.live_server

PACKAGE = "course_client"


@pytest.fixture(scope="module")
def generated(tmp_path_factory, settings):
    folder = tmp_path_factory.mktemp("generated-client")
    spec = folder / "openapi.json"
    spec.write_text(json.dumps(create_app(settings).openapi()))
    config = folder / "config.yaml"
    config.write_text(f"post_hooks: []\nproject_name_override: {PACKAGE}\npackage_name_override: {PACKAGE}\n")
    generator = Path(sys.executable).with_name("openapi-python-client")
    command = [str(generator), "generate", "--path", str(spec), "--meta", "none", "--config", str(config)]
    subprocess.run(
        [*command, "--output-path", str(folder / PACKAGE)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    sys.path.insert(0, str(folder))
    try:
        yield lambda name: importlib.import_module(f"{PACKAGE}.{name}")
    finally:
        sys.path.remove(str(folder))
        for module in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
            del sys.modules[module]


def test_the_generated_client_runs_the_student_flow(generated, live_server, factory):
    client_module, models = generated("client"), generated("models")
    login = generated("api.auth.login")
    list_semesters = generated("api.semesters.list_semesters")
    list_semester_courses = generated("api.courses.list_semester_courses")
    register_for_course = generated("api.registrations.register_for_course")
    list_my_courses = generated("api.registrations.list_my_courses")
    drop_course = generated("api.registrations.drop_course")

    semester = factory.semester()
    course = factory.course(semester, capacity=1, reserve_limit=0)
    student, rival = factory.student(), factory.student()

    anonymous = client_module.Client(base_url=live_server.base_url)
    token = login.sync(
        client=anonymous, body=models.LoginRequest(student_number=student.student_number, password="correct horse")
    )
    assert isinstance(token, models.Token), token
    me = client_module.AuthenticatedClient(base_url=live_server.base_url, token=token.access_token)

    semesters = list_semesters.sync(client=anonymous, limit=1000)
    assert semester.id in [s.id for s in semesters]
    courses = list_semester_courses.sync_detailed(semester_id=semester.id, client=anonymous)
    assert [c.id for c in courses.parsed] == [course.id]
    assert courses.headers["X-Total-Count"] == "1"

    registered = register_for_course.sync(course_id=course.id, client=me, idempotency_key="flow-1")
    assert isinstance(registered, models.RegistrationRead)
    assert registered.status == models.RegistrationStatus.ENROLLED
    mine = list_my_courses.sync(semester_id=semester.id, client=me)
    assert [(m.course_id, m.status) for m in mine] == [(course.id, models.RegistrationStatus.ENROLLED)]

    # One error of each kind, each parsed into ErrorBody with a known code.
    rival_client = client_module.AuthenticatedClient(
        base_url=live_server.base_url, token=factory.token(rival), raise_on_unexpected_status=True
    )
    full = register_for_course.sync_detailed(course_id=course.id, client=rival_client)
    no_course = register_for_course.sync_detailed(course_id=2147483000, client=rival_client)
    no_token = list_my_courses.sync_detailed(semester_id=semester.id, client=anonymous)
    bad_login = login.sync_detailed(client=anonymous, body=models.LoginRequest(student_number="x", password="\x00"))
    wrong_password = login.sync_detailed(
        client=anonymous, body=models.LoginRequest(student_number=rival.student_number, password="wrong")
    )
    for response, status, code in [
        (full, 409, "COURSE_FULL"),
        (no_course, 404, "COURSE_NOT_FOUND"),
        (no_token, 401, "NOT_AUTHENTICATED"),
        (bad_login, 422, "VALIDATION_ERROR"),
        (wrong_password, 401, "INVALID_CREDENTIALS"),
    ]:
        assert response.status_code == status
        assert isinstance(response.parsed, models.ErrorBody), response.content
        assert response.parsed.code == models.ErrorBodyCode(code)

    dropped = drop_course.sync(course_id=course.id, client=me)
    assert isinstance(dropped, models.DropRead)
    assert dropped.dropped_status == models.RegistrationStatus.ENROLLED
    assert list_my_courses.sync(semester_id=semester.id, client=me) == []
