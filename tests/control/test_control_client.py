"""RtmsControlClient against the simulated Zoom REST side and a scripted Zoom: bodies, tokens, errors."""

from __future__ import annotations

import asyncio
import email.utils
import logging

import aiohttp
import pytest
from yarl import URL

from gateway import control
from gateway.control import ControlCredentials, classify, encode_meeting_id, parse_retry_after
from gateway.errors import (
    AppNotPermitted,
    ConfigError,
    ControlError,
    CredentialsRejected,
    GatewayError,
    HostNotPresent,
    MeetingNotLive,
    RateLimited,
    TokenRejected,
)
from gateway.sim.rest import ANSWERS, SimRestError
from tests.control.helpers import (
    ACCOUNT_ID,
    API_CLIENT_ID,
    API_CLIENT_SECRET,
    RTMS_CLIENT_ID,
    FakeClock,
    FakeMeetings,
    FakeSleep,
    ScriptedZoom,
    client_for,
    serving,
    zoom,
)

LIVE = {"85746065432": (True, True)}


# ------------------------------------------------------------------ happy paths


async def test_each_action_sends_zoom_body_and_reaches_the_controller() -> None:
    meetings = FakeMeetings(dict(LIVE))
    async with zoom(meetings) as z, client_for(z.base_url) as c:
        await c.start("85746065432", participant_user_id="user-1")
        await c.pause(85746065432)
        await c.resume("85746065432")
        await c.stop("85746065432")
    assert meetings.calls == [("start", "85746065432"), ("pause", "85746065432"), ("resume", "85746065432"), ("stop", "85746065432")]
    assert [r.action for r in z.requests] == ["start", "pause", "resume", "stop"]
    assert z.requests[0].settings == {"client_id": RTMS_CLIENT_ID, "participant_user_id": "user-1"}
    assert z.requests[1].settings == {"client_id": RTMS_CLIENT_ID}  # participant only when given
    assert z.rejected == []


async def test_request_shape_on_the_wire() -> None:
    stub = ScriptedZoom([(204, None, None)])
    async with serving(stub.app) as base, client_for(base) as c:
        await c.set_status("85746065432", "pause")
    (call,) = stub.status_calls
    assert call["path"] == "/v2/live_meetings/85746065432/rtms_app/status"
    assert call["auth"] == "Bearer tok-1"
    assert call["body"] == {"action": "pause", "settings": {"client_id": RTMS_CLIENT_ID}}


async def test_zoom_phone_variant_uses_phone_calls_path() -> None:
    stub = ScriptedZoom([(204, None, None)])
    async with serving(stub.app) as base, client_for(base) as c:
        await c.set_status("call-abc", "start", resource="phone/calls")
    assert stub.status_calls[0]["path"] == "/v2/phone/calls/call-abc/rtms_app/status"


@pytest.mark.parametrize(
    ("uuid", "segment"),
    [
        ("4444AAAiAAAAAiAiAiiAii==", "4444AAAiAAAAAiAiAiiAii%3D%3D"),
        ("ab/cd+ef==", "ab%2Fcd%2Bef%3D%3D"),  # a lone inner slash: encoded once
        ("/ajXp112QmuoKj4854875==", "%252FajXp112QmuoKj4854875%253D%253D"),  # leading slash: twice
        ("ab//cd==", "ab%252F%252Fcd%253D%253D"),  # double slash: twice
    ],
)
def test_meeting_uuid_encoding_follows_zoom_rule(uuid: str, segment: str) -> None:
    assert encode_meeting_id(uuid) == segment
    assert encode_meeting_id(85746065432) == "85746065432"


@pytest.mark.parametrize("uuid", ["/ajXp112QmuoKj4854875==", "ab//cd==", "ab/cd+ef=="])
async def test_uuid_reaches_the_simulated_zoom_intact(uuid: str) -> None:
    meetings = FakeMeetings({uuid: (True, True)})
    async with zoom(meetings) as z, client_for(z.base_url) as c:
        await c.start(uuid)
    assert meetings.calls == [("start", uuid)]


async def test_simulated_zoom_refuses_singly_encoded_slash_uuid() -> None:
    """Zoom's rule exists because a single encoding is lost on the way; the simulator is strict."""
    meetings = FakeMeetings({"/abc==": (True, True)})
    async with zoom(meetings) as z:
        async with client_for(z.base_url) as c:
            token = await c.access_token()
        url = URL(f"{z.api_base}/live_meetings/%2Fabc%3D%3D/rtms_app/status", encoded=True)
        body = {"action": "start", "settings": {"client_id": RTMS_CLIENT_ID}}
        async with aiohttp.ClientSession() as http, http.patch(url, json=body, headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 404
            assert (await resp.json())["code"] == 3001
    assert meetings.calls == []


# ------------------------------------------------------------------ token caching and renewal


async def test_token_is_cached_across_calls() -> None:
    clock = FakeClock()
    async with zoom(FakeMeetings(dict(LIVE)), clock=clock) as z, client_for(z.base_url, clock=clock) as c:
        for _ in range(3):
            await c.pause("85746065432")
            clock.advance(100)
        assert c.token_requests == 1 and z.token_grants == 1


async def test_token_renewed_before_expiry_not_after() -> None:
    clock = FakeClock()
    async with zoom(FakeMeetings(dict(LIVE)), clock=clock, token_ttl_s=3599) as z, client_for(z.base_url, clock=clock, refresh_margin_s=60) as c:
        await c.start("85746065432")
        first = await c.access_token()
        clock.advance(3538)  # 61 s left: still inside the validity minus margin
        assert await c.access_token() == first
        await c.pause("85746065432")
        assert z.token_grants == 1
        clock.advance(2)  # 59 s left: renewed although Zoom would still accept the old one
        await c.resume("85746065432")
        assert z.token_grants == 2 and await c.access_token() != first
        assert z.rejected == []  # never sent an expired token


async def test_short_lived_token_renews_at_half_life() -> None:
    clock = FakeClock()
    async with zoom(FakeMeetings(dict(LIVE)), clock=clock, token_ttl_s=40) as z, client_for(z.base_url, clock=clock, refresh_margin_s=60) as c:
        await c.start("85746065432")
        clock.advance(19)
        await c.pause("85746065432")
        assert z.token_grants == 1
        clock.advance(1)
        await c.resume("85746065432")
        assert z.token_grants == 2


async def test_concurrent_callers_share_one_token_request() -> None:
    meetings = FakeMeetings({str(m): (True, True) for m in range(1000, 1008)})
    async with zoom(meetings) as z, client_for(z.base_url) as c:
        await asyncio.gather(*(c.start(m) for m in range(1000, 1008)))
    assert z.token_grants == 1 and len(meetings.calls) == 8


async def test_expired_token_is_renewed_once_transparently() -> None:
    zoom_clock, client_clock = FakeClock(), FakeClock()
    meetings = FakeMeetings(dict(LIVE))
    async with zoom(meetings, clock=zoom_clock) as z, client_for(z.base_url, clock=client_clock) as c:
        await c.start("85746065432")
        zoom_clock.advance(4000)  # Zoom's clock says the token expired; ours does not know
        await c.pause("85746065432")
    assert z.rejected == [(401, 124)]  # "Access token is expired." once, then the renewed token worked
    assert z.token_grants == 2 and meetings.calls[-1] == ("pause", "85746065432")


async def test_revoked_token_is_renewed_once_transparently() -> None:
    meetings = FakeMeetings(dict(LIVE))
    async with zoom(meetings) as z, client_for(z.base_url) as c:
        await c.start("85746065432")
        z.revoke_tokens()
        await c.stop("85746065432")
    assert z.rejected == [(401, 124)] and z.token_grants == 2


@pytest.mark.parametrize("message", ["Access token is expired.", "Invalid access token."])
async def test_token_rejected_after_one_renewal(message: str) -> None:
    answer = (401, {"code": 124, "message": message}, None)
    stub = ScriptedZoom([answer, answer, (204, None, None)])
    async with serving(stub.app) as base, client_for(base) as c:
        with pytest.raises(TokenRejected) as info:
            await c.start("85746065432")
    assert info.value.code == 124 and info.value.status == 401 and info.value.zoom_message == message
    assert stub.token_grants == 2 and len(stub.status_calls) == 2  # bounded: one renewal only
    assert [call["auth"] for call in stub.status_calls] == ["Bearer tok-1", "Bearer tok-2"]


# ------------------------------------------------------------------ error answers from the simulated Zoom


async def test_unknown_meeting_is_not_live() -> None:
    async with zoom(FakeMeetings()) as z, client_for(z.base_url) as c:
        with pytest.raises(MeetingNotLive) as info:
            await c.start("99999999999")
    assert (info.value.status, info.value.code) == (404, 3001)
    assert "99999999999" in str(info.value)


async def test_meeting_not_in_progress_is_not_live() -> None:
    meetings = FakeMeetings({"85746065432": (False, True)})
    async with zoom(meetings) as z, client_for(z.base_url) as c:
        with pytest.raises(MeetingNotLive):
            await c.start("85746065432")
    assert meetings.calls == []


async def test_host_absent() -> None:
    meetings = FakeMeetings({"85746065432": (True, False)})
    async with zoom(meetings) as z, client_for(z.base_url) as c:
        with pytest.raises(HostNotPresent) as info:
            await c.start("85746065432")
    assert info.value.status == 400 and meetings.calls == []


async def test_host_absent_allowed_when_zoom_does_not_require_it() -> None:
    """January 2026: the original host's token may start RTMS without the host present."""
    meetings = FakeMeetings({"85746065432": (True, False)})
    async with zoom(meetings, require_host_present=False) as z, client_for(z.base_url) as c:
        await c.start("85746065432")
    assert meetings.calls == [("start", "85746065432")]


async def test_wrong_rtms_app_is_not_permitted() -> None:
    meetings = FakeMeetings(dict(LIVE))
    async with zoom(meetings) as z, client_for(z.base_url, rtms_client_id="some-other-app") as c:
        with pytest.raises(AppNotPermitted) as info:
            await c.start("85746065432")
    assert info.value.code == 2308 and meetings.calls == []


async def test_app_disabled_is_not_permitted() -> None:
    async with zoom(FakeMeetings(dict(LIVE)), app_permitted=False) as z, client_for(z.base_url) as c:
        with pytest.raises(AppNotPermitted):
            await c.resume("85746065432")


async def test_rate_limited_retries_once_after_advised_delay() -> None:
    sleep = FakeSleep()
    meetings = FakeMeetings(dict(LIVE))
    async with zoom(meetings) as z, client_for(z.base_url, sleep=sleep) as c:
        z.force_rate_limit(1, retry_after=7)
        await c.start("85746065432")
    assert sleep.delays == [7.0]
    assert z.rejected == [(429, 429)] and meetings.calls == [("start", "85746065432")]


async def test_rate_limited_twice_raises_with_retry_after() -> None:
    sleep = FakeSleep()
    meetings = FakeMeetings(dict(LIVE))
    async with zoom(meetings) as z, client_for(z.base_url, sleep=sleep) as c:
        z.force_rate_limit(5, retry_after=3)
        with pytest.raises(RateLimited) as info:
            await c.start("85746065432")
    assert info.value.retry_after == 3.0 and info.value.status == 429
    assert sleep.delays == [3.0] and len(z.rejected) == 2 and meetings.calls == []


async def test_rate_limit_delay_beyond_bound_is_not_waited() -> None:
    sleep = FakeSleep()
    stub = ScriptedZoom([(429, {"code": 429, "message": "Too many requests"}, {"Retry-After": "3600"})])
    async with serving(stub.app) as base, client_for(base, sleep=sleep, max_retry_after_s=60) as c:
        with pytest.raises(RateLimited) as info:
            await c.start("85746065432")
    assert info.value.retry_after == 3600.0 and sleep.delays == [] and len(stub.status_calls) == 1


async def test_conflicting_action_is_a_plain_control_error() -> None:
    class Refusing(FakeMeetings):
        async def pause(self, meeting_id: str) -> None:
            raise SimRestError(ANSWERS["conflict"], detail="cannot pause, RTMS app is not running")

    async with zoom(Refusing(dict(LIVE))) as z, client_for(z.base_url) as c:
        with pytest.raises(ControlError) as info:
            await c.pause("85746065432")
    assert type(info.value) is ControlError and info.value.code == 300


# ------------------------------------------------------------------ OAuth failures


@pytest.mark.parametrize(
    ("field", "value"),
    [("client_secret", "wrong-secret"), ("client_id", "wrong-id"), ("account_id", "wrong-account")],
)
async def test_wrong_credentials_are_rejected_at_the_oauth_endpoint(field: str, value: str) -> None:
    creds = {"account_id": ACCOUNT_ID, "client_id": API_CLIENT_ID, "client_secret": API_CLIENT_SECRET, field: value}
    meetings = FakeMeetings(dict(LIVE))
    async with zoom(meetings) as z, client_for(z.base_url, credentials=ControlCredentials(**creds)) as c:
        with pytest.raises(CredentialsRejected) as info:
            await c.start("85746065432")
    assert info.value.status in (400, 401) and meetings.calls == [] and z.token_grants == 0
    assert value not in str(info.value) or field == "client_id"  # secrets and the account id never in messages


async def test_unreachable_zoom_is_a_control_error_without_account_id() -> None:
    async with client_for("http://127.0.0.1:9", timeout_s=2) as c:
        with pytest.raises(ControlError) as info:
            await c.start("85746065432")
    assert ACCOUNT_ID not in str(info.value) and API_CLIENT_SECRET not in str(info.value)


# ------------------------------------------------------------------ mapping table


@pytest.mark.parametrize(
    ("status", "code", "message", "expected"),
    [
        (404, 3001, "Meeting does not exist: 123.", MeetingNotLive),
        (400, 3000, "Meeting is not live.", MeetingNotLive),
        (400, 3000, "The meeting has ended.", MeetingNotLive),
        (400, 3000, "The host is not in the meeting.", HostNotPresent),
        (400, 3000, "Host has not joined the meeting yet.", HostNotPresent),
        (400, 2308, "", AppNotPermitted),
        (400, 2310, "Developer Pack required", AppNotPermitted),
        (400, 3000, "The app is not enabled for RTMS.", AppNotPermitted),
        (400, 4700, "Invalid access token, does not contain scopes.", AppNotPermitted),
        (401, 124, "Invalid access token.", TokenRejected),
        (401, None, "", TokenRejected),
        (403, None, "", AppNotPermitted),
        (404, None, "", MeetingNotLive),
        (429, 429, "Too many requests", RateLimited),
        (429, 3001, "Meeting does not exist", RateLimited),  # the status wins for 429
        (400, 300, "Validation failed: meeting has not started", ControlError),  # code table wins
        (500, None, "Internal error", ControlError),
    ],
)
def test_classify(status: int, code: int | None, message: str, expected: type[ControlError]) -> None:
    assert classify(status, code, message) is expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ((400, {"code": 3000, "message": "The host is not in the meeting."}, None), HostNotPresent),
        ((404, {"code": "3001", "message": "Meeting does not exist"}, None), MeetingNotLive),  # string code
        ((403, b"<html>forbidden</html>", None), AppNotPermitted),  # not JSON: status decides
        ((502, {"oops": 1}, None), ControlError),
    ],
)
async def test_scripted_answers_map_to_typed_errors(answer: tuple, expected: type[ControlError]) -> None:
    stub = ScriptedZoom([answer])
    async with serving(stub.app) as base, client_for(base) as c:
        with pytest.raises(expected) as info:
            await c.start("85746065432")
    assert type(info.value) is expected and isinstance(info.value, GatewayError)
    assert info.value.status == answer[0]


def test_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after(None) == control.DEFAULT_RETRY_AFTER_S
    assert parse_retry_after("soon") == control.DEFAULT_RETRY_AFTER_S
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == 30.0


def test_unknown_action_is_a_config_error() -> None:
    async def go() -> None:
        async with client_for("http://127.0.0.1:9") as c:
            await c.set_status("1", "restart")

    with pytest.raises(ConfigError):
        asyncio.run(go())


# ------------------------------------------------------------------ secrets stay secret


def test_credentials_from_env_and_missing_names() -> None:
    env = {"ZM_ACCOUNT_ID": ACCOUNT_ID, "ZM_API_CLIENT_ID": API_CLIENT_ID, "ZM_API_CLIENT_SECRET": API_CLIENT_SECRET}
    creds = ControlCredentials.from_env(env)
    assert (creds.account_id, creds.client_id, creds.client_secret) == (ACCOUNT_ID, API_CLIENT_ID, API_CLIENT_SECRET)
    assert ControlCredentials.from_env(env, client_id="flag-id").client_id == "flag-id"
    with pytest.raises(ConfigError) as info:
        ControlCredentials.from_env({"ZM_API_CLIENT_ID": "x"})
    assert "ZM_ACCOUNT_ID" in str(info.value) and "ZM_API_CLIENT_SECRET" in str(info.value)
    with pytest.raises(ConfigError):
        client_for("http://x", rtms_client_id="")


async def test_credentials_and_tokens_never_logged_nor_in_reprs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    clock, sleep = FakeClock(), FakeSleep()
    meetings = FakeMeetings({**LIVE, "1234": (True, False)})
    errors: list[Exception] = []
    async with zoom(meetings, clock=clock) as z, client_for(z.base_url, clock=clock, sleep=sleep) as c:
        await c.start("85746065432")
        z.force_rate_limit(1, retry_after=2)
        await c.pause("85746065432")
        z.revoke_tokens()
        await c.resume("85746065432")
        clock.advance(5000)
        await c.stop("85746065432")
        for mid in ("1234", "777"):
            try:
                await c.start(mid)
            except ControlError as exc:
                errors.append(exc)
        tokens = list(z.issued_tokens)
        reprs = [repr(c), str(c), repr(c._credentials), str(c._credentials), repr(c._token), repr(z)]
    bad = ControlCredentials(ACCOUNT_ID, API_CLIENT_ID, "another-secret-value")
    async with zoom(FakeMeetings()) as z2, client_for(z2.base_url, credentials=bad) as c2:
        try:
            await c2.start("1")
        except ControlError as exc:
            errors.append(exc)
    assert len(errors) == 3 and len(tokens) == 3 and caplog.records
    haystack = caplog.text + "".join(reprs) + "".join(f"{e!r}{e}" for e in errors)
    for secret in (API_CLIENT_SECRET, ACCOUNT_ID, "another-secret-value", *tokens):
        assert secret not in haystack
    assert "***" in repr(c._credentials)
