"""The one roles table (proctor.auth.roles) and the role sets the checks read from it."""

from __future__ import annotations

import pytest

from proctor.api import deps
from proctor.auth.roles import PERMISSIONS, ROLES, roles_with
from proctor.invigilation import rooms
from proctor.review import access
from proctor.sitting import sittings


def test_every_role_has_its_permissions():
    assert set(PERMISSIONS) == set(ROLES)


def test_the_role_sets_are_those_of_the_documents():
    assert deps.STAFF_ROLES == {"invigilator", "chief", "reviewer", "admin"}
    assert deps.INVIGILATING_ROLES == rooms.CONSOLE_ROLES == {"invigilator", "chief", "admin"}
    assert deps.ADMIN_ROLES == {"admin", "chief"}
    assert deps.GRADING_ROLES == {"reviewer", "chief", "admin"}
    assert rooms.ALL_ROOM_ROLES == rooms.MANAGER_ROLES == {"chief", "admin"}
    assert access.REVIEW_ROLES == {"reviewer", "chief", "admin"}
    # an administrator records no verdicts; only a chief examiner locks a review
    assert access.DECIDE_ROLES == {"reviewer", "chief"}
    assert access.LOCK_ROLES == {"chief"}
    assert access.RETENTION_ROLES == {"chief", "admin"}
    assert sittings.PRIVILEGED_ROLES == {"chief", "admin"}
    assert sittings.STAFF_ROLES == ROLES


def test_an_unknown_permission_is_an_error_not_an_empty_set():
    with pytest.raises(KeyError):
        roles_with("nothing")
