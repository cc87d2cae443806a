// The router's live view of an LLM (GetRoutingState), refreshed every 2 s while shown: per
// endpoint its rank, circuit and reopen time, expected and p50/p95 TTFT, a chart of recent
// first-token times (probes hollow), the last probes and failovers with their causes.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { h, clear, ms, svg } from "./dom.js";
import { CircuitState } from "./gen/switchboard/v1/llm_pb.js";
import type { EndpointRoutingState, TtftSample } from "./gen/switchboard/v1/registry_pb.js";
import { registry, problem } from "./api.js";
import { problemView } from "./problem_view.js";

const CIRCUIT: Record<number, string> = {
  [CircuitState.CLOSED]: "closed", [CircuitState.OPEN]: "open",
  [CircuitState.HALF_OPEN]: "half-open", [CircuitState.UNSPECIFIED]: "unknown",
};

function time(ts: Timestamp | undefined): string {
  return ts ? timestampDate(ts).toLocaleTimeString() : "–";
}

export function chart(samples: TtftSample[]): SVGElement {
  const W = 320, H = 90, pad = 4;
  const max = Math.max(1, ...samples.map((s) => s.ttftMs));
  const x = (i: number) => pad + (samples.length < 2 ? (W - 2 * pad) / 2 : i * (W - 2 * pad) / (samples.length - 1));
  const y = (v: number) => H - pad - (v / max) * (H - 2 * pad);
  const line = samples.filter((s) => !s.probe);
  const points = samples.map((s, i) => [x(i), y(s.ttftMs), s] as const);
  const title = svg("title", {});
  title.textContent = samples.length
    ? `Recent times to first token, up to ${ms(max)}; ${line.length} live, ${samples.length - line.length} probes`
    : "No first-token samples yet";
  const el = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": title.textContent ?? "" }, title,
    svg("line", { x1: pad, y1: H - pad, x2: W - pad, y2: H - pad, class: "axis" }),
    svg("polyline", { points: points.filter(([, , s]) => !s.probe).map(([px, py]) => `${px},${py}`).join(" "), class: "trend" }),
    ...points.map(([px, py, s]) => svg("circle", { cx: px, cy: py, r: 3, class: s.probe ? "probe" : "live" })));
  const top = svg("text", { x: W - pad, y: 12, class: "scale", "text-anchor": "end" });
  top.textContent = ms(max);
  el.appendChild(top);
  return el;
}

function card(e: EndpointRoutingState, name: (id: string) => string): HTMLElement {
  const hth = e.health;
  const circuit = CIRCUIT[hth?.circuitState ?? 0] ?? "unknown";
  const reopen = e.reopenTime ? `reopens at ${time(e.reopenTime)}` : "";
  return h("article", { class: "route-card", "data-endpoint-id": e.endpointId, "aria-label": `Endpoint ${e.label || e.endpointId}` },
    h("header", {},
      h("h4", {}, e.rank ? `#${e.rank} ` : "not routed ", e.label || e.endpointId),
      h("span", { class: `badge circuit-${circuit}` }, `circuit ${circuit}`),
      e.skipReason ? h("span", { class: "badge warn" }, e.skipReason.replace(/_/g, " ")) : null),
    h("p", { class: "muted" }, `${e.model} · ${e.endpointId}`, reopen ? ` · ${reopen}` : ""),
    h("dl", { class: "stats" },
      h("dt", {}, "Expected TTFT"), h("dd", { "data-stat": "expected" }, ms(hth?.ttftEstimateMs ?? 0)),
      h("dt", {}, "p50 / p95"), h("dd", {}, `${ms(hth?.ttftP50Ms ?? 0)} / ${ms(hth?.ttftP95Ms ?? 0)}`),
      h("dt", {}, "Samples"), h("dd", { "data-stat": "samples" }, String(hth?.samples ?? 0)),
      h("dt", {}, "In flight"), h("dd", {}, String(hth?.inFlight ?? 0)),
      h("dt", {}, "Error rate"), h("dd", {}, `${Math.round((hth?.errorRate ?? 0) * 100)} %`),
      h("dt", {}, "Failures in a row"), h("dd", {}, String(hth?.consecutiveFailures ?? 0))),
    chart(e.recentTtfts),
    h("p", { class: "legend muted" }, h("span", { class: "dot live" }), " live turns ", h("span", { class: "dot probe" }), " probes and validation"),
    h("h5", {}, "Recent failovers"),
    e.recentFailovers.length
      ? h("ul", { class: "failovers" }, ...e.recentFailovers.map((f) => h("li", {},
        `${time(f.time)}: → ${f.toEndpointId ? name(f.toEndpointId) : "nothing left"} · ${f.cause}`)))
      : h("p", { class: "muted" }, "None."),
    h("h5", {}, "Last probes"),
    e.recentProbes.length
      ? h("ul", { class: "probes" }, ...e.recentProbes.map((p) => h("li", {},
        `${time(p.time)}: ${p.ok ? `ok, first token ${ms(p.ttftMs)}` : `failed (${p.error})`}`)))
      : h("p", { class: "muted" }, "None yet (probes run while a session of this LLM is active)."));
}

export class RoutingView {
  readonly el = h("section", { class: "routing", "aria-label": "Routing state" });
  private timer: number | undefined;
  private body = h("div", { class: "route-cards" });
  private stamp = h("p", { class: "muted", "aria-live": "polite" });

  constructor(private llmId: string) {
    this.el.append(h("p", {}, "The router's view on the replica that answers, refreshed every 2 s."), this.stamp, this.body);
  }

  start(): void {
    this.stop();
    void this.refresh();
    this.timer = window.setInterval(() => void this.refresh(), 2000);
  }

  stop(): void {
    if (this.timer !== undefined) window.clearInterval(this.timer);
    this.timer = undefined;
  }

  async refresh(): Promise<void> {
    try {
      const state = await registry.getRoutingState({ llmId: this.llmId });
      clear(this.body);
      const labels = new Map(state.endpoints.map((e) => [e.endpointId, e.label || e.endpointId]));
      this.body.append(...state.endpoints.map((e) => card(e, (id) => labels.get(id) ?? id)));
      this.stamp.textContent = `Read at ${time(state.readTime)}.`;
    } catch (err) {
      this.stop();
      clear(this.body);
      this.body.append(problemView(problem(err), "Routing state unavailable"));
    }
  }
}
