"""Access tokens belong to a session: the refresh family they were issued with (``sid``).

Ending a session (logout, or a replayed refresh token revoking its family) ends every access
token issued in it at once, not only the one that asked: the bearer lookup refuses a token
whose family has no live refresh token left. Without that, an access token from earlier in
the session, or one a thief obtained by refreshing first, would keep working for up to its
15 minutes.
"""

import threading

import httpx2

from tests.support import Account, assert_unauthorized, bearer, log_in

RACES = 15  # refresh-versus-logout rounds; a few finish in either order


def refresh(client: httpx2.Client, token: str) -> httpx2.Response:
    return client.post("/auth/refresh", json={"refresh_token": token})


def me(client: httpx2.Client, access_token: str) -> httpx2.Response:
    return client.get("/users/me", headers=bearer(access_token))


def test_logout_ends_the_access_tokens_issued_earlier_in_the_session(
    client: httpx2.Client, user: Account
) -> None:
    pair = refresh(client, user.refresh_token).json()
    assert me(client, user.access_token).status_code == 200  # refreshing ends nothing
    response = client.post(
        "/auth/logout",
        json={"refresh_token": pair["refresh_token"]},
        headers=bearer(pair["access_token"]),
    )
    assert response.status_code == 204
    assert_unauthorized(me(client, user.access_token))  # the first of the session
    assert_unauthorized(me(client, pair["access_token"]))


def test_logout_leaves_the_access_tokens_of_other_sessions_working(
    client: httpx2.Client, user: Account
) -> None:
    other = log_in(client, user.email, user.password)
    response = client.post(
        "/auth/logout", json={"refresh_token": user.refresh_token}, headers=user.headers
    )
    assert response.status_code == 204
    assert me(client, other["access_token"]).status_code == 200


def test_logout_takes_the_refresh_token_of_the_same_session_only(
    client: httpx2.Client, user: Account
) -> None:
    """A logout that named one session's access token and another's refresh token ended the
    second and only denied the first token: the first session (refreshed since) lived on."""
    other = log_in(client, user.email, user.password)
    pair = refresh(client, user.refresh_token).json()  # the first session goes on
    response = client.post(
        "/auth/logout", json={"refresh_token": other["refresh_token"]}, headers=user.headers
    )
    assert_unauthorized(response)
    # Nothing was ended: both sessions work, and each logs out with its own pair.
    assert me(client, pair["access_token"]).status_code == 200
    assert me(client, other["access_token"]).status_code == 200
    assert refresh(client, other["refresh_token"]).status_code == 200
    response = client.post(
        "/auth/logout",
        json={"refresh_token": pair["refresh_token"]},
        headers=bearer(pair["access_token"]),
    )
    assert response.status_code == 204
    assert_unauthorized(me(client, user.access_token))


def test_a_replayed_refresh_token_ends_the_thiefs_access_token(
    client: httpx2.Client, user: Account
) -> None:
    """The thief refreshes first with a stolen token; when the victim's app then presents the
    same (now spent) token, the family is revoked, and the thief's access token with it."""
    thief = refresh(client, user.refresh_token).json()
    assert me(client, thief["access_token"]).status_code == 200
    assert_unauthorized(refresh(client, user.refresh_token))  # the victim's replay
    assert_unauthorized(me(client, thief["access_token"]))
    assert_unauthorized(me(client, user.access_token))
    assert_unauthorized(refresh(client, thief["refresh_token"]))


def refresh_and_log_out_at_once(
    client: httpx2.Client, session: dict[str, str]
) -> tuple[httpx2.Response, httpx2.Response]:
    """Refresh and logout of ``session`` from two threads released together."""
    barrier = threading.Barrier(2)
    answers: dict[str, httpx2.Response] = {}

    def send(name: str) -> None:
        barrier.wait()
        if name == "refresh":
            answers[name] = refresh(client, session["refresh_token"])
        else:
            answers[name] = client.post(
                "/auth/logout",
                json={"refresh_token": session["refresh_token"]},
                headers=bearer(session["access_token"]),
            )

    threads = [threading.Thread(target=send, args=(name,)) for name in ("refresh", "logout")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers["refresh"], answers["logout"]


def test_a_refresh_racing_a_logout_leaves_no_working_access_token(
    client: httpx2.Client, user: Account
) -> None:
    """Whichever of the two wins, no access token of the session works once both have
    answered: not the one that logged out, nor one the refresh minted meanwhile."""
    for _ in range(RACES):
        session = log_in(client, user.email, user.password)
        refreshed, logged_out = refresh_and_log_out_at_once(client, session)
        assert logged_out.status_code == 204, logged_out.text
        minted = [session["access_token"]]
        if refreshed.status_code == 200:
            minted.append(refreshed.json()["access_token"])
            assert_unauthorized(client.post(
                "/auth/refresh", json={"refresh_token": refreshed.json()["refresh_token"]}
            ))  # fmt: skip
        else:
            assert_unauthorized(refreshed)
        for access_token in minted:
            assert_unauthorized(me(client, access_token))
