"""Who may do what, by OS login, as ``labelreview.toml`` says; a refusal names who may.

Roles: ``review`` (decide), ``adjudicate`` (resolve conflicts), ``import``, ``export`` (and tag
releases), ``config`` (change labelreview.toml, add remotes) and ``admin`` (everything). The rules
themselves live in ``Config.who_may``. The login is the process's user id, not an environment
variable. This guards against mistakes, not against a member of the store's group who edits files
by hand: for that there is the audit trail, where every event names its OS login.
"""

from __future__ import annotations

from ..model import PermissionRefused

ROLES = ("review", "adjudicate", "import", "export", "config", "admin")
_VERB = {"config": "change the config"}


def allowed(store, role: str) -> bool:
    return store.config.allows(role, store.identity.login)


def require(store, role: str) -> None:
    """Refuse (PermissionRefused, before anything is written) unless the user has ``role``, as
    labelreview.toml says now (it may have changed since the store was opened)."""
    store.refresh_config()
    if allowed(store, role):
        return
    who = store.config.who_may(role) or []
    raise PermissionRefused(f"{store.identity.login} may not {_VERB.get(role, role)}: labelreview.toml "
                            f"allows {', '.join(who) or 'nobody'}; nothing was written")
