// Validation reports, live: ValidateLlm streams check_started / check_finished events per
// endpoint, then one report. The same view shows the report of a refused registration.
import { h, append, clear, ms } from "./dom.js";
import { CheckStatus, type CheckResult, type ValidateLlmRequest, type ValidationReport } from "./gen/switchboard/v1/registry_pb.js";
import { registry, problem } from "./api.js";
import { problemView } from "./problem_view.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ValidateLlmRequestSchema } from "./gen/switchboard/v1/registry_pb.js";

const STATUS: Record<number, string> = {
  [CheckStatus.PASS]: "PASS", [CheckStatus.WARN]: "WARN", [CheckStatus.FAIL]: "FAIL",
  [CheckStatus.SKIPPED]: "SKIPPED", [CheckStatus.UNSPECIFIED]: "?",
};

interface Row { tr: HTMLTableRowElement }

export class ReportView {
  readonly el = h("section", { class: "report", "aria-live": "polite", "aria-label": "Validation report" });
  private tables = new Map<string, HTMLTableSectionElement>();
  private headings = new Map<string, HTMLElement>();
  private rows = new Map<string, Row>();
  private summary = h("p", { class: "summary" });

  constructor(private labels: (endpointId: string) => string) {
    this.el.append(this.summary);
  }

  reset(message: string): void {
    clear(this.el);
    this.tables.clear();
    this.headings.clear();
    this.rows.clear();
    this.summary = h("p", { class: "summary" }, message);
    this.el.append(this.summary);
  }

  private body(endpointId: string): HTMLTableSectionElement {
    let body = this.tables.get(endpointId);
    if (!body) {
      body = h("tbody");
      const heading = h("h4", {}, this.labels(endpointId));
      this.tables.set(endpointId, body);
      this.headings.set(endpointId, heading);
      this.el.append(heading,
        h("table", { class: "checks" },
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Check"), h("th", { scope: "col" }, "Result"),
            h("th", { scope: "col" }, "Observed"), h("th", { scope: "col" }, "Expected"),
            h("th", { scope: "col" }, "Fix"))), body));
    }
    return body;
  }

  started(endpointId: string, check: string): void {
    const tr = h("tr", { "data-check": check },
      h("td", {}, h("code", {}, check)), h("td", {}, h("span", { class: "badge running" }, "RUNNING")),
      h("td"), h("td"), h("td"));
    this.body(endpointId).append(tr);
    this.rows.set(`${endpointId}/${check}`, { tr });
  }

  finished(r: CheckResult): void {
    const key = `${r.endpointId}/${r.check}`;
    let row = this.rows.get(key);
    if (!row) {
      this.started(r.endpointId, r.check);
      row = this.rows.get(key)!;
    }
    const status = STATUS[r.status] ?? "?";
    const cells = [
      h("td", {}, h("code", {}, r.check), r.required ? null : h("small", { class: "muted" }, " optional")),
      h("td", {}, h("span", { class: `badge ${status.toLowerCase()}` }, status)),
      h("td", {}, r.observed), h("td", {}, r.expected), h("td", { class: "fix" }, r.hint),
    ];
    clear(row.tr);
    row.tr.append(...cells);
    row.tr.className = `status-${status.toLowerCase()}`;
  }

  // Report endpoints come in the LLM's endpoint order: ``byIndex`` names them by position
  // (a new LLM's endpoints have no id in the form yet).
  report(report: ValidationReport, byIndex?: (i: number) => string): void {
    report.endpoints.forEach((ep, i) => {
      for (const check of ep.checks) this.finished(check);
      const ttft = ep.timeToFirstToken;
      const heading = this.headings.get(ep.endpointId);
      if (heading) {
        clear(heading);
        append(heading, byIndex ? byIndex(i) : this.labels(ep.endpointId), " ",
          h("span", { class: `badge ${ep.passed ? "pass" : "fail"}` }, ep.passed ? "passed" : "failed"),
          ttft ? h("small", { class: "muted" }, ` first token ${ms(Number(ttft.seconds) * 1000 + ttft.nanos / 1e6)}`) : null);
      }
    });
    this.summary.textContent = report.passed
      ? "Validation passed: every required check of every endpoint passed."
      : "Validation failed: fix the FAIL rows below (see the Fix column), then try again.";
    this.summary.className = `summary ${report.passed ? "ok" : "bad"}`;
  }

  // Streams ValidateLlm into this view; returns the report (null when the call failed).
  async run(request: MessageInitShape<typeof ValidateLlmRequestSchema>, signal?: AbortSignal
  ): Promise<ValidationReport | null> {
    this.reset("Validating… checks appear as they run.");
    try {
      for await (const ev of registry.validateLlm(request as ValidateLlmRequest, { signal })) {
        if (ev.event.case === "checkStarted") this.started(ev.event.value.endpointId, ev.event.value.check);
        if (ev.event.case === "checkFinished") this.finished(ev.event.value);
        if (ev.event.case === "report") {
          this.report(ev.event.value);
          return ev.event.value;
        }
      }
    } catch (err) {
      this.reset("");
      this.el.append(problemView(problem(err), "Validation could not run"));
    }
    return null;
  }
}
