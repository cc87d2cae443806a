// Create and edit an LLM with several endpoints. Keys and secret header values are write-only:
// the form shows the stored hint and sends a value only when one is typed (an endpoint that
// keeps its id and sends no key keeps its stored key; so does an empty secret header).
import type { MessageInitShape } from "@bufbuild/protobuf";
import { h, field, clear } from "./dom.js";
import { ApiSpec, type Endpoint, type Llm, type LlmSchema } from "./gen/switchboard/v1/llm_pb.js";
import { registry, problem } from "./api.js";
import { problemView } from "./problem_view.js";
import { ReportView } from "./validation.js";
import type { ValidationReport } from "./gen/switchboard/v1/registry_pb.js";

type LlmInit = MessageInitShape<typeof LlmSchema>;

const SPECS: [ApiSpec, string][] = [
  [ApiSpec.OPENAI, "OpenAI Chat Completions (vLLM, Ollama, llama.cpp…)"],
  [ApiSpec.AZURE_OPENAI, "Azure OpenAI"], [ApiSpec.GEMINI, "Google Gemini"], [ApiSpec.GROQ, "Groq"],
];

interface HeaderRow { el: HTMLElement; name: HTMLInputElement; value: HTMLInputElement; secret: HTMLInputElement }

class EndpointForm {
  readonly el: HTMLFieldSetElement;
  private spec = h("select", { name: "apiSpec" });
  private baseUrl = h("input", { name: "baseUrl", type: "url", required: true, placeholder: "https://host/v1", autocomplete: "off" });
  private model = h("input", { name: "model", required: true, autocomplete: "off" });
  private apiKey = h("input", { name: "apiKey", type: "password", autocomplete: "new-password" });
  private apiVersion = h("input", { name: "apiVersion", placeholder: "e.g. 2024-10-21", autocomplete: "off" });
  private label = h("input", { name: "label", placeholder: "e.g. eu-west", autocomplete: "off" });
  private priority = h("input", { name: "priority", type: "number", min: 0, step: 1 });
  private window = h("input", { name: "contextWindowTokens", type: "number", min: 0, step: 1 });
  private headers: HeaderRow[] = [];
  private headerList = h("div", { class: "headers" });
  readonly id: string;

  constructor(ep: Endpoint | null, index: number, onRemove: (f: EndpointForm) => void) {
    this.id = ep?.id ?? "";
    for (const [value, text] of SPECS) this.spec.append(h("option", { value }, text));
    this.spec.value = String(ep?.apiSpec ?? ApiSpec.OPENAI);
    this.baseUrl.value = ep?.baseUrl ?? "";
    this.model.value = ep?.model ?? "";
    this.apiVersion.value = ep?.apiVersion ?? "";
    this.label.value = ep?.label ?? "";
    this.priority.value = ep?.priority !== undefined ? String(ep.priority) : "";
    this.window.value = ep?.contextWindowTokens ? String(ep.contextWindowTokens) : "";
    const keyHelp = ep?.apiKeyHint
      ? `Stored key ${ep.apiKeyHint} (write-only). Leave empty to keep it.`
      : "Write-only: stored encrypted, never shown again.";
    this.apiKey.required = !ep;
    for (const header of ep?.extraHeaders ?? []) {
      this.addHeader(header.name, header.secret ? "" : header.valueHint, header.secret,
        header.secret ? header.valueHint : "");
    }
    const addHeader = h("button", { type: "button", class: "small", onclick: () => this.addHeader("", "", false, "") }, "Add header");
    this.el = h("fieldset", { class: "endpoint", "data-endpoint-id": this.id },
      h("legend", {}, `Endpoint ${index + 1}`, this.id ? h("small", { class: "muted" }, ` ${this.id}`) : null),
      h("div", { class: "grid" },
        field("API spec", this.spec), field("Base URL", this.baseUrl), field("Model", this.model),
        field("API key", this.apiKey, keyHelp), field("Label", this.label),
        field("Priority", this.priority, "Lower is preferred; empty: tier 0."),
        field("Context window (tokens)", this.window, "0 or empty: unknown."),
        field("Azure api-version", this.apiVersion, "Azure OpenAI only.")),
      h("div", { class: "header-block" }, h("h5", {}, "Extra headers"), this.headerList, addHeader),
      h("button", { type: "button", class: "danger small", onclick: () => onRemove(this) }, `Remove endpoint ${index + 1}`));
  }

  private addHeader(name: string, value: string, secret: boolean, hint: string): void {
    const row: HeaderRow = {
      el: h("div", { class: "header-row" }),
      name: h("input", { name: "headerName", value: name, autocomplete: "off" }),
      value: h("input", { name: "headerValue", type: secret ? "password" : "text", autocomplete: "off" }),
      secret: h("input", { name: "headerSecret", type: "checkbox" }),
    };
    row.value.value = value;
    row.secret.checked = secret;
    row.secret.addEventListener("change", () => { row.value.type = row.secret.checked ? "password" : "text"; });
    const remove = h("button", { type: "button", class: "small", onclick: () => {
      row.el.remove();
      this.headers = this.headers.filter((r) => r !== row);
    } }, "Remove");
    row.el.append(field("Header name", row.name),
      field("Value", row.value, hint ? `Stored secret ${hint}; leave empty to keep.` : undefined),
      h("div", { class: "field check" }, row.secret, h("label", { for: (row.secret.id ||= `s${Math.random().toString(36).slice(2)}`) }, "Secret (write-only)")),
      remove);
    this.headers.push(row);
    this.headerList.append(row.el);
  }

  value(): MessageInitShape<typeof import("./gen/switchboard/v1/llm_pb.js").EndpointSchema> {
    return {
      id: this.id, apiSpec: Number(this.spec.value), baseUrl: this.baseUrl.value.trim(),
      model: this.model.value.trim(), apiKey: this.apiKey.value, apiVersion: this.apiVersion.value.trim(),
      label: this.label.value.trim(),
      priority: this.priority.value === "" ? undefined : Number(this.priority.value),
      contextWindowTokens: this.window.value === "" ? 0 : Number(this.window.value),
      extraHeaders: this.headers.map((r) => ({ name: r.name.value.trim(), value: r.value.value, secret: r.secret.checked })),
    };
  }

  // Write-only inputs are emptied once sent, so no key stays in the page.
  forgetSecrets(): void {
    this.apiKey.value = "";
    for (const r of this.headers) if (r.secret.checked) r.value.value = "";
  }

  labelText(): string {
    return this.label.value || this.model.value || this.baseUrl.value || "endpoint";
  }
}

export class LlmEditor {
  readonly el: HTMLFormElement;
  private name = h("input", { name: "displayName", required: true, maxlength: 200, autocomplete: "off" });
  private skip = h("input", { name: "skipValidation", type: "checkbox" });
  private endpoints: EndpointForm[] = [];
  private list = h("div", { class: "endpoints" });
  private status = h("div", { class: "status", "aria-live": "polite" });
  private report: ReportView;

  constructor(private llm: Llm | null, private onSaved: (llm: Llm, report: ValidationReport | null) => void,
    private onDeleted: () => void, justSaved: { report: ValidationReport | null } | null = null) {
    this.report = new ReportView((id) => this.labelOf(id));
    this.name.value = llm?.displayName ?? "";
    for (const ep of llm?.endpoints ?? [null]) this.addEndpoint(ep);
    const title = llm ? `Edit ${llm.displayName}` : "New LLM";
    this.el = h("form", { class: "editor", "aria-label": title, novalidate: true },
      h("h3", {}, title),
      field("Display name", this.name),
      this.list,
      h("button", { type: "button", onclick: () => this.addEndpoint(null) }, "Add endpoint"),
      h("div", { class: "field check" }, this.skip, h("label", { for: (this.skip.id = "skip-validation") }, "Skip validation")),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "secondary", onclick: () => void this.check() }, "Check endpoints"),
        h("button", { type: "submit", class: "primary" }, llm ? "Save changes" : "Create LLM"),
        llm ? h("button", { type: "button", class: "danger", onclick: () => void this.remove() }, "Delete LLM") : null),
      this.status, this.report.el);
    if (justSaved) {
      this.say(h("p", { class: "ok", role: "status" }, `Saved ${llm?.displayName ?? ""} (${llm?.id ?? ""})` +
        (justSaved.report ? "." : " without validation.")));
      if (justSaved.report) this.report.report(justSaved.report, (i) => this.indexLabel(i));
    }
    this.el.addEventListener("submit", (e) => { e.preventDefault(); void this.save(); });
  }

  private indexLabel(i: number): string {
    const form = this.endpoints[i];
    return form ? `Endpoint ${i + 1} (${form.labelText()})` : `Endpoint ${i + 1}`;
  }

  private labelOf(endpointId: string): string {
    const i = endpointId.startsWith("#") ? Number(endpointId.slice(1)) : this.endpoints.findIndex((f) => f.id === endpointId);
    const form = this.endpoints[i];
    return form ? `Endpoint ${i + 1} (${form.labelText()})` : endpointId;
  }

  private addEndpoint(ep: Endpoint | null): void {
    const form = new EndpointForm(ep, this.endpoints.length, (f) => {
      this.endpoints = this.endpoints.filter((x) => x !== f);
      f.el.remove();
    });
    this.endpoints.push(form);
    this.list.append(form.el);
  }

  private value(): LlmInit {
    return { id: this.llm?.id ?? "", displayName: this.name.value.trim(), etag: this.llm?.etag ?? "",
      endpoints: this.endpoints.map((f) => f.value()) };
  }

  private say(node: Node | string): void {
    clear(this.status);
    this.status.append(node);
    if (node instanceof Element) node.scrollIntoView({ block: "nearest" });
  }

  private async check(): Promise<void> {
    this.say("");
    await this.report.run({ target: { case: "llm", value: this.value() } });
  }

  private async save(): Promise<void> {
    this.say("Saving… validation runs first unless skipped.");
    this.report.reset("");
    const llm = this.value();
    try {
      const res = this.llm
        ? await registry.updateLlm({ llm, updateMask: { paths: ["display_name", "endpoints"] }, skipValidation: this.skip.checked })
        : await registry.createLlm({ llm, skipValidation: this.skip.checked });
      for (const f of this.endpoints) f.forgetSecrets();
      this.markInvalid([]);
      if (res.llm) this.onSaved(res.llm, res.validation ?? null);
    } catch (err) {
      const p = problem(err);
      this.say(problemView(p, this.llm ? "Not saved" : "Not registered"));
      this.markInvalid(p.violations.map((v) => v.field));
      if (p.report) this.report.report(p.report, (i) => this.indexLabel(i));
    }
  }

  // Marks the inputs that field violations name (``llm.endpoints[1].base_url``) invalid.
  private markInvalid(fields: string[]): void {
    for (const el of this.el.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    const camel = (name: string) => name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
    for (const f of fields) {
      const m = /^llm\.endpoints\[(\d+)\]\.([a-z_]+)/.exec(f);
      const input = f.startsWith("llm.display_name") ? this.name
        : m ? this.endpoints[Number(m[1])]?.el.querySelector(`[name=${camel(m[2])}]`) : null;
      input?.setAttribute("aria-invalid", "true");
    }
  }

  private async remove(): Promise<void> {
    if (!this.llm || !window.confirm(`Delete ${this.llm.displayName}? Its sessions end.`)) return;
    try {
      await registry.deleteLlm({ llmId: this.llm.id, etag: this.llm.etag });
      this.onDeleted();
    } catch (err) {
      this.say(problemView(problem(err), "Not deleted"));
    }
  }
}
