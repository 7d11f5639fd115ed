"""Where the archive is and how to sign in to it: environment variables and a small TOML file.

One archive comes from the environment:

* ``NBRISK_DICOMWEB_URL``: the DICOMweb root (``https://pacs.example.org/dicom-web``);
* ``NBRISK_DICOMWEB_USER`` + ``NBRISK_DICOMWEB_PASSWORD`` (HTTP basic) or ``NBRISK_DICOMWEB_TOKEN``
  (``Authorization: Bearer``);
* ``NBRISK_DICOMWEB_CA_BUNDLE``: a CA file for a site's own certificate authority;
* ``NBRISK_PACS_KEEP_STUDY_LINK=1``: the site allows keeping the archive's Study Instance UID with
  a case (needed to push results back; off by default).

Several named archives come from a TOML file (``NBRISK_PACS_CONFIG``, default
``~/.config/nbrisk/pacs.toml``), one table each::

    [archives.main]
    url = "https://pacs.example.org/dicom-web"
    auth = "basic"                      # "none", "basic" or "bearer"
    username_env = "MAIN_PACS_USER"     # names of environment variables, never the secrets
    password_env = "MAIN_PACS_PASSWORD"
    keep_study_link = true
    dimse = {host = "pacs.example.org", port = 104, aet = "PACS", calling_aet = "NBRISK"}

Secrets are read from the environment when a connection is made and held only in memory:
:class:`ArchiveSettings` never prints them (``repr``, :meth:`~ArchiveSettings.display_url`), the
case store never receives them, and a URL with ``user:password@`` has them moved into basic auth
and out of the URL. TLS certificates are verified unless an archive's table says
``verify_tls = false`` (a test archive only); that cannot be set from the environment.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from nbrisk_core.errors import InputError

ENV_URL = "NBRISK_DICOMWEB_URL"
ENV_USER = "NBRISK_DICOMWEB_USER"
ENV_PASSWORD = "NBRISK_DICOMWEB_PASSWORD"
ENV_TOKEN = "NBRISK_DICOMWEB_TOKEN"
ENV_CA_BUNDLE = "NBRISK_DICOMWEB_CA_BUNDLE"
ENV_KEEP_LINK = "NBRISK_PACS_KEEP_STUDY_LINK"
ENV_CONFIG = "NBRISK_PACS_CONFIG"
DEFAULT_CONFIG = Path("~/.config/nbrisk/pacs.toml")
AUTH_KINDS = ("none", "basic", "bearer")
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class DimseSettings:
    """The archive's DIMSE side (C-FIND / C-GET): host, port, its AE title and ours."""

    host: str
    port: int
    aet: str = "ANY-SCP"
    calling_aet: str = "NBRISK"


@dataclass(frozen=True)
class ArchiveSettings:
    """One archive. ``password`` and ``token`` are excluded from ``repr`` and never logged."""

    name: str
    url: str | None = None
    auth: str = "none"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    verify_tls: bool = True
    ca_bundle: str | None = None
    keep_study_link: bool = False
    timeout_s: float = 30.0
    dimse: DimseSettings | None = None

    def display_url(self) -> str:
        """The URL for messages: never with credentials (they are not in :attr:`url`)."""
        return self.url or (
            f"dimse://{self.dimse.aet}@{self.dimse.host}:{self.dimse.port}" if self.dimse else "(no URL)"
        )

    def with_url(self, url: str) -> ArchiveSettings:
        """These settings with another URL (``--url``); credentials in the URL become basic auth."""
        clean, user, password = split_credentials(url)
        if user is not None:
            return replace(self, url=clean, auth="basic", username=user, password=password, token=None)
        return replace(self, url=clean)


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``(url without user:password@, user, password)``; checks the scheme is http or https."""
    text = str(url or "").strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(
            f"archive URL {_redacted(text)!r} is not an http(s) URL; expected e.g. "
            "https://pacs.example.org/dicom-web",
            source="url",
        )
    if parts.username is None:
        return text.rstrip("/"), None, None
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)).rstrip("/")
    return clean, unquote(parts.username), unquote(parts.password or "")


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    netloc = "***@" + (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _flag(value) -> bool:
    return str(value).strip().lower() in _TRUE


def from_environment(env: dict | None = None) -> ArchiveSettings | None:
    """The archive of ``NBRISK_DICOMWEB_URL`` and its auth variables; None when the URL is not set."""
    env = os.environ if env is None else env
    url = (env.get(ENV_URL) or "").strip()
    if not url:
        return None
    settings = ArchiveSettings(
        name="env",
        keep_study_link=_flag(env.get(ENV_KEEP_LINK, "")),
        ca_bundle=(env.get(ENV_CA_BUNDLE) or None),
    ).with_url(url)
    if env.get(ENV_TOKEN):
        settings = replace(settings, auth="bearer", token=env[ENV_TOKEN], username=None, password=None)
    elif env.get(ENV_USER):
        settings = replace(settings, auth="basic", username=env[ENV_USER], password=env.get(ENV_PASSWORD, ""))
    return settings


def config_path(env: dict | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get(ENV_CONFIG) or DEFAULT_CONFIG).expanduser()


def load_archives(
    path: str | os.PathLike | None = None, env: dict | None = None
) -> dict[str, ArchiveSettings]:
    """The named archives of the TOML file (none when it does not exist).

    Raises
    ------
    InputError
        The file is not TOML, or an archive's table has an unknown key, a bad ``auth`` or port, or
        names an environment variable that is not set.
    """
    env = os.environ if env is None else env
    path = Path(path).expanduser() if path is not None else config_path(env)
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not a valid TOML file ({error})", source=str(path)) from None
    archives = {}
    for name, table in (data.get("archives") or {}).items():
        archives[name] = _archive_from_table(path, str(name), table, env)
    return archives


_KEYS = {
    "url",
    "auth",
    "username",
    "username_env",
    "password_env",
    "token_env",
    "verify_tls",
    "ca_bundle",
    "keep_study_link",
    "timeout_s",
    "dimse",
}


def _archive_from_table(path: Path, name: str, table, env) -> ArchiveSettings:
    where = f"{path}: [archives.{name}]"
    if not isinstance(table, dict):
        raise InputError(f"{where} is not a table", source=str(path))
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise InputError(
            f"{where}: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(sorted(_KEYS))}"
            " (secrets go in environment variables named by *_env)",
            source=str(path),
        )
    auth = str(table.get("auth", "none"))
    if auth not in AUTH_KINDS:
        raise InputError(
            f"{where}: auth = {auth!r}; expected one of {', '.join(AUTH_KINDS)}", source=str(path)
        )

    def secret(key: str) -> str | None:
        var = table.get(key)
        if var is None:
            return None
        if not env.get(str(var)):
            raise InputError(
                f"{where}: {key} = {var!r}, but that environment variable is not set", source=str(path)
            )
        return env[str(var)]

    dimse = None
    if table.get("dimse") is not None:
        d = table["dimse"]
        try:
            dimse = DimseSettings(
                str(d["host"]),
                int(d["port"]),
                str(d.get("aet", "ANY-SCP")),
                str(d.get("calling_aet", "NBRISK")),
            )
        except (KeyError, TypeError, ValueError):
            raise InputError(
                f"{where}: dimse = {d!r}; expected {{host = ..., port = 104, aet = ...}}", source=str(path)
            ) from None
    settings = ArchiveSettings(
        name=name,
        auth=auth,
        verify_tls=bool(table.get("verify_tls", True)),
        ca_bundle=table.get("ca_bundle"),
        keep_study_link=bool(table.get("keep_study_link", False)),
        timeout_s=float(table.get("timeout_s", 30)),
        dimse=dimse,
    )
    if table.get("url"):
        settings = settings.with_url(str(table["url"]))
    if auth == "basic":
        username = table.get("username") or secret("username_env")
        settings = replace(settings, username=username, password=secret("password_env") or "")
    elif auth == "bearer":
        settings = replace(settings, token=secret("token_env"))
    if settings.url is None and settings.dimse is None:
        raise InputError(f"{where}: needs a url (DICOMweb) or a dimse table", source=str(path))
    return settings


def resolve(
    url: str | None = None,
    archive: str | None = None,
    env: dict | None = None,
    config: str | os.PathLike | None = None,
) -> ArchiveSettings:
    """The archive to use: ``archive`` from the TOML file, else the environment's; ``url`` overrides the URL.

    Raises
    ------
    InputError
        No archive is configured (no ``--url``, no ``NBRISK_DICOMWEB_URL``), or ``archive`` is not in
        the file.
    """
    env = os.environ if env is None else env
    if archive:
        archives = load_archives(config, env)
        if archive not in archives:
            known = ", ".join(sorted(archives)) or "none"
            raise InputError(
                f"archive {archive!r} is not in {config or config_path(env)} (archives: {known})",
                source="archive",
            )
        settings = archives[archive]
    else:
        settings = from_environment(env) or ArchiveSettings(name="url")
    if url:
        settings = settings.with_url(url)
    if settings.url is None and settings.dimse is None:
        raise InputError(
            f"no archive configured: give --url URL or set {ENV_URL} (or name an archive of "
            f"{config_path(env)})",
            source="url",
        )
    return settings


__all__ = [
    "AUTH_KINDS",
    "ArchiveSettings",
    "DimseSettings",
    "ENV_URL",
    "config_path",
    "from_environment",
    "load_archives",
    "resolve",
    "split_credentials",
]
