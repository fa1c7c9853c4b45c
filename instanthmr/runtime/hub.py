"""Model files on the Hugging Face Hub: the released network on first use, and any ``hf:`` file by name.

The released InstantHMR network lives in the Hub repository ``momolesang/InstantHMR`` (``instanthmr.onnx``,
fp16 weights with float32 inputs/outputs; ``instanthmr.pth``, the training checkpoint). Its weights come
under the SAM License (``RELEASED_WEIGHTS_LICENSE``); the code here is Apache-2.0.

    >>> released_model()                       # models/instanthmr.onnx, else the Hub copy (downloaded once)
    Released(path=PosixPath('.../instanthmr.onnx'), origin='hub', note=None)
    >>> fetch(parse_hub_spec("hf:momolesang/InstantHMR/instanthmr.onnx@3504446f..."))   # a pinned revision

Downloads go through ``huggingface_hub.hf_hub_download``: its cache (``HF_HOME`` / ``HF_HUB_CACHE``, default
``~/.cache/huggingface/hub``), resumable partial downloads, ``HF_TOKEN`` for private repositories and
``HF_ENDPOINT`` for mirrors all work as they do for any Hub client. ``HF_HUB_OFFLINE=1`` uses the cache only.

Never a hang: a closed network makes ``hf_hub_download`` retry for about 25 s (measured here: five retries
with back-off when the host name does not resolve), and a name server that does not answer can stall DNS
for longer. So before any download the Hub (or the HTTPS proxy) is probed: DNS and a TCP connection within
``PROBE_TIMEOUT_S`` on a helper thread, then one HEAD request for the file without retries, also on a helper
thread, within what is left of ``CHECK_BUDGET_S`` (or ``HF_HUB_ETAG_TIMEOUT`` when set). A failure at either
step becomes one :class:`HubError` line (measured here from the command line: 1.5 s for an unresolvable host,
6 s for a server that accepts connections and never answers); the cached copy is used instead when
there is one.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from instanthmr.core import paths
from instanthmr.core.errors import first_line
from instanthmr.runtime.session import ModelLoadError

HUB_PREFIX = "hf:"
DEFAULT_ENDPOINT = "https://huggingface.co"
PROBE_TIMEOUT_S = 3.0  # DNS + TCP connect to the Hub (or the proxy)
CHECK_BUDGET_S = 5.0  # probe + one HEAD request for the file, in all (HF_HUB_ETAG_TIMEOUT overrides it)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")  # Hub owner / repository names
_TRUE = {"1", "on", "yes", "true"}


class HubError(ModelLoadError):
    """A Hub file could not be had: offline, unreachable, not found, no access. The message is one line that
    says why and what to do."""


@dataclass(frozen=True)
class HubFile:
    """One file in a Hub model repository: ``repo_id`` (``owner/name``), ``filename`` (may contain ``/``),
    ``revision`` (a branch, tag or commit hash; ``None`` = ``main``)."""

    repo_id: str
    filename: str = paths.RELEASED_ONNX_NAME
    revision: str | None = None

    def __str__(self) -> str:
        return f"{HUB_PREFIX}{self.repo_id}/{self.filename}" + (f"@{self.revision}" if self.revision else "")

    @property
    def page(self) -> str:
        """The file's page on huggingface.co (what a person opens to download it by hand)."""
        return f"{DEFAULT_ENDPOINT}/{self.repo_id}/blob/{self.revision or 'main'}/{self.filename}"

    @property
    def is_released(self) -> bool:
        """A file of the released InstantHMR repository (its weights are under the SAM License)."""
        return self.repo_id == paths.RELEASED_REPO_ID


RELEASED_ONNX = HubFile(paths.RELEASED_REPO_ID, paths.RELEASED_ONNX_NAME)
RELEASED_CHECKPOINT = HubFile(paths.RELEASED_REPO_ID, paths.RELEASED_CHECKPOINT_NAME)


def is_hub_spec(text) -> bool:
    return isinstance(text, str) and text.startswith(HUB_PREFIX)


def parse_hub_spec(spec: str) -> HubFile:
    """``hf:OWNER/REPO[/FILE][@REV]`` -> :class:`HubFile` (``FILE`` defaults to ``instanthmr.onnx``).

    Raises ``ValueError`` (one line, with the expected form) for anything else.
    """
    form = f"expected {HUB_PREFIX}OWNER/REPO[/FILE][@REVISION], e.g. {HUB_PREFIX}{paths.RELEASED_REPO_ID}"
    if not is_hub_spec(spec):
        raise ValueError(f"not a Hub file {spec!r}: {form}")
    body, revision = spec[len(HUB_PREFIX):], None
    if "@" in body:
        body, revision = body.rsplit("@", 1)
        if not revision or any(c in revision for c in " \t\n"):
            raise ValueError(f"bad revision in {spec!r}: {form}")
    parts = body.split("/")
    if len(parts) < 2 or not all(_NAME.match(p) for p in parts[:2]) or any(".." in p or "--" in p
                                                                             for p in parts[:2]):
        raise ValueError(f"bad repository in {spec!r}: {form}")
    rest = parts[2:]
    if rest and (any(p in ("", ".", "..") for p in rest)):
        raise ValueError(f"bad file name in {spec!r}: {form}")
    return HubFile("/".join(parts[:2]), "/".join(rest) if rest else paths.RELEASED_ONNX_NAME, revision)


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to a true value, read now (not at import)."""
    return any((os.environ.get(k) or "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def _proxy_for(url: str) -> str | None:
    scheme = urlparse(url).scheme or "https"
    for key in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY", "all_proxy", "ALL_PROXY"):
        if os.environ.get(key):
            return os.environ[key]
    return None


def reachable(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """``None`` when a TCP connection to ``url``'s host (or to the proxy the environment names for it) opens
    within ``timeout_s``, else the reason in a few words. DNS runs on a helper thread so a name server that
    never answers cannot stall the caller past ``timeout_s``."""
    target = _proxy_for(url) or url
    u = urlparse(target if "://" in target else f"http://{target}")
    host, port = u.hostname, u.port or (443 if u.scheme == "https" else 80)
    if not host:
        return f"no host in {target!r}"
    result: list = []

    def connect():
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                result.append(None)
        except OSError as e:
            result.append(first_line(e, 80))

    t = threading.Thread(target=connect, name="instanthmr-hub-probe", daemon=True)
    t.start()
    t.join(timeout_s)
    where = f"{host}:{port}" + (" (proxy)" if target != url else "")
    if not result:
        return f"{where}: no answer within {timeout_s:.0f} s"
    return None if result[0] is None else f"{where}: {result[0]}"


def _check_budget() -> float:
    try:
        return float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or CHECK_BUDGET_S)
    except ValueError:
        return CHECK_BUDGET_S


def _within(seconds: float, fn):
    """``fn()`` on a helper thread, waited for at most ``seconds``: ``(True, result)``, ``(False, exception)``,
    or ``(False, TimeoutError)`` when it is still running (left to finish on its own, a daemon thread). HTTP
    clients time each phase (connect, read) separately; this bounds the whole."""
    box: list = []

    def run():
        try:
            box.append((True, fn()))
        except Exception as e:  # handed to the caller
            box.append((False, e))

    t = threading.Thread(target=run, name="instanthmr-hub-check", daemon=True)
    t.start()
    t.join(seconds)
    return box[0] if box else (False, TimeoutError(f"no answer within {seconds:.0f} s"))


def hub_cache_dir() -> Path:
    """Where ``huggingface_hub`` keeps downloads, by its own rules but read now (it reads them once, at import):
    ``HF_HUB_CACHE``, else ``HF_HOME``/hub, else ``$XDG_CACHE_HOME``/huggingface/hub, ``~/.cache/...``."""
    env = os.environ
    explicit = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(explicit)).expanduser()
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


@dataclass(frozen=True)
class Fetched:
    """A Hub file on disk: ``path``; ``downloaded`` (this call fetched it); ``note`` (one line when the cached
    copy was used because the Hub could not be asked, else ``None``)."""

    path: Path
    downloaded: bool = False
    note: str | None = None


def _hf():
    try:
        import huggingface_hub
    except ImportError:
        raise HubError("the huggingface_hub package is not installed (pip install huggingface_hub)") from None
    return huggingface_hub


def cached_path(file: HubFile, cache_dir: str | Path | None = None) -> Path | None:
    """The file in the Hub cache (no network), or ``None``."""
    try:
        hf = _hf()
        p = hf.try_to_load_from_cache(file.repo_id, file.filename, cache_dir=cache_dir or hub_cache_dir(),
                                      revision=file.revision)
    except (HubError, ValueError, OSError):
        return None
    return Path(p) if isinstance(p, str) and Path(p).is_file() else None


def _explain(file: HubFile, e: BaseException) -> str:
    """One line for a failed Hub request, by error type (names looked up so old and new huggingface_hub work)."""
    import huggingface_hub.errors as err

    def isa(name: str) -> bool:
        cls = getattr(err, name, None)
        return cls is not None and isinstance(e, cls)

    rev = file.revision or "main"
    if isa("GatedRepoError"):
        return f"{file.repo_id} is gated: accept its terms at {DEFAULT_ENDPOINT}/{file.repo_id} and log in (hf auth login)"
    if isa("RepositoryNotFoundError"):
        return (f"repository {file.repo_id} not found on the Hub (or private: log in with `hf auth login` or set "
                "HF_TOKEN)")
    if isa("RevisionNotFoundError"):
        return f"revision {rev!r} not found in {file.repo_id}"
    if isa("LocalEntryNotFoundError") or isa("OfflineModeIsEnabled"):
        return f"{file} is not in the Hub cache {hub_cache_dir()} and the Hub could not be asked"
    if isa("EntryNotFoundError"):
        return f"{file.filename} not found in {file.repo_id} at revision {rev}"
    return f"download of {file} failed ({type(e).__name__}: {first_line(e, 120)})"


def fetch(file: HubFile, cache_dir: str | Path | None = None, local_dir: str | Path | None = None,
          force: bool = False, on_download=None) -> Fetched:
    """Download ``file`` (or find it in the cache) and return where it is.

    ``cache_dir``: the Hub cache (default: huggingface_hub's). ``local_dir``: also place a real copy there
    (``local_dir/filename``). ``force``: download again. ``on_download(file)`` is called right before a real
    download starts (to say so: it can take a while). Raises :class:`HubError` (one line) when the file
    cannot be had; offline or unreachable, a cached copy is returned instead when there is one.
    """
    hf = _hf()
    cache_dir = Path(cache_dir) if cache_dir else hub_cache_dir()
    kwargs = dict(repo_id=file.repo_id, filename=file.filename, revision=file.revision, cache_dir=cache_dir,
                  local_dir=local_dir)
    cached = None if force else cached_path(file, cache_dir)

    def from_cache(why: str) -> Fetched:
        try:
            p = Path(hf.hf_hub_download(**kwargs, local_files_only=True))
        except Exception:
            raise HubError(f"{why}, and {file} is not in the Hub cache {cache_dir}") from None
        return Fetched(p, note=f"{why}: using the cached {p}")

    if hub_offline():
        return from_cache("HF_HUB_OFFLINE is set")
    url = endpoint()
    budget = _check_budget()
    start = time.monotonic()
    why = reachable(url, min(PROBE_TIMEOUT_S, budget))
    if why is not None:
        return from_cache(f"the Hugging Face Hub is unreachable ({why})")
    left = max(budget - (time.monotonic() - start), 1.0)
    meta_url = hf.hf_hub_url(file.repo_id, file.filename, revision=file.revision, endpoint=url)
    # one HEAD request without retries: a firewall that answers TCP but drops HTTPS fails here, quickly
    ok, e = _within(left, lambda: hf.get_hf_file_metadata(meta_url, timeout=left))
    if not ok:
        import huggingface_hub.errors as err

        if isinstance(e, err.HfHubHTTPError) and getattr(e, "response", None) is not None \
                and e.response.status_code < 500:
            raise HubError(_explain(file, e)) from None  # the Hub answered: not found, no access
        return from_cache(f"the Hugging Face Hub did not answer ({type(e).__name__}: {first_line(e, 80)})")
    timeout = max(left, 3.0)
    if cached is None and on_download is not None:
        on_download(file)
    try:
        p = Path(hf.hf_hub_download(**kwargs, force_download=force, endpoint=url, etag_timeout=timeout))
    except KeyboardInterrupt:
        raise
    except Exception as e:
        raise HubError(_explain(file, e)) from None
    return Fetched(p, downloaded=cached is None or force)


@dataclass(frozen=True)
class Released:
    """Where the released network was found: ``path`` (``None`` when it was not), ``origin`` (``"local"`` =
    ``models/instanthmr.onnx``, ``"hub"`` = the Hub copy, ``None``), ``note``: one line, why it was not used
    (``path is None``) or that a cached copy stood in for an unreachable Hub."""

    path: Path | None
    origin: str | None
    note: str | None = None


def released_model(cache_dir: str | Path | None = None, on_download=None) -> Released:
    """The released ``instanthmr.onnx``: ``models/instanthmr.onnx`` when present, else the Hub copy
    (downloaded on first use), else ``Released(None, None, why)``: the caller picks the offline path."""
    local = paths.DEFAULT_MODEL
    if local.is_file():
        return Released(local, "local")
    try:
        got = fetch(RELEASED_ONNX, cache_dir=cache_dir, on_download=on_download)
    except HubError as e:
        return Released(None, None, str(e))
    return Released(got.path, "hub", got.note)


def released_origin(path: str | Path) -> str | None:
    """``"local"`` when ``path`` is ``models/instanthmr.onnx``, ``"hub"`` when it is a file of the released
    Hub repository in a Hub cache (``models--momolesang--InstantHMR/snapshots/...``), else ``None``: the files
    whose weights come under the SAM License."""
    p = Path(path)
    try:
        if p.resolve() == paths.DEFAULT_MODEL.resolve():
            return "local"
    except OSError:
        return None
    folder = "models--" + paths.RELEASED_REPO_ID.replace("/", "--")
    return "hub" if folder in p.parts and "snapshots" in p.parts else None


def unavailable_hint() -> str:
    """What to do when the released model cannot be downloaded (for one-line messages)."""
    return (f"put {paths.RELEASED_ONNX_NAME} from {DEFAULT_ENDPOINT}/{paths.RELEASED_REPO_ID} in "
            f"{_display(paths.MODELS_DIR)}/ or pass --model PATH")


def _display(p: Path) -> str:
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)
