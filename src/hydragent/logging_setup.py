"""The run's logging: every secret the run knows is masked in every record, third-party
chatter stays at WARNING, and log lines are kept off the progress bar.

Masking happens when a record is made (a log-record factory), so it holds for every handler:
the console and hydragent.log that Hydra installs, and the handlers a client library adds to
its own loggers (LiteLLM has one). The same filter also sits on the handlers we install, in
case a library swaps the factory. Besides the known values, credential shapes a server may
echo back (a Bearer header, an sk- key) are masked too (`hydragent.secrets.redact_text`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from hydragent.secrets import environment_secrets, redact_text

# Client libraries that log every request at INFO, or print through the progress bar.
NOISY_LOGGERS = (
    "httpx",
    "httpcore",
    "openai",
    "anthropic",
    "litellm",
    "LiteLLM",
    "LiteLLM Router",
    "LiteLLM Proxy",
    "urllib3",
    "requests",
    "huggingface_hub",
    "botocore",
    "boto3",
    "s3transfer",
    "filelock",
    "fsspec",
    "datasets",
    "transformers",
    "accelerate",
    "asyncio",
)


class SecretFilter(logging.Filter):
    """Masks the secrets it knows in a record's message and traceback text. One instance
    serves the process; `add` teaches it the values of the run being started."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add(self, values: Iterable[str]) -> None:
        self.secrets.update(v for v in values if v)

    def mask(self, text: str) -> str:
        return redact_text(text, self.secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_hydragent_masked", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed call; let logging report it as it would
            return True
        masked = self.mask(message)
        if masked != message or record.args:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        record._hydragent_masked = True
        return True


SECRETS = SecretFilter()
_base_factory = logging.getLogRecordFactory()


def _masking_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    SECRETS.filter(record)
    return record


class QuietFilter(logging.Filter):
    """Lets a record of another library through a handler of ours only at WARNING and above,
    unless `hydra.verbose` names its logger: the known chatty loggers are set to WARNING, and
    this catches the ones nobody listed (the openai SDK's transport logs as `httpx2`)."""

    def __init__(self) -> None:
        super().__init__()
        self.everything = False
        self.named: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING or self.everything:
            return True
        name = record.name
        if name == "hydragent" or name.startswith("hydragent.") or name == "__main__":
            return True
        return any(name == n or name.startswith(n + ".") for n in self.named)


QUIET = QuietFilter()


def guard_handlers() -> None:
    """Put the secret filter on every handler of every logger there is now, and the quiet
    filter on the root logger's (Hydra's console and hydragent.log)."""
    for handler in logging.getLogger().handlers:
        if QUIET not in handler.filters:
            handler.addFilter(QUIET)
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if SECRETS not in handler.filters:
                handler.addFilter(SECRETS)


def _verbose_names(verbose: Any) -> tuple[bool, set[str]]:
    """hydra.verbose: true (every logger), a logger name, or a list of names."""
    if verbose is True or str(verbose).lower() in ("true", "root"):
        return True, set()
    if not verbose:
        return False, set()
    if isinstance(verbose, str):
        return False, {verbose}
    return False, {str(name) for name in verbose}


def quiet_third_party(verbose: Any = None) -> None:
    """Client libraries log at WARNING and above unless `hydra.verbose` names them; LiteLLM's
    own hint lines ("Give Feedback / Get Help") are turned off."""
    everything, named = _verbose_names(verbose)
    QUIET.everything, QUIET.named = everything, named
    if not everything:
        for name in NOISY_LOGGERS:
            if not any(name == n or name.startswith(n + ".") for n in named):
                logging.getLogger(name).setLevel(logging.WARNING)
    litellm = sys.modules.get("litellm")
    if litellm is not None:
        litellm.suppress_debug_info = True
    guard_handlers()


def hydra_verbose() -> Any:
    """`hydra.verbose` of the running Hydra job, or None outside one."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return HydraConfig.get().verbose
    except (ImportError, ValueError):
        return None


def install(secrets: Iterable[str] = (), verbose: Any = None) -> SecretFilter:
    """Set up logging for a run: mask `secrets` (and secret-looking environment variables)
    everywhere, quiet the client libraries. Safe to call once per job."""
    SECRETS.add(secrets)
    SECRETS.add(environment_secrets())
    if logging.getLogRecordFactory() is not _masking_factory:
        logging.setLogRecordFactory(_masking_factory)
    quiet_third_party(hydra_verbose() if verbose is None else verbose)
    return SECRETS


@contextmanager
def lines_off_the_bar() -> Iterator[None]:
    """While a progress bar runs, console log lines go through tqdm.write, which clears the
    bar, prints the line and draws the bar again, instead of cutting through it."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm(loggers=[logging.getLogger()]):
        guard_handlers()  # the console handler tqdm put in place of the root's
        yield
