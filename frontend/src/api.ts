// Typed client for the PathDesk REST API (same origin, Django session auth + CSRF).

export type Role = string;
export type Priority = "routine" | "urgent" | "stat";
export type CaseStatus = "received" | "in_review" | "signed_out";
export type SlideStatus = "pending" | "ready" | "failed";

export interface Department {
  id: number;
  name: string;
}

export interface User {
  id: number;
  username: string;
  role: Role;
  departments: Department[];
  is_admin: boolean;
}

export interface Case {
  id: number;
  accession_number: string;
  patient_pseudonym: string;
  organ: string;
  clinical_notes: string;
  priority: Priority;
  status: CaseStatus;
  assignee: number | null;
  department: number;
  received_at: string;
  due_at: string | null;
}

export interface Slide {
  id: number;
  case: number;
  filename: string;
  stain: string;
  status: SlideStatus;
  error: string | null;
  width: number | null;
  height: number | null;
  mpp_x: number | null;
  mpp_y: number | null;
  objective_power: number | null;
  format: string | null;
  thumbnail_url: string | null;
  dzi_url: string | null;
  sha256: string;
  size: number;
  created_at: string;
}

export interface Page<T> {
  count: number;
  next: string | null;
  previous: string | null;
  results: T[];
}

/** An HTTP error from the API, with the server's human-readable message. */
export class ApiError extends Error {
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }

  /** Not logged in (DRF answers 403 rather than 401 for session auth without credentials). */
  get isAuth(): boolean {
    return this.status === 401 || this.status === 403;
  }
}

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

function readCookie(name: string): string | null {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return null;
}

function csrfHeader(): Record<string, string> {
  const token = readCookie("csrftoken");
  return token ? { "X-CSRFToken": token } : {};
}

/**
 * Turn an error body into one sentence: our API's `{"error": ...}`, DRF's `{"detail": ...}`,
 * or DRF field errors `{"field": ["msg", ...]}`.
 */
export function errorMessage(status: number, body: unknown, fallbackText = ""): string {
  if (body && typeof body === "object") {
    const obj = body as Record<string, unknown>;
    if (typeof obj.error === "string" && obj.error) return obj.error;
    if (typeof obj.detail === "string" && obj.detail) return obj.detail;
    const parts: string[] = [];
    for (const [field, value] of Object.entries(obj)) {
      const msgs = Array.isArray(value) ? value.filter((v) => typeof v === "string") : [];
      if (msgs.length) parts.push(field === "non_field_errors" ? msgs.join(" ") : `${field}: ${msgs.join(" ")}`);
    }
    if (parts.length) return parts.join("; ");
  }
  if (status === 413) return "The file is too large for the server to accept.";
  if (status === 0) return "The server could not be reached. Check your connection and try again.";
  const text = fallbackText.trim();
  // An HTML error page (proxy, Django debug page) is not a message for a person.
  if (text && !text.startsWith("<") && text.length < 300) return text;
  return `Request failed (HTTP ${status}).`;
}

/** Keep only path + query of a URL the API returned (DRF's `next` is absolute), so we stay same-origin. */
export function sameOriginPath(url: string): string {
  const parsed = new URL(url, window.location.origin);
  return parsed.pathname + parsed.search;
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (UNSAFE.has(method)) Object.assign(headers, csrfHeader());
  if (body !== undefined) headers["Content-Type"] = "application/json";

  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, errorMessage(0, null));
  }

  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let data: unknown = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) throw new ApiError(response.status, errorMessage(response.status, data, text));
  return data as T;
}

async function allPages<T>(path: string): Promise<T[]> {
  const items: T[] = [];
  let next: string | null = path;
  while (next) {
    const page: Page<T> = await request<Page<T>>("GET", next);
    items.push(...page.results);
    next = page.next ? sameOriginPath(page.next) : null;
  }
  return items;
}

// --- auth ---------------------------------------------------------------------------------------

/** Sets the `csrftoken` cookie; call before the first unsafe request. */
export function ensureCsrf(): Promise<unknown> {
  return request("GET", "/api/auth/csrf/");
}

export function login(username: string, password: string): Promise<User> {
  return request<User>("POST", "/api/auth/login/", { username, password });
}

export function logout(): Promise<void> {
  return request<void>("POST", "/api/auth/logout/");
}

/** The logged-in user, or null when the session is anonymous. */
export async function currentUser(): Promise<User | null> {
  try {
    return await request<User>("GET", "/api/auth/me/");
  } catch (err) {
    if (err instanceof ApiError && err.isAuth) return null;
    throw err;
  }
}

// --- cases --------------------------------------------------------------------------------------

/** One page of the worklist; pass the previous page's `next` to continue. */
export function listCases(next?: string): Promise<Page<Case>> {
  return request<Page<Case>>("GET", next ? sameOriginPath(next) : "/api/cases/");
}

export function getCase(id: number): Promise<Case> {
  return request<Case>("GET", `/api/cases/${id}/`);
}

// --- slides -------------------------------------------------------------------------------------

export function listSlides(caseId: number): Promise<Slide[]> {
  return allPages<Slide>(`/api/slides/?case=${encodeURIComponent(caseId)}`);
}

export function getSlide(id: number): Promise<Slide> {
  return request<Slide>("GET", `/api/slides/${id}/`);
}

export interface UploadHandle {
  promise: Promise<Slide>;
  abort(): void;
}

/**
 * Upload a slide file with XMLHttpRequest (fetch has no upload progress).
 * `onProgress` gets a fraction in [0, 1], or null when the total size is unknown.
 */
export function uploadSlide(
  caseId: number,
  file: File,
  onProgress: (fraction: number | null) => void,
): UploadHandle {
  const xhr = new XMLHttpRequest();
  const promise = new Promise<Slide>((resolve, reject) => {
    const form = new FormData();
    form.append("case", String(caseId));
    form.append("file", file, file.name);

    xhr.open("POST", "/api/slides/");
    xhr.setRequestHeader("Accept", "application/json");
    for (const [key, value] of Object.entries(csrfHeader())) xhr.setRequestHeader(key, value);

    xhr.upload.addEventListener("progress", (ev) => {
      onProgress(ev.lengthComputable && ev.total > 0 ? ev.loaded / ev.total : null);
    });
    xhr.addEventListener("load", () => {
      let data: unknown = null;
      try {
        data = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch {
        data = null;
      }
      if (xhr.status >= 200 && xhr.status < 300 && data) resolve(data as Slide);
      else reject(new ApiError(xhr.status, errorMessage(xhr.status, data, xhr.responseText)));
    });
    // A server that refuses a large body early (413) may reset the connection mid-upload.
    xhr.addEventListener("error", () =>
      reject(
        new ApiError(
          0,
          "The upload stopped before the server answered (the file may be too large, or the connection dropped).",
        ),
      ),
    );
    xhr.addEventListener("abort", () => reject(new ApiError(0, "Upload cancelled.")));
    xhr.send(form);
  });
  return { promise, abort: () => xhr.abort() };
}

// --- analyses (Ask OmniPath) --------------------------------------------------------------------

export type AnalysisStatus = "queued" | "running" | "succeeded" | "failed" | "cancelled";
export type AnalysisPhase = "queued" | "extracting" | "selecting" | "generating" | "done";

/** A box in level-0 pixels: [x, y, width, height]. */
export type Box = [number, number, number, number];

/** A region the model looked at closely (prompt-guided detail completion). */
export interface AnalysisRegion {
  box: Box;
  score: number;
  magnification: number;
}

export interface Analysis {
  id: number;
  slide: number;
  case: number;
  requester: number | null;
  requester_name: string | null;
  task: string;
  prompt: string;
  region: Box | null;
  max_new_tokens: number | null;
  backend: string;
  model: string;
  /** Answered (or to be answered) by tiny random weights: the text is noise. */
  demo_weights: boolean;
  /** Set with `demo_weights`: what to tell the reader. */
  notice: string | null;
  priority: Priority;
  status: AnalysisStatus;
  phase: AnalysisPhase;
  progress: number;
  text: string;
  regions: AnalysisRegion[];
  /** Annotations made from the model's segmentation masks for this job. */
  annotation_ids: number[];
  error: string;
  attempt: number;
  cancel_requested: boolean;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  stream_url: string;
}

/** The configured model (`GET /api/analyses/model/`). */
export interface ModelInfo {
  backend: string;
  name: string;
  tasks: string[];
  demo_weights: boolean;
  available: boolean;
  problem: string | null;
  /** Request limits; absent from servers that do not send them. */
  prompt_max_chars?: number;
  max_new_tokens_limit?: number;
}

export interface AnalysisRequest {
  slide: number;
  task: string;
  prompt: string;
  region?: Box;
  max_new_tokens?: number;
}

export function getModelInfo(): Promise<ModelInfo> {
  return request<ModelInfo>("GET", "/api/analyses/model/");
}

export function createAnalysis(body: AnalysisRequest): Promise<Analysis> {
  return request<Analysis>("POST", "/api/analyses/", body);
}

export function getAnalysis(id: number): Promise<Analysis> {
  return request<Analysis>("GET", `/api/analyses/${id}/`);
}

/** One page of a slide's analyses, newest first; pass the previous page's `next` to continue. */
export function listAnalyses(slideId: number, next?: string): Promise<Page<Analysis>> {
  return request<Page<Analysis>>(
    "GET",
    next ? sameOriginPath(next) : `/api/analyses/?slide=${encodeURIComponent(slideId)}`,
  );
}

/** 200 when a queued job was cancelled at once, 202 when a running one will stop within a second. */
export function cancelAnalysis(id: number): Promise<Analysis> {
  return request<Analysis>("POST", `/api/analyses/${id}/cancel/`);
}

/** The websocket URL of a path the API returned (`stream_url`), on this page's host. */
export function websocketUrl(path: string): string {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${window.location.host}${path}`;
}
