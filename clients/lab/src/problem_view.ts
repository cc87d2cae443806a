// An error as the server described it: code, ErrorInfo reason, message, field violations,
// RetryInfo and the request id to quote.
import { h } from "./dom.js";
import type { Problem } from "./api.js";

export function problemView(p: Problem, title = "The request failed"): HTMLElement {
  return h("div", { class: "problem", role: "alert" },
    h("strong", {}, title, ": "),
    h("span", { class: "code" }, p.code), p.reason ? h("span", { class: "reason" }, p.reason) : null,
    h("p", { class: "message" }, p.message),
    p.violations.length ? h("ul", { class: "violations", "aria-label": "Field violations" },
      ...p.violations.map((v) => h("li", {}, h("code", {}, v.field), " ", v.description))) : null,
    p.retryAfterS !== null ? h("p", {}, `Retry after ${p.retryAfterS.toFixed(1)} s.`) : null,
    p.requestId ? h("p", { class: "muted" }, `Request id ${p.requestId}`) : null);
}
