"""Every response action by id: the built-in connectors' plus third-party plugins found through the
`watchfloor.actions` entry point group (STYLE item 4).

A plugin distribution declares, in its own pyproject:

    [project.entry-points."watchfloor.actions"]
    acme = "acme_watchfloor.actions:ACTIONS"    # an Action subclass, or a tuple/list of them

Each class is checked before it is accepted (an Action subclass with an ActionManifest that implements
`run`, and `rollback` when it says it is reversible). A broken plugin never takes the built-in actions
down: it is left out and its problem is kept in `ActionRegistry.problems` (and logged).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from typing import Final

from watchfloor.core.errors import Location, WatchfloorError
from watchfloor.respond.actions import Action, ActionManifest
from watchfloor.respond.connectors import aws_iam, falcon, mde, msgraph, notify, okta, psa

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP: Final = "watchfloor.actions"


class ActionRegistryError(WatchfloorError):
    """An action class that cannot be registered (bad manifest, duplicate id, missing reverse action)."""

    code = "respond.registry"


class UnknownActionError(ActionRegistryError):
    """No action with that id is registered."""

    code = "respond.unknown_action"


def builtin_actions() -> list[type[Action]]:
    """The action classes shipped with Watchfloor, one connector module per line.

    Add a new connector here: `from watchfloor.respond.connectors import falcon` above, then
    `*falcon.ACTIONS` below (okta, aws_iam, psa, ...). The EDL actions need the database and are built
    with `connectors.edl.edl_actions(db)` by whoever holds it.
    """
    return [
        *msgraph.ACTIONS,
        *mde.ACTIONS,
        *notify.ACTIONS,
        *falcon.ACTIONS,
        *okta.ACTIONS,
        *aws_iam.ACTIONS,
        *psa.ACTIONS,
    ]


def check_action_class(obj: object, *, origin: str) -> type[Action]:
    """`obj` if it is a usable Action class, else ActionRegistryError saying what is wrong with it."""
    where = Location(path=origin)
    if not isinstance(obj, type) or not issubclass(obj, Action):
        raise ActionRegistryError(f"{obj!r} is not an Action subclass", location=where)
    manifest = getattr(obj, "manifest", None)
    if not isinstance(manifest, ActionManifest):
        raise ActionRegistryError(f"{obj.__name__} has no ActionManifest in 'manifest'", location=where)
    if obj.run is Action.run:
        raise ActionRegistryError(f"{obj.__name__} ({manifest.id}) does not implement run()", location=where)
    if manifest.reversible and obj.rollback is Action.rollback:
        raise ActionRegistryError(
            f"{obj.__name__} ({manifest.id}) says it is reversible but does not implement rollback()",
            location=where,
        )
    return obj


EntryPoints = Callable[..., Iterable[metadata.EntryPoint]]


def plugin_actions(
    *, group: str = ENTRY_POINT_GROUP, entry_points: EntryPoints = metadata.entry_points
) -> tuple[list[tuple[type[Action], str]], list[str]]:
    """(action class, origin) for every class the installed plugins declare, and the problems found."""
    found: list[tuple[type[Action], str]] = []
    problems: list[str] = []
    for entry_point in entry_points(group=group):
        dist = getattr(entry_point.dist, "name", None) or "unknown distribution"
        origin = f"entry point {entry_point.name} = {entry_point.value} ({dist})"
        try:
            loaded = entry_point.load()
        except Exception as exc:  # noqa: BLE001 - any import failure of third-party code is its problem
            problems.append(f"{origin}: cannot be loaded: {type(exc).__name__}: {exc}")
            continue
        items = loaded if isinstance(loaded, list | tuple) else [loaded]
        for item in items:
            try:
                found.append((check_action_class(item, origin=origin), origin))
            except ActionRegistryError as exc:
                problems.append(str(exc))
    return found, problems


class ActionRegistry:
    """Action id -> Action instance. `ActionRegistry.default()` is what the run engine uses."""

    def __init__(
        self, actions: Iterable[type[Action]] = (), *, factory: Callable[[type[Action]], Action] | None = None
    ):
        self._factory = factory or (lambda cls: cls())
        self._actions: dict[str, Action] = {}
        self._origins: dict[str, str] = {}
        self.problems: list[str] = []
        for cls in actions:
            self.add(cls, origin=f"{cls.__module__}.{cls.__qualname__}")
        self.check_reverse_actions()

    @classmethod
    def default(
        cls, *, plugins: bool = True, entry_points: EntryPoints = metadata.entry_points
    ) -> ActionRegistry:
        """The built-in actions, plus the plugins' unless `plugins` is False. Plugins cannot replace a
        built-in action: a clashing id is reported in `problems` and the built-in one is kept."""
        registry = cls(builtin_actions())
        if plugins:
            found, problems = plugin_actions(entry_points=entry_points)
            registry.problems.extend(problems)
            for action_cls, origin in found:
                try:
                    registry.add(action_cls, origin=origin)
                except ActionRegistryError as exc:
                    registry.problems.append(str(exc))
            registry.problems.extend(registry.check_reverse_actions(strict=False))
        for problem in registry.problems:
            log.warning("response action plugin left out: %s", problem)
        return registry

    def add(self, cls: type[Action], *, origin: str) -> None:
        check_action_class(cls, origin=origin)
        action_id = cls.manifest.id
        if action_id in self._actions:
            raise ActionRegistryError(
                f"action id {action_id!r} from {origin} is already registered by {self._origins[action_id]}",
                location=Location(path=origin),
            )
        self._actions[action_id] = self._factory(cls)
        self._origins[action_id] = origin

    def check_reverse_actions(self, *, strict: bool = True) -> list[str]:
        """Every reversible action's reverse_action is registered; the problems, or raise when strict."""
        problems = [
            f"{action_id}: its reverse action {action.manifest.reverse_action!r} is not registered"
            for action_id, action in self._actions.items()
            if action.manifest.reverse_action is not None
            and action.manifest.reverse_action not in self._actions
        ]
        if problems and strict:
            raise ActionRegistryError("; ".join(problems))
        return problems

    def get(self, action_id: str) -> Action:
        try:
            return self._actions[action_id]
        except KeyError:
            close = difflib.get_close_matches(action_id, list(self._actions), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            connector = action_id.split(".", 1)[0]
            same = sorted(a for a in self._actions if a.startswith(f"{connector}."))
            known = f" ({connector} offers {', '.join(same)})" if same and not close else ""
            raise UnknownActionError(f"no response action {action_id!r} is registered{hint}{known}") from None

    def manifests(self) -> list[ActionManifest]:
        """Every registered action's manifest, sorted by id."""
        return [self._actions[action_id].manifest for action_id in sorted(self._actions)]

    def origin(self, action_id: str) -> str:
        self.get(action_id)
        return self._origins[action_id]

    def __contains__(self, action_id: object) -> bool:
        return action_id in self._actions

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._actions))

    def __len__(self) -> int:
        return len(self._actions)

    def __repr__(self) -> str:
        return f"ActionRegistry({len(self._actions)} actions)"
