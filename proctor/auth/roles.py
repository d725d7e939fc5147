"""The staff roles and what each may do: the one table every role check reads.

The documents' roles: an invigilator (监考老师) watches the rooms assigned to them; a chief
examiner (主考) sees every room, sets sittings up, decides and locks reviews; a reviewer
(审核员) reviews and grades after the exam; an administrator (考务管理) sets sittings up and
manages rooms and retention, but records no verdicts."""

from __future__ import annotations

#: every staff role, in the order forms list them
ROLES = ("invigilator", "chief", "reviewer", "admin")

#: each role in words, as the staff pages show it (labels.js)
ROLE_TITLES = {
    "invigilator": "Invigilator 监考老师",
    "chief": "Chief examiner 主考",
    "reviewer": "Reviewer 审核员",
    "admin": "Administrator 考务管理",
}

#: role → what it may do
PERMISSIONS: dict[str, frozenset[str]] = {
    "invigilator": frozenset({"console"}),
    "chief": frozenset(
        {
            "console",  # the live console: watch and act on candidates (admit, extend, ...)
            "all_rooms",  # every room of a sitting, not only the assigned ones
            "manage_rooms",  # create rooms, seat candidates, assign invigilators
            "administer",  # set sittings up (rosters, banks, papers), export results
            "grade",  # grade short answers
            "review",  # open the review after the exam
            "decide",  # record verdicts
            "lock",  # lock a candidate's review
            "retention",  # evidence retention
            "privileged",  # a role only a chief (or the operator's CLI) may hand out
        }
    ),
    "reviewer": frozenset({"grade", "review", "decide"}),
    "admin": frozenset(
        {
            "console",
            "all_rooms",
            "manage_rooms",
            "administer",
            "grade",
            "review",
            "retention",
            "privileged",
        }
    ),
}


def roles_with(permission: str) -> frozenset[str]:
    """The roles that may do ``permission``."""
    roles = frozenset(r for r in ROLES if permission in PERMISSIONS[r])
    if not roles:
        raise KeyError(f"no role may {permission!r}")
    return roles
