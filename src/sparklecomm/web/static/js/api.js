// Small fetch wrapper: JSON in and out, the CSRF header, and RFC 9457 problems as errors.
const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

export class ApiError extends Error {
  constructor(problem) {
    super(problem.detail || problem.title || "request failed");
    this.problem = problem;
    this.status = problem.status;
    this.fieldErrors = Object.fromEntries((problem.errors || []).map((e) => [e.field, e.message]));
  }
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  const res = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 204) return null;
  const data = await res.json().catch(() => ({ status: res.status, detail: res.statusText }));
  if (!res.ok) {
    if (res.status === 401) window.location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
    throw new ApiError(data);
  }
  return data;
}
