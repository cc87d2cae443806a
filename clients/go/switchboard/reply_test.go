package switchboard

import (
	"reflect"
	"testing"

	pb "github.com/switchboard/switchboard/clients/go/switchboardv1"
)

func text(id, delta string) *pb.ConverseResponse {
	return &pb.ConverseResponse{Event: &pb.ConverseResponse_Text{Text: &pb.TextDelta{MessageId: id, Delta: delta}}}
}

func reasoning(id, delta string) *pb.ConverseResponse {
	return &pb.ConverseResponse{Event: &pb.ConverseResponse_Reasoning{
		Reasoning: &pb.ReasoningDelta{ReasoningId: id, Delta: delta}}}
}

func TestTextAndReasoningStayApart(t *testing.T) {
	var r Reply
	for _, e := range []*pb.ConverseResponse{reasoning("r1", "Think"), reasoning("r1", "ing."),
		text("m1", "Hel"), reasoning("r2", "More."), text("m1", "lo")} {
		r.Apply(e)
	}
	if r.Text() != "Hello" {
		t.Fatalf("text %q", r.Text())
	}
	if got := r.ReasoningHistory(); !reflect.DeepEqual(got, []string{"Thinking.", "More."}) {
		t.Fatalf("reasoning %q", got)
	}
	if r.Complete() {
		t.Fatal("complete before finished")
	}
}

func TestFailoverDiscardsTheNamedMessages(t *testing.T) {
	var r Reply
	r.Apply(reasoning("r1", "old thought"))
	r.Apply(text("m1", "Half an ans"))
	r.Apply(&pb.ConverseResponse{Event: &pb.ConverseResponse_Failover{Failover: &pb.Failover{
		FromEndpointId: "a", ToEndpointId: "b", DiscardMessageIds: []string{"m1", "r1"}}}})
	r.Apply(reasoning("r2", "new thought"))
	r.Apply(text("m2", "A whole answer."))
	if r.Text() != "A whole answer." || r.Reasoning() != "new thought" || len(r.Failovers) != 1 {
		t.Fatalf("text %q reasoning %q failovers %d", r.Text(), r.Reasoning(), len(r.Failovers))
	}
}

func TestContinuedFailoverKeepsTheText(t *testing.T) {
	var r Reply
	r.Apply(text("m1", "One seamless "))
	r.Apply(&pb.ConverseResponse{Event: &pb.ConverseResponse_Failover{Failover: &pb.Failover{
		FromEndpointId: "a", ToEndpointId: "b", DiscardMessageIds: []string{"m1"},
		Mode: pb.FailoverMode_FAILOVER_MODE_CONTINUE}}})
	r.Apply(text("m1", "answer."))
	if r.Text() != "One seamless answer." || len(r.Failovers) != 1 {
		t.Fatalf("text %q failovers %d", r.Text(), len(r.Failovers))
	}
}

func TestToolCallsAssembleByIndex(t *testing.T) {
	var r Reply
	for _, d := range []*pb.ToolCallDelta{
		{Index: 0, Id: "c1", Name: "weather", ArgumentsDelta: `{"ci`},
		{Index: 1, Id: "c2", Name: "time", ArgumentsDelta: `{}`},
		{Index: 0, ArgumentsDelta: `ty":"Oslo"}`},
	} {
		r.Apply(&pb.ConverseResponse{Event: &pb.ConverseResponse_ToolCall{ToolCall: d}})
	}
	r.Apply(&pb.ConverseResponse{Event: &pb.ConverseResponse_Finished{Finished: &pb.TurnFinished{
		FinishReason: pb.FinishReason_FINISH_REASON_TOOL_CALLS, Complete: true, EndpointId: "e1"}}})
	calls := r.ToolCalls()
	if len(calls) != 2 || calls[0].ArgumentsJSON != `{"city":"Oslo"}` || calls[1].Name != "time" {
		t.Fatalf("calls %+v", calls)
	}
	if !r.Complete() || r.EndpointID() != "e1" {
		t.Fatal("finish not kept")
	}
}
