// Package switchboard holds helpers over the generated switchboardv1 stubs.
package switchboard

import (
	"strings"

	pb "github.com/switchboard/switchboard/clients/go/switchboardv1"
)

// ToolCall is a tool call assembled from its ToolCallDelta pieces.
type ToolCall struct {
	Index            int32
	ID               string
	Name             string
	ArgumentsJSON    string // complete once the turn has finished
	ThoughtSignature string
}

// Reply assembles a Converse stream into the answer a caller acts on, with the same semantics
// as the Python client's Reply: text and reasoning by message id (in the order they began),
// tool calls by index, and failover events applied: FAILOVER_MODE_CONTINUE keeps everything
// (the next endpoint continues the same message), FAILOVER_MODE_RESTART discards the messages
// it names, so Text is always the one answer being served. Client.Converse returns one.
type Reply struct {
	TurnID    string
	Routes    []*pb.RouteDecision
	Failovers []*pb.Failover
	Usage     *pb.Usage
	Finished  *pb.TurnFinished

	text      orderedText
	reasoning orderedText
	toolCalls map[int32]*ToolCall
	callOrder []int32
}

// Apply adds one event of the stream.
func (r *Reply) Apply(response *pb.ConverseResponse) {
	switch event := response.GetEvent().(type) {
	case *pb.ConverseResponse_Text:
		r.text.add(event.Text.GetMessageId(), event.Text.GetDelta())
	case *pb.ConverseResponse_Reasoning:
		r.reasoning.add(event.Reasoning.GetReasoningId(), event.Reasoning.GetDelta())
	case *pb.ConverseResponse_ToolCall:
		r.applyToolCall(event.ToolCall)
	case *pb.ConverseResponse_Failover:
		r.Failovers = append(r.Failovers, event.Failover)
		if event.Failover.GetMode() == pb.FailoverMode_FAILOVER_MODE_CONTINUE {
			break // the next endpoint continues the same message: nothing to discard
		}
		for _, id := range event.Failover.GetDiscardMessageIds() {
			r.text.discard(id)
			r.reasoning.discard(id)
		}
	case *pb.ConverseResponse_Route:
		r.Routes = append(r.Routes, event.Route)
	case *pb.ConverseResponse_Usage:
		r.Usage = event.Usage
	case *pb.ConverseResponse_Finished:
		r.Finished = event.Finished
	case *pb.ConverseResponse_Started:
		r.TurnID = event.Started.GetTurnId()
	}
}

func (r *Reply) applyToolCall(delta *pb.ToolCallDelta) {
	if r.toolCalls == nil {
		r.toolCalls = map[int32]*ToolCall{}
	}
	call, ok := r.toolCalls[delta.GetIndex()]
	if !ok {
		call = &ToolCall{Index: delta.GetIndex()}
		r.toolCalls[delta.GetIndex()] = call
		r.callOrder = append(r.callOrder, delta.GetIndex())
	}
	if call.ID == "" {
		call.ID = delta.GetId()
	}
	if call.Name == "" {
		call.Name = delta.GetName()
	}
	call.ArgumentsJSON += delta.GetArgumentsDelta()
	if call.ThoughtSignature == "" {
		call.ThoughtSignature = delta.GetThoughtSignature()
	}
}

// Text is the answer's text, without reasoning and without text a failover discarded.
func (r *Reply) Text() string { return strings.Join(r.text.messages(), "") }

// ReasoningHistory is every reasoning message of the answer, oldest first.
func (r *Reply) ReasoningHistory() []string { return r.reasoning.messages() }

// Reasoning is the reasoning messages joined by blank lines.
func (r *Reply) Reasoning() string { return strings.Join(r.reasoning.messages(), "\n\n") }

// ToolCalls are the turn's tool calls in the order they began.
func (r *Reply) ToolCalls() []*ToolCall {
	calls := make([]*ToolCall, 0, len(r.callOrder))
	for _, index := range r.callOrder {
		calls = append(calls, r.toolCalls[index])
	}
	return calls
}

// Complete reports whether the turn finished and the model completed its answer.
func (r *Reply) Complete() bool { return r.Finished.GetComplete() }

// EndpointID is the endpoint that served the answer, once the turn has finished.
func (r *Reply) EndpointID() string { return r.Finished.GetEndpointId() }

// orderedText keeps message pieces by id in the order the ids first appeared.
type orderedText struct {
	order []string
	parts map[string]*strings.Builder
}

func (t *orderedText) add(id, delta string) {
	if t.parts == nil {
		t.parts = map[string]*strings.Builder{}
	}
	b, ok := t.parts[id]
	if !ok {
		b = &strings.Builder{}
		t.parts[id] = b
		t.order = append(t.order, id)
	}
	b.WriteString(delta)
}

func (t *orderedText) discard(id string) {
	if _, ok := t.parts[id]; !ok {
		return
	}
	delete(t.parts, id)
	for i, each := range t.order {
		if each == id {
			t.order = append(t.order[:i:i], t.order[i+1:]...)
			break
		}
	}
}

func (t *orderedText) messages() []string {
	out := make([]string, 0, len(t.order))
	for _, id := range t.order {
		out = append(out, t.parts[id].String())
	}
	return out
}
