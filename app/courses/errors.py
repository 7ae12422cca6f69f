from app.core.errors import DomainError


class CourseNotFound(DomainError):
    status_code = 404
    code = "COURSE_NOT_FOUND"
    detail = "Course not found"
