// The two pages the mailed links open: /reset-password and /verify-email (issue 13).
//
// The link carries its token in the fragment (#token=…), which a browser never sends to a
// server: it reaches no access log and no Referer. This script reads it, takes it out of the
// address bar at once (so it is left in no history entry, bookmark or screen share), and
// posts it to the API with what the person typed. A file, not an inline <script>, so the
// pages' Content-Security-Policy can allow scripts from 'self' only.
//
// Every text shown comes from a constant or the API, and goes in with textContent: never
// innerHTML, which would run markup an answer carried.
"use strict";

// Relative to the page, like the page's own links: they work whether the service is at the
// root of its host or under the path AUTHTWIN_PUBLIC_URL names.
const RESET_URL = "api/v1/auth/password-reset/confirm";
const VERIFY_URL = "api/v1/auth/verify";

// Also what a reload shows: the token left the address bar when the page first read it.
const MISSING_TOKEN =
  "This page needs the link from your email, in full. If you opened it already and " +
  "reloaded this page, open the link from the email again.";
const UNREACHABLE = "The server could not be reached. Check your connection and try again.";
// 400 from either route: the token will never work again, so the form stays off.
const USED_TOKEN = 400;

function takeToken() {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  if (location.hash) {
    history.replaceState(null, "", location.pathname + location.search);
  }
  return token;
}

function show(text, kind) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = kind;
  status.hidden = false;
}

// What the API said went wrong: its detail string, or each message of a validation error.
function errorText(response, body) {
  const detail = body && body.detail;
  if (typeof detail === "string") {
    return detail;
  }
  if (Array.isArray(detail) && detail.length > 0) {
    return detail.map((error) => String(error.msg)).join(" ");
  }
  return `The request failed (HTTP ${response.status}). Please try again.`;
}

// POSTs JSON to the API; resolves to the response and its JSON body (null when it has none).
async function postJson(url, payload) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(payload),
    credentials: "omit", // the API authenticates by bearer token, never by cookie
    cache: "no-store",
  });
  const type = response.headers.get("Content-Type") || "";
  const body = type.startsWith("application/json") ? await response.json() : null;
  return { response, body };
}

// Disables the form while its request runs (no double submit), and for good once the token
// is spent or refused; any other failure (a password the policy refuses, a 429, no network)
// turns it back on for another try.
async function submit(fields, url, payload, onSuccess) {
  fields.disabled = true;
  show("Sending…", "");
  let result;
  try {
    result = await postJson(url, payload);
  } catch {
    show(UNREACHABLE, "error");
    fields.disabled = false;
    return;
  }
  const { response, body } = result;
  if (response.ok) {
    fields.hidden = true; // done: nothing left to press
    onSuccess(body);
    return;
  }
  show(errorText(response, body), "error");
  fields.disabled = response.status === USED_TOKEN;
}

function startReset(form, token) {
  const fields = document.getElementById("reset-fields");
  const password = document.getElementById("new-password");
  const again = document.getElementById("confirm-password");
  fields.disabled = false;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (password.value !== again.value) {
      show("The two passwords are not the same.", "error");
      again.focus();
      return;
    }
    const payload = { token, new_password: password.value };
    submit(fields, RESET_URL, payload, () => {
      password.value = again.value = "";
      show(
        "Your password was changed. Every session was signed out; log in with the new password.",
        "success",
      );
    });
  });
}

// A button, not a request on load: verifying changes the account, and a page load proves only
// that something fetched the link. Mail scanners and link previews open links before the
// person does, and some of them run scripts; a click is the person.
function startVerify(form, token) {
  const fields = document.getElementById("verify-fields");
  fields.disabled = false;
  const password = document.getElementById("signup-password");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    // A link that finishes a signup (AUTHTWIN_REQUIRE_VERIFIED_LOGIN) wants the password
    // chosen at signup, and one that moves an account to this address wants that account's:
    // only whoever asked can finish either. Other links need none.
    const payload = password.value ? { token, password: password.value } : { token };
    const verified = (user) => {
      password.value = "";
      show(`Your address ${user.email} is verified.`, "success");
    };
    // Without it, such a link answers 422 (the password is missing), and the form stays open.
    submit(fields, VERIFY_URL, payload, verified);
  });
}

function start() {
  const token = takeToken();
  const reset = document.getElementById("reset-form");
  const verify = document.getElementById("verify-form");
  if (!token) {
    show(MISSING_TOKEN, "error");
  } else if (reset) {
    startReset(reset, token);
  } else if (verify) {
    startVerify(verify, token);
  }
}

// A link pasted into this tab differs from the page only in its fragment, which the browser
// takes as a jump within the page, not a new one: load it afresh, to read its token. (Taking
// the token out with replaceState fires no hashchange.)
window.addEventListener("hashchange", () => location.reload());
start(); // deferred: the document is parsed by now
