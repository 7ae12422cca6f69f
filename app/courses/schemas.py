from pydantic import BaseModel, ConfigDict


class CourseRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    semester_id: int
    course_name: str
    professor: str
    schedule: str
    max_capacity: int
    reserve_limit: int
    enrolled_count: int
    reserved_count: int
    available_seats: int
