"""Who may do what, by OS login, as ``labelreview.toml`` says; a refusal names who may."""

from __future__ import annotations

from ..model import PermissionRefused

#: role -> the config list that grants it. Admins may do everything.
ROLE_LISTS = {"review": "reviewers", "adjudicate": "adjudicators", "admin": "admins"}


def require(store, role: str) -> None:
    roles = store.config.roles
    admins = roles.get("admins", [])
    allowed = roles.get(ROLE_LISTS[role], [])
    if role != "admin" and not allowed:
        return
    if role == "admin" and not admins:
        return
    login = store.identity.login
    if login in allowed or login in admins:
        return
    who = sorted(set(allowed) | set(admins))
    raise PermissionRefused(f"{login} may not {role}: labelreview.toml allows {', '.join(who)}; "
                            "nothing was written")
