// The Lab's shell: sign in, the list of the account's LLMs, and one LLM's tabs (Configure,
// Validate, Routing, Try it). Every call goes to LlmRegistry / Conversations over Connect.
import { h, clear, field } from "./dom.js";
import { registry, problem, signIn, signOut, signedIn } from "./api.js";
import { problemView } from "./problem_view.js";
import { LlmEditor } from "./editor.js";
import { ReportView } from "./validation.js";
import { RoutingView } from "./routing.js";
import { ChatView } from "./chat.js";
import type { Llm } from "./gen/switchboard/v1/llm_pb.js";
import type { ValidationReport } from "./gen/switchboard/v1/registry_pb.js";

const root = document.getElementById("app")!;
let llms: Llm[] = [];
let disposers: (() => void)[] = [];

function dispose(): void {
  for (const d of disposers) d();
  disposers = [];
}

function showSignIn(error: HTMLElement | null = null): void {
  dispose();
  clear(root);
  const key = h("input", { name: "apiKey", type: "password", required: true, autocomplete: "off" });
  const form = h("form", { class: "signin", "aria-label": "Sign in" },
    h("h1", {}, "Switchboard Lab"),
    h("p", {}, "Register, validate, watch and talk to your custom LLMs."),
    field("Switchboard API key", key, "Kept in this tab only (sessionStorage); Sign out forgets it."),
    h("button", { type: "submit", class: "primary" }, "Sign in"), error);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    signIn(key.value.trim());
    key.value = "";
    try {
      llms = (await registry.listLlms({ pageSize: 100 })).llms;
      showApp();
    } catch (err) {
      signOut();
      const p = problem(err);
      showSignIn(problemView(p, p.unauthenticated ? "That API key was refused" : "Could not sign in"));
    }
  });
  root.append(h("main", { class: "center" }, form));
  key.focus();
}

async function reload(): Promise<void> {
  llms = (await registry.listLlms({ pageSize: 100 })).llms;
}

function sidebar(selected: string): HTMLElement {
  const items = llms.map((l) => h("li", {},
    h("button", { type: "button", class: l.id === selected ? "llm current" : "llm", "aria-current": l.id === selected ? "page" : undefined,
      "data-llm-id": l.id, onclick: () => showLlm(l.id) },
    h("span", { class: "name" }, l.displayName),
    h("small", { class: "muted" }, `${l.endpoints.length} endpoint${l.endpoints.length === 1 ? "" : "s"}`))));
  return h("nav", { class: "sidebar", "aria-label": "LLMs" },
    h("h2", {}, "LLMs"),
    h("button", { type: "button", class: "primary", onclick: () => showNew() }, "New LLM"),
    items.length ? h("ul", { class: "llm-list" }, ...items)
      : h("p", { class: "empty muted" }, "No LLMs yet. Create one to register your model's endpoints."));
}

function frame(selected: string, content: HTMLElement): void {
  dispose();
  clear(root);
  root.append(
    h("header", { class: "top" }, h("h1", {}, "Switchboard Lab"),
      h("button", { type: "button", class: "secondary", onclick: () => { signOut(); llms = []; showSignIn(); } }, "Sign out")),
    h("div", { class: "layout" }, sidebar(selected), h("main", { id: "main", tabindex: -1 }, content)));
}

function showApp(): void {
  if (llms.length) {
    showLlm(llms[0].id);
    return;
  }
  frame("", h("section", { class: "welcome" }, h("h2", {}, "Welcome"),
    h("p", {}, "This account has no LLMs yet. Choose New LLM to register one: its endpoints are validated before it is stored.")));
}

function showNew(): void {
  const editor = new LlmEditor(null, (llm, report) => void saved(llm, report), () => void 0);
  frame("", editor.el);
  editor.el.querySelector("input")?.focus();
}

async function saved(llm: Llm, report: ValidationReport | null): Promise<void> {
  await reload();
  showLlm(llm.id, "configure", { report });
}

type Tab = "configure" | "validate" | "routing" | "chat";
const TABS: [Tab, string][] = [["configure", "Configure"], ["validate", "Validate"], ["routing", "Routing"], ["chat", "Try it"]];

function showLlm(id: string, tab: Tab = "configure", justSaved: { report: ValidationReport | null } | null = null): void {
  const llm = llms.find((l) => l.id === id);
  if (!llm) {
    showApp();
    return;
  }
  const panel = h("div", { class: "panel", role: "tabpanel", id: "panel", tabindex: 0 });
  const buttons = TABS.map(([name, label]) => h("button", {
    type: "button", role: "tab", id: `tab-${name}`, "aria-controls": "panel", "aria-selected": String(name === tab),
    tabindex: name === tab ? 0 : -1, onclick: () => showLlm(id, name),
  }, label));
  const tablist = h("div", { role: "tablist", "aria-label": `${llm.displayName} views` }, ...buttons);
  tablist.addEventListener("keydown", (e) => {
    const i = TABS.findIndex(([n]) => n === tab);
    const step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
    if (!step) return;
    e.preventDefault();
    showLlm(id, TABS[(i + step + TABS.length) % TABS.length][0]);
    document.getElementById(`tab-${TABS[(i + step + TABS.length) % TABS.length][0]}`)?.focus();
  });
  panel.setAttribute("aria-labelledby", `tab-${tab}`);
  frame(id, h("section", { class: "llm-view" },
    h("h2", {}, llm.displayName, h("small", { class: "muted" }, ` ${llm.id}`)), tablist, panel));
  const labels = (endpointId: string) => {
    const i = llm.endpoints.findIndex((e) => e.id === endpointId);
    return i < 0 ? endpointId : `Endpoint ${i + 1} (${llm.endpoints[i].label || llm.endpoints[i].model})`;
  };
  if (tab === "configure") {
    panel.append(new LlmEditor(llm, (l, r) => void saved(l, r), () => void reload().then(showApp), justSaved).el);
  } else if (tab === "validate") {
    const view = new ReportView(labels);
    view.reset("Runs every check against each stored endpoint, live.");
    const abort = new AbortController();
    disposers.push(() => abort.abort());
    panel.append(h("button", { type: "button", class: "primary", onclick: () => void view.run({ target: { case: "llmId", value: id } }, abort.signal) }, "Run validation"), view.el);
  } else if (tab === "routing") {
    const view = new RoutingView(id);
    panel.append(view.el);
    view.start();
    disposers.push(() => view.stop());
  } else {
    const chat = new ChatView(id);
    panel.append(chat.el);
    disposers.push(() => chat.dispose());
  }
}

if (signedIn()) {
  reload().then(showApp, (err) => {
    signOut();
    showSignIn(problemView(problem(err), "Please sign in again"));
  });
} else {
  showSignIn();
}
