"""``gateway control start|stop|pause|resume --meeting ID``: steer a meeting's RTMS stream from a shell.

Credentials of the server-to-server OAuth app come from ``ZM_ACCOUNT_ID``, ``ZM_API_CLIENT_ID`` and
``ZM_API_CLIENT_SECRET`` (flags override; prefer the environment for the secret, flags show in
``ps``). The RTMS app's client id comes from ``ZM_RTMS_CLIENT`` or ``--rtms-client-id``.

Exit codes tell scripts what happened without parsing text: 0 done, 2 bad usage or configuration,
3 meeting not live, 4 host not present, 5 app not permitted, 6 token or credentials rejected,
7 rate limited, 1 any other failure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping

from .control import (
    ACTIONS,
    DEFAULT_API_BASE,
    DEFAULT_OAUTH_URL,
    ENV_RTMS_CLIENT_ID,
    ControlCredentials,
    RtmsControlClient,
)
from .errors import (
    AppNotPermitted,
    ConfigError,
    ControlError,
    CredentialsRejected,
    HostNotPresent,
    MeetingNotLive,
    RateLimited,
    TokenRejected,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
#: error class -> exit code; first isinstance match wins.
EXIT_CODES: tuple[tuple[type[ControlError], int], ...] = (
    (MeetingNotLive, 3),
    (HostNotPresent, 4),
    (AppNotPermitted, 5),
    (TokenRejected, 6),
    (CredentialsRejected, 6),
    (RateLimited, 7),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``control`` subcommand's arguments to ``parser``."""
    parser.add_argument("action", choices=ACTIONS, help="what to do with the meeting's RTMS app stream")
    parser.add_argument("--meeting", required=True, metavar="ID", help="numeric meeting id or meeting UUID (encoded for Zoom automatically)")
    parser.add_argument("--api-base", default=None, metavar="URL", help=f"Zoom API base (default {DEFAULT_API_BASE}; env ZM_API_BASE)")
    parser.add_argument("--oauth-url", default=None, metavar="URL", help=f"OAuth token URL (default {DEFAULT_OAUTH_URL}; env ZM_OAUTH_URL)")
    parser.add_argument("--account-id", default=None, help="server-to-server OAuth account id (env ZM_ACCOUNT_ID)")
    parser.add_argument("--client-id", default=None, help="server-to-server OAuth client id (env ZM_API_CLIENT_ID)")
    parser.add_argument("--client-secret", default=None, help="server-to-server OAuth client secret (env ZM_API_CLIENT_SECRET; prefer the env)")
    parser.add_argument("--rtms-client-id", default=None, help=f"the RTMS app's client id (env {ENV_RTMS_CLIENT_ID})")
    parser.add_argument("--participant-user-id", default=None, help="the participant whose RTMS app is changed (optional)")
    parser.add_argument("--timeout", type=float, default=15.0, metavar="S", help="per-request timeout in seconds (default 15)")


def exit_code(exc: ControlError) -> int:
    return next((code for cls, code in EXIT_CODES if isinstance(exc, cls)), EXIT_FAILED)


async def run_async(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    """The command's body, for callers that already run an event loop."""
    env = os.environ if env is None else env
    try:
        credentials = ControlCredentials.from_env(env, account_id=args.account_id, client_id=args.client_id, client_secret=args.client_secret)
        client = RtmsControlClient(
            credentials,
            rtms_client_id=args.rtms_client_id or env.get(ENV_RTMS_CLIENT_ID, ""),
            api_base=args.api_base or env.get("ZM_API_BASE") or DEFAULT_API_BASE,
            oauth_url=args.oauth_url or env.get("ZM_OAUTH_URL") or DEFAULT_OAUTH_URL,
            timeout_s=args.timeout,
        )
    except ConfigError as exc:
        print(f"gateway control: {exc}", file=sys.stderr)
        return EXIT_USAGE
    async with client:
        try:
            await client.set_status(args.meeting, args.action, participant_user_id=args.participant_user_id)
        except ConfigError as exc:
            print(f"gateway control: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except ControlError as exc:
            hint = f" (retry after {exc.retry_after:g} s)" if isinstance(exc, RateLimited) else ""
            print(f"gateway control: {exc}{hint}", file=sys.stderr)
            return exit_code(exc)
    print(f"{args.action}: accepted for meeting {args.meeting}")
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Run the command on its own (uvloop) event loop; returns the process exit code."""
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(run_async(args))


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m gateway.control_cli``) until the main CLI registers the command."""
    parser = argparse.ArgumentParser(prog="gateway control", description="Start, stop, pause or resume a meeting's RTMS app stream through Zoom's REST API.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
