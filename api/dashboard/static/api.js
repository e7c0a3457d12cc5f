// Calls to the jobsched API (same origin), with the token when one is kept.
// A 401 opens the sign-in prompt and the call is made again with the token
// given there, so no page needs to know whether the API wants a token.

import { askForToken, storedToken } from "./signin.js";

export class ApiError extends Error {
  constructor(status, body) {
    const detail = (body && body.error) || {};
    super(detail.message || `the API answered ${status}`);
    this.status = status;
    this.code = detail.code || "error";
    this.field = detail.field || null;
  }
}

function url(path, query) {
  // "./" keeps a path such as "jobs:overview" from reading as a URL scheme.
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query || {})) {
    if (value != null && value !== "") params.set(key, String(value));
  }
  const search = params.toString();
  return `./${path}${search ? `?${search}` : ""}`;
}

// `accept`: statuses other than 2xx whose body is an answer, such as the
// 503 of /health, which says what is down.
export async function call(method, path, { query, body, accept = [] } = {}) {
  for (;;) {
    const token = storedToken();
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(url(path, query), {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiError(0, { error: { message: "the API does not answer" } });
    }
    if (response.status === 401) {
      await askForToken(token);
      continue;
    }
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (response.ok || accept.includes(response.status)) return data;
    throw new ApiError(response.status, data);
  }
}

export const get = (path, query, options = {}) => call("GET", path, { query, ...options });
export const post = (path, body) => call("POST", path, { body });
export const put = (path, body) => call("PUT", path, { body });
export const del = (path) => call("DELETE", path);

export const id = encodeURIComponent;
