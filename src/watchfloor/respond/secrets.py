"""Connector credentials sealed at rest: AES-256-GCM under the server's secrets key, bound to tenant and
connector, opened only to hand an action its configuration.

- `SecretsKey`: 32 bytes from base64 (`WATCHFLOOR_SECRETS_KEY`); its `key_id` (first 8 hex of the key's
  SHA-256) is stored beside each ciphertext so the right key is picked when several are configured.
- `Keyring`: the configured keys, current first (it seals), older ones after it (they only open), so a key
  can be rotated: configure `new,old`, run `CredentialStore.rotate`, then drop `old`.
- `load_keys(settings)`: the keyring from `settings.secrets_key`; without one, refused (`ConfigError` says
  how to make a key) unless `settings.dev_mode`, where a key is made once and kept in
  `<data_dir>/secrets.key` (mode 0600).
- `seal` / `open_sealed`: one JSON object of strings per (tenant, connector); associated data
  `tenant \\x1f connector`, so a ciphertext copied to another tenant's or connector's row does not open.
- `CredentialStore(db, keys)`: put (checked against the registry's manifests, audited by the repository),
  keys_set (names only), delete, rotate, and `config_for` (the run engine's `ConnectorConfigSource`).

Nothing here logs or raises with a value; `repr()` of everything holding key material or plaintext shows
`[redacted]`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from watchfloor.core.errors import ConfigError, Location, WatchfloorError
from watchfloor.core.types import TenantId
from watchfloor.respond.actions import ConnectorConfigError
from watchfloor.respond.registry import ActionRegistry

if TYPE_CHECKING:
    from pydantic import SecretStr

    from watchfloor.storage import Database
    from watchfloor.storage.respond import CredentialInfo

log = logging.getLogger(__name__)

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
KEY_SETTING: Final = "WATCHFLOOR_SECRETS_KEY"
DEV_KEY_FILE: Final = "secrets.key"
MAKE_KEY_COMMAND: Final = 'python -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())"'
REDACTED: Final = "[redacted]"
MAX_VALUE_CHARS: Final = 16384
_KEY_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


class SecretsError(WatchfloorError):
    """Connector credentials that cannot be sealed, opened or stored. Never carries a value."""

    code = "respond.secrets"


class SealedOpenError(SecretsError, ConnectorConfigError):
    """A sealed record that does not open: another key, tampered, or bound to another tenant/connector.
    Also a (not retryable) `ConnectorConfigError`: for an action, its configuration is unusable."""

    code = "respond.secrets_unreadable"


class UnknownConnectorError(SecretsError):
    """No registered action uses this connector, so there is nothing to configure."""

    code = "respond.unknown_connector"


class CredentialsInvalidError(SecretsError):
    """The values given for a connector: an unknown key, an empty or non-string value."""

    code = "respond.credentials_invalid"


# -- keys ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SecretsKey:
    """One AES-256 key and its id (first 8 hex of its SHA-256). `repr` never shows the key."""

    key_id: str
    material: bytes = field(repr=False)

    @classmethod
    def from_bytes(cls, material: bytes) -> SecretsKey:
        if len(material) != KEY_BYTES:
            msg = (
                f"a secrets key must be {KEY_BYTES} bytes, got {len(material)}; "
                f"make one with {MAKE_KEY_COMMAND}"
            )
            raise ConfigError(msg)
        return cls(key_id=hashlib.sha256(material).hexdigest()[:8], material=bytes(material))

    @classmethod
    def from_base64(cls, text: str) -> SecretsKey:
        """The key from its base64 text; a malformed one is refused without echoing it."""
        try:
            material = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            msg = f"{KEY_SETTING} is not valid base64; make a key with {MAKE_KEY_COMMAND}"
            raise ConfigError(msg) from None
        return cls.from_bytes(material)

    @classmethod
    def generate(cls) -> SecretsKey:
        return cls.from_bytes(os.urandom(KEY_BYTES))

    def to_base64(self) -> str:
        return base64.b64encode(self.material).decode("ascii")

    def __repr__(self) -> str:
        return f"SecretsKey(key_id={self.key_id!r}, material={REDACTED})"


@dataclass(frozen=True, slots=True)
class Keyring:
    """The configured keys, current first: the current one seals, every one may open."""

    keys: tuple[SecretsKey, ...]

    def __post_init__(self) -> None:
        if not self.keys:
            msg = f"no secrets key configured; make one with {MAKE_KEY_COMMAND} and set {KEY_SETTING}"
            raise ConfigError(msg)

    @classmethod
    def of(cls, keys: SecretsKey | Keyring | Sequence[SecretsKey]) -> Keyring:
        if isinstance(keys, Keyring):
            return keys
        if isinstance(keys, SecretsKey):
            return cls((keys,))
        return cls(tuple(keys))

    @property
    def current(self) -> SecretsKey:
        return self.keys[0]

    def find(self, key_id: str) -> SecretsKey | None:
        return next((k for k in self.keys if k.key_id == key_id), None)

    def __repr__(self) -> str:
        return f"Keyring(key_ids={[k.key_id for k in self.keys]!r}, material={REDACTED})"


class KeySettings(Protocol):
    """What `load_keys` reads (`server.settings.ServeSettings` has it)."""

    @property
    def secrets_key(self) -> SecretStr | None: ...
    @property
    def dev_mode(self) -> bool: ...
    @property
    def data_dir(self) -> Path: ...


def load_keys(settings: KeySettings) -> Keyring:
    """The keyring from `settings.secrets_key` (comma-separated: current first). Without one: a
    `ConfigError` saying how to make a key, unless `settings.dev_mode` (then the data dir's key file)."""
    configured = settings.secrets_key.get_secret_value() if settings.secrets_key is not None else ""
    parts = [p for p in (s.strip() for s in configured.split(",")) if p]
    if parts:
        return Keyring(tuple(SecretsKey.from_base64(p) for p in parts))
    if not settings.dev_mode:
        msg = (
            f"connector credentials need a secrets key: make one with {MAKE_KEY_COMMAND} and set it as "
            f"{KEY_SETTING} (keep it apart from the database backups), or turn on dev_mode for local use"
        )
        raise ConfigError(msg)
    return Keyring((dev_key(settings.data_dir),))


def load_key(settings: KeySettings) -> SecretsKey:
    """The current key (see `load_keys`)."""
    return load_keys(settings).current


def dev_key(data_dir: Path) -> SecretsKey:
    """Development only: the key kept in `<data_dir>/secrets.key` (0600), made on first use."""
    path = data_dir / DEV_KEY_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            msg = f"the development secrets key {path} is readable by others (mode {mode:o}); chmod 600 it"
            raise ConfigError(msg, location=Location(path=str(path))) from None
        key = SecretsKey.from_base64(path.read_text(encoding="ascii"))
        log.warning(
            "dev_mode: connector credentials are sealed with the development key in %s (id %s); "
            "set %s outside development",
            path,
            key.key_id,
            KEY_SETTING,
        )
        return key
    key = SecretsKey.generate()
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key.to_base64() + "\n")
    log.warning(
        "dev_mode: made a development secrets key in %s (id %s, mode 0600); set %s outside development",
        path,
        key.key_id,
        KEY_SETTING,
    )
    return key


# -- sealing -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Sealed:
    """A sealed configuration: what the database row holds."""

    ciphertext: bytes = field(repr=False)
    nonce: bytes = field(repr=False)
    key_id: str


class RedactedConfig(Mapping[str, str]):
    """An opened configuration: a read-only mapping whose `repr` shows key names, never values."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"RedactedConfig(keys={sorted(self._values)!r}, values={REDACTED})"

    __str__ = __repr__


def _associated_data(tenant_id: str, connector: str) -> bytes:
    return f"{tenant_id}\x1f{connector}".encode()


def _where(tenant_id: str, connector: str) -> Location:
    return Location(tenant=tenant_id, path=f"connector_credentials/{connector}")


def seal(key: SecretsKey | Keyring, tenant_id: str, connector: str, values: Mapping[str, str]) -> Sealed:
    """`values` encrypted under the (current) key with a fresh 12-byte nonce, bound to tenant and
    connector."""
    current = key.current if isinstance(key, Keyring) else key
    for name, value in values.items():
        if not isinstance(name, str) or not isinstance(value, str):
            msg = "connector configuration keys and values must be strings"
            raise CredentialsInvalidError(msg, location=_where(tenant_id, connector))
    plaintext = orjson.dumps(dict(values), option=orjson.OPT_SORT_KEYS)
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(current.material).encrypt(nonce, plaintext, _associated_data(tenant_id, connector))
    return Sealed(ciphertext=ciphertext, nonce=nonce, key_id=current.key_id)


def open_sealed(
    keys: SecretsKey | Keyring | Sequence[SecretsKey], tenant_id: str, connector: str, sealed: Sealed
) -> RedactedConfig:
    """The values sealed in `sealed`; `SealedOpenError` (no value in it) when they cannot be opened."""
    keyring = Keyring.of(keys)
    where = _where(tenant_id, connector)
    key = keyring.find(sealed.key_id)
    if key is None:
        msg = (
            f"the credentials of connector {connector} are sealed with key {sealed.key_id}, which is not "
            f"configured (configured: {', '.join(k.key_id for k in keyring.keys)}); add it to {KEY_SETTING}"
        )
        raise SealedOpenError(msg, location=where)
    try:
        plaintext = AESGCM(key.material).decrypt(
            sealed.nonce, sealed.ciphertext, _associated_data(tenant_id, connector)
        )
    except (InvalidTag, ValueError):
        msg = (
            f"the credentials of connector {connector} do not open with key {key.key_id}: the key is wrong, "
            "the record was altered, or it was sealed for another tenant or connector; set them again"
        )
        raise SealedOpenError(msg, location=where) from None
    decoded = orjson.loads(plaintext)
    if not isinstance(decoded, dict) or not all(isinstance(v, str) for v in decoded.values()):
        msg = f"the credentials of connector {connector} hold something other than a mapping of strings"
        raise SealedOpenError(msg, location=where)
    return RedactedConfig(decoded)


def rotate(
    keys: SecretsKey | Keyring | Sequence[SecretsKey], tenant_id: str, connector: str, sealed: Sealed
) -> Sealed:
    """`sealed` opened with whichever configured key sealed it and sealed again under the current key."""
    keyring = Keyring.of(keys)
    return seal(keyring, tenant_id, connector, open_sealed(keyring, tenant_id, connector, sealed))


# -- the registry's view of connectors -------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectorSpec:
    """A connector as its actions' manifests describe it: which config keys they read, which are secret."""

    connector: str
    actions: tuple[str, ...]
    config: tuple[str, ...]
    secrets: tuple[str, ...]


def connector_specs(registry: ActionRegistry) -> dict[str, ConnectorSpec]:
    """Connector -> its spec (union of its actions' `config` and `secrets`, in manifest order)."""
    actions: dict[str, list[str]] = {}
    config: dict[str, dict[str, None]] = {}
    secrets: dict[str, dict[str, None]] = {}
    for manifest in registry.manifests():
        actions.setdefault(manifest.connector, []).append(manifest.id)
        config.setdefault(manifest.connector, {}).update(dict.fromkeys(manifest.config))
        secrets.setdefault(manifest.connector, {}).update(dict.fromkeys(manifest.secrets))
    return {
        name: ConnectorSpec(
            connector=name,
            actions=tuple(actions[name]),
            config=tuple(config[name]),
            secrets=tuple(secrets[name]),
        )
        for name in sorted(actions)
    }


def shown_key(name: str) -> str:
    """A key name for a message: only when it looks like one (a pasted value is never shown)."""
    return name if _KEY_NAME.fullmatch(name) else "(a name that is not a config key name)"


# -- the store -----------------------------------------------------------------------------------------
class CredentialStore:
    """Sealed connector credentials per tenant over `db.response`; the run engine's config source."""

    __slots__ = ("_db", "_keys", "_registry", "_specs")

    def __init__(
        self,
        db: Database,
        keys: SecretsKey | Keyring | Sequence[SecretsKey],
        *,
        registry: ActionRegistry | None = None,
    ) -> None:
        self._db = db
        self._keys = Keyring.of(keys)
        self._registry = registry
        self._specs: dict[str, ConnectorSpec] | None = None

    @property
    def key_id(self) -> str:
        return self._keys.current.key_id

    def specs(self) -> dict[str, ConnectorSpec]:
        """The registry's connectors (the default registry, loaded on first use)."""
        if self._specs is None:
            registry = self._registry if self._registry is not None else ActionRegistry.default()
            self._specs = connector_specs(registry)
        return self._specs

    def spec(self, tenant_id: TenantId, connector: str) -> ConnectorSpec:
        found = self.specs().get(connector)
        if found is None:
            known = ", ".join(self.specs()) or "none"
            msg = f"no response action uses connector {shown_key(connector)} (known: {known})"
            raise UnknownConnectorError(msg, location=_where(tenant_id, shown_key(connector)))
        return found

    def put(
        self,
        tenant_id: TenantId,
        connector: str,
        values: Mapping[str, str],
        *,
        actor: str,
        merge: bool = False,
    ) -> CredentialInfo:
        """Seal and store the connector's configuration (replacing it, or merged into the stored one when
        `merge`). Keys are checked against the connector's manifests; the repository audits key names."""
        spec = self.spec(tenant_id, connector)
        self._check(tenant_id, spec, values)
        merged: dict[str, str] = {}
        if merge:
            merged.update(self._open(tenant_id, connector) or {})
        merged.update(values)
        sealed = seal(self._keys, tenant_id, connector, merged)
        return self._db.response.put_credentials(
            tenant_id,
            connector,
            ciphertext=sealed.ciphertext,
            nonce=sealed.nonce,
            key_id=sealed.key_id,
            keys=merged.keys(),
            actor=actor,
        )

    def keys_set(self, tenant_id: TenantId, connector: str) -> tuple[str, ...]:
        """Which keys are set for the connector: names only, nothing is opened."""
        stored = self._db.response.sealed_credentials(tenant_id, connector)
        return () if stored is None else stored.keys

    def credentials(self, tenant_id: TenantId) -> list[CredentialInfo]:
        """Every connector with credentials for the tenant: key names, key id, who and when."""
        return self._db.response.list_credentials(tenant_id)

    def delete(self, tenant_id: TenantId, connector: str, *, actor: str) -> bool:
        return self._db.response.delete_credentials(tenant_id, connector, actor=actor)

    def config_for(self, tenant_id: TenantId, connector: str) -> Mapping[str, Any]:
        """The connector's opened configuration (empty when none is stored): `ConnectorConfigSource`."""
        return self._open(tenant_id, connector) or RedactedConfig({})

    def rotate(self, tenant_ids: Iterable[TenantId], *, actor: str) -> int:
        """Re-seal under the current key every record of these tenants sealed with an older key; the count."""
        moved = 0
        for tenant_id in tenant_ids:
            for info in self._db.response.list_credentials(tenant_id):
                if info.key_id == self.key_id:
                    continue
                values: Mapping[str, str] = self._open(tenant_id, info.connector) or {}
                sealed = seal(self._keys, tenant_id, info.connector, values)
                self._db.response.put_credentials(
                    tenant_id,
                    info.connector,
                    ciphertext=sealed.ciphertext,
                    nonce=sealed.nonce,
                    key_id=sealed.key_id,
                    keys=values.keys(),
                    actor=actor,
                )
                moved += 1
        return moved

    def _open(self, tenant_id: TenantId, connector: str) -> RedactedConfig | None:
        stored = self._db.response.sealed_credentials(tenant_id, connector)
        if stored is None:
            return None
        sealed = Sealed(ciphertext=stored.ciphertext, nonce=stored.nonce, key_id=stored.key_id)
        return open_sealed(self._keys, tenant_id, connector, sealed)

    @staticmethod
    def _check(tenant_id: TenantId, spec: ConnectorSpec, values: Mapping[str, str]) -> None:
        where = _where(tenant_id, spec.connector)
        if not values:
            msg = f"no values given for connector {spec.connector}"
            raise CredentialsInvalidError(msg, location=where)
        unknown = sorted(k for k in values if k not in spec.config)
        if unknown:
            msg = (
                f"connector {spec.connector} has no config key {', '.join(shown_key(k) for k in unknown)}; "
                f"its keys: {', '.join(spec.config)}"
            )
            raise CredentialsInvalidError(msg, location=where)
        for name, value in values.items():
            if not isinstance(value, str):
                msg = f"the value of {shown_key(name)} must be a string"
                raise CredentialsInvalidError(msg, location=where)
            if not value:
                msg = f"the value of {shown_key(name)} is empty (use delete to remove credentials)"
                raise CredentialsInvalidError(msg, location=where)
            if len(value) > MAX_VALUE_CHARS:
                msg = f"the value of {shown_key(name)} is longer than {MAX_VALUE_CHARS} characters"
                raise CredentialsInvalidError(msg, location=where)

    def __repr__(self) -> str:
        return f"CredentialStore(key_ids={[k.key_id for k in self._keys.keys]!r}, material={REDACTED})"
